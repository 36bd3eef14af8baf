"""Parsing: the text read from a barcode or typed by a user, turned into a typed code.

Understands GS1 Digital Link URIs (any host), GS1 element strings (with or without a symbology
identifier, FNC1 as ASCII 29), bracketed element strings ``(01)...(10)...`` and plain
GTIN-8/12/13/14. Every AI value is checked against GS1's Barcode Syntax Dictionary
(:mod:`verification.gs1`); a text that is not a valid product code raises :class:`MalformedCode`.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import unquote, unquote_plus

from biip import ParseError as BiipParseError
from biip.checksums import gs1_standard_check_digit
from biip.symbology import GS1Symbology, SymbologyIdentifier

from verification.gs1 import AIValueError, AssociationError, SyntaxDictionary, get_dictionary
from verification.gs1.dictionary import century_for
from verification.localtime import vietnam_date

__all__ = ["MalformedCode", "Note", "ParsedCode", "Reason", "parse_code", "typed_code"]

logger = logging.getLogger(__name__)

GS = "\x1d"  # FNC1 as transmitted by scanners
_TRIM = " \t\r\n"

# Symbology identifiers (ISO/IEC 15424) whose data is a GS1 element string (FNC1 in first
# position) or a GTIN. biip knows all but GS1 DotCode (]J1).
_GS1_MESSAGE_IDS = {f"]{s.value}" for s in GS1Symbology.with_gs1_messages()} | {
    "]J1",
    "]e1",
    "]e2",
}
_GTIN_IDS = {f"]{s.value}" for s in GS1Symbology.with_gtin()}
_GTIN_LENGTHS = (8, 12, 13, 14)

# RFC 3986 characters, '%' included, as the GS1 Digital Link URI syntax allows them.
_URI_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
_BAD_DOMAIN_CHARS = frozenset("_~?#@!$&'()*+,;=%")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

# Deprecated GS1 Digital Link "convenience alphas" (DL URI Syntax 1.1), read only when lenient.
_CONVENIENCE_ALPHAS = {
    "cpid": "8010", "cpsn": "8011", "cpv": "22", "gcn": "255", "gdti": "253", "giai": "8004",
    "ginc": "401", "gln": "414", "glnx": "254", "gmn": "8013", "grai": "8003", "gsin": "402",
    "gsrn": "8018", "gsrnp": "8017", "gtin": "01", "itip": "8006", "lot": "10", "party": "417",
    "refno": "8020", "ser": "21", "srin": "8019", "sscc": "00",
}  # fmt: skip


class Reason(StrEnum):
    """Machine codes of :class:`MalformedCode` (the verdict layer's reason codes)."""

    MALFORMED_CODE = "MALFORMED_CODE"
    BAD_CHECK_DIGIT = "BAD_CHECK_DIGIT"


class Note(StrEnum):
    """Machine codes of tolerated or suspected scanner slips, reported in ``ParsedCode.notes``."""

    WHITESPACE_TRIMMED = "WHITESPACE_TRIMMED"  # leading/trailing blanks or CR/LF removed
    SUPERFLUOUS_FNC1 = "SUPERFLUOUS_FNC1"  # a GS where none is needed (start, end, doubled)
    UPPERCASE_URI = "UPPERCASE_URI"  # HTTP(S):// in capitals (QR alphanumeric mode)
    ZERO_SUPPRESSED_GTIN = "ZERO_SUPPRESSED_GTIN"  # GTIN-8/12/13 in a DL, padded to 14 digits
    CONVENIENCE_ALPHA = "CONVENIENCE_ALPHA"  # legacy /gtin/, /lot/, /ser/... path names
    MISSING_FNC1_SPLIT = "MISSING_FNC1_SPLIT"  # a value that ran into the next AI, split
    POSSIBLE_MISSING_FNC1 = "POSSIBLE_MISSING_FNC1"  # strict: such a value kept as given


@dataclass(frozen=True)
class ParsedCode:
    """A product code read from text. ``gtin`` is always 14 digits when present."""

    kind: str  # "digital_link" | "element_string" | "gtin"
    gtin: str | None = None
    lot: str | None = None
    serial: str | None = None
    expiry: datetime.date | None = None
    expiry_raw: str | None = None
    other_ais: dict[str, str] = field(default_factory=dict)
    signature: str | None = None  # DL query parameter ``s``, "{kid}.{sig}" as given
    host: str | None = None  # DL host (with port, if any), lower-case
    symbology: str | None = None  # e.g. "]d2"
    notes: tuple[str, ...] = ()


class MalformedCode(ValueError):
    """The text is not a valid product code."""

    def __init__(self, reason: str, detail: str, *, hint: str | None = None) -> None:
        super().__init__(detail if hint is None else f"{detail} ({hint})")
        self.reason = reason
        self.detail = detail
        self.hint = hint


def _malformed(detail: str, *, hint: str | None = None) -> MalformedCode:
    return MalformedCode(Reason.MALFORMED_CODE, detail, hint=hint)


def _from_value_error(exc: AIValueError, *, hint: str | None = None) -> MalformedCode:
    reason = Reason.BAD_CHECK_DIGIT if exc.check_digit else Reason.MALFORMED_CODE
    return MalformedCode(reason, exc.detail, hint=hint)


def _today() -> datetime.date:
    """Today's date in Vietnam, the reference for the two-digit-year window (patched in tests)."""
    return vietnam_date()


# --------------------------------------------------------------------------------------------
# Public entry point


_GROUPED_DIGITS = re.compile(r"\d+(?:[ \u00a0-]+\d+)+")


_BARE_LINK = re.compile(r"[A-Za-z0-9.-]+(?::\d+)?(?:/[^/?#]*)*?/(?:01|gtin)/\S*")
_DIGITAL_LINK = re.compile(r"https?://", re.IGNORECASE)


def typed_code(text: str) -> str:
    """What a person typed, as the code it names; for typed text only (a scanner's output is taken
    as it is):

    * full-width characters as their plain forms (``８９３６…``, an East Asian keyboard's digits);
    * the digits under a barcode written as they are printed, in groups (``8 936000 010010`` or
      ``8936-0000-1001-0``), as the one number it is;
    * a code's web address typed without ``https://`` (``verify.example.vn/01/…``), with it;
    * a slash typed after a Digital Link's last value (``…/21/ABC123/``) left out.

    Anything else as typed."""
    text = unicodedata.normalize("NFKC", text).strip()
    if _GROUPED_DIGITS.fullmatch(text):
        return re.sub(r"[ \u00a0-]+", "", text)
    if _BARE_LINK.fullmatch(text):
        text = "https://" + text
    if _DIGITAL_LINK.match(text):
        cut = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
        if text[:cut].endswith("/") and text[:cut].count("/") > 3:  # a path, not the host's own slash
            text = text[:cut].rstrip("/") + text[cut:]
    return text


def parse_code(text: str, *, lenient: bool = True) -> ParsedCode:
    """Parse a scanned or typed code; raise :class:`MalformedCode` when it is not one.

    ``lenient`` accepts legacy Digital Link forms (GTIN-8/12/13 in the path, convenience
    alphas such as ``/gtin/``) and splits a variable-length value that evidently ran into the
    next AI for want of an FNC1. ``lenient=False`` follows the GS1 standards strictly.
    """
    if not isinstance(text, str):
        raise TypeError("parse_code expects a str")
    notes: list[str] = []
    body = text.strip(_TRIM)
    if body != text:
        notes.append(Note.WHITESPACE_TRIMMED)
    if not body:
        raise _malformed("the code is empty")

    symbology = _symbology_identifier(body)
    if symbology is not None:
        body = body[len(symbology) :]
        if not body:
            raise _malformed(f"no data after the symbology identifier {symbology}")

    dictionary = get_dictionary()
    if symbology in _GTIN_IDS:
        return _parse_gtin(body, dictionary, symbology=symbology, notes=notes)
    if symbology in _GS1_MESSAGE_IDS:
        if body.startswith("("):
            return _parse_element_string(body, dictionary, lenient, symbology, notes, True)
        return _parse_element_string(body, dictionary, lenient, symbology, notes, False)

    # No identifier, or one for plain data (]Q1, ]d1, ]A0...): decide from the content.
    if _SCHEME_RE.match(body):
        return _parse_digital_link(body, dictionary, lenient, symbology, notes)
    if body.startswith("("):
        return _parse_element_string(body, dictionary, lenient, symbology, notes, True)
    if body.isdigit() and body.isascii() and len(body) in _GTIN_LENGTHS:
        return _parse_gtin(body, dictionary, symbology=symbology, notes=notes)
    if body.lstrip(GS)[:2].isdigit() and body.isascii():
        try:
            return _parse_element_string(body, dictionary, lenient, symbology, notes, False)
        except MalformedCode as exc:
            if body.isdigit():
                why = f"wrong length {len(body)}, expected 8, 12, 13 or 14 digits"
            elif len(body) in _GTIN_LENGTHS and GS not in body:
                why = "non-digit character " + repr(next(c for c in body if not c.isdigit()))
            else:
                raise
            raise MalformedCode(
                exc.reason,
                f"{body} is neither a GTIN ({why}) nor a valid GS1 element string: {exc.detail}",
                hint=exc.hint,
            ) from None
    if body[:1].isdigit():
        raise _malformed(f"{body[:40]!r} is not a GTIN: non-digit character")
    raise _malformed(
        f"not a product code: {body[:40]!r} is neither a GS1 Digital Link, "
        "a GS1 element string nor a GTIN"
    )


def _symbology_identifier(body: str) -> str | None:
    if not body.startswith("]") or len(body) < 3:
        return None
    try:
        return SymbologyIdentifier.extract(body).value
    except BiipParseError:
        # biip does not know every ISO/IEC 15424 code character (e.g. DotCode, "J").
        if body[1].isalpha() and body[2].isalnum():
            return body[:3]
        return None


# --------------------------------------------------------------------------------------------
# Plain GTIN


def _parse_gtin(
    body: str, dictionary: SyntaxDictionary, *, symbology: str | None, notes: list[str]
) -> ParsedCode:
    if not (body.isdigit() and body.isascii()):
        bad = next(c for c in body if not ("0" <= c <= "9"))
        raise _malformed(f"GTIN {body!r} has a non-digit character {bad!r}")
    lengths: tuple[int, ...] = _GTIN_LENGTHS
    if symbology == "]E4":
        lengths = (8,)
    elif symbology == "]E3" and len(body) in (15, 18):  # EAN-13/UPC-A plus 2/5-digit add-on
        body = body[:13]
    elif symbology == "]I1":
        lengths = (14,)
    if len(body) not in lengths:
        expected = " or ".join(str(n) for n in lengths)
        raise _malformed(f"GTIN {body} has wrong length {len(body)} (expected {expected} digits)")
    gtin = body.zfill(14)
    try:
        dictionary.validate_value("01", gtin)
    except AIValueError as exc:
        if exc.check_digit:
            expected_digit = gs1_standard_check_digit(body[:-1])
            raise MalformedCode(
                Reason.BAD_CHECK_DIGIT,
                f"GTIN {body} has check digit {body[-1]}, expected {expected_digit}",
            ) from None
        raise _from_value_error(exc) from None
    return ParsedCode(kind="gtin", gtin=gtin, symbology=symbology, notes=tuple(notes))


# --------------------------------------------------------------------------------------------
# Element strings


@dataclass
class _Element:
    ai: str
    value: str
    delimited: bool  # ended by a bracket, an FNC1 or the end of data, not by a fixed length


def _tokenize_bracketed(body: str, dictionary: SyntaxDictionary) -> list[_Element]:
    elements: list[_Element] = []
    pos = 0
    while pos < len(body):
        if body[pos] != "(":
            raise _malformed(f"malformed AI at {body[pos:pos + 6]!r}: expected '('")
        close = body.find(")", pos)
        ai = body[pos + 1 : close] if close > 0 else ""
        if close < 0 or not (ai.isdigit() and ai.isascii() and 2 <= len(ai) <= 4):
            raise _malformed(f"malformed AI at {body[pos:pos + 6]!r}")
        if dictionary.get(ai) is None:
            raise _malformed(f"unknown AI ({ai})")
        pos = close + 1
        chars: list[str] = []
        while pos < len(body) and body[pos] != "(":
            if body[pos] == "\\" and body[pos + 1 : pos + 2] == "(":  # escaped data bracket
                pos += 1
            chars.append(body[pos])
            pos += 1
        value = "".join(chars).replace(GS, "")
        if not value:
            raise _malformed(f"AI ({ai}) has an empty value")
        elements.append(_Element(ai, value, delimited=True))
    return elements


def _tokenize_raw(
    body: str, dictionary: SyntaxDictionary, notes: list[str]
) -> tuple[list[_Element], MalformedCode | None]:
    """Split an FNC1-delimited element string; a syntax error comes back with what came before."""
    elements: list[_Element] = []
    pos = 0
    need_separator = False  # the previous value was variable-length and ended at an FNC1
    while pos < len(body):
        if body[pos] == GS:
            if not need_separator and Note.SUPERFLUOUS_FNC1 not in notes:
                notes.append(Note.SUPERFLUOUS_FNC1)
            need_separator = False
            pos += 1
            continue
        entry = dictionary.match_prefix(body[pos:])
        if entry is None:
            return elements, _malformed(f"no known AI at {body[pos:pos + 6]!r}")
        start = pos + len(entry.ai)
        if not entry.fnc1_required:
            value = body[start : start + entry.max_length]
            if GS in value or len(value) < entry.max_length:
                value = value.split(GS)[0]
                return elements, _malformed(
                    f"AI ({entry.ai}) value too short ({len(value)}, expected {entry.max_length})"
                )
            pos = start + entry.max_length
            need_separator = False
        else:
            end = body.find(GS, start)
            end = len(body) if end < 0 else end
            value = body[start:end]
            pos = end
            need_separator = end < len(body)
            if need_separator and end + 1 == len(body):
                notes.append(Note.SUPERFLUOUS_FNC1)  # a GS at the very end
                need_separator = False
                pos = end + 1
        if not value:
            return elements, _malformed(f"AI ({entry.ai}) has an empty value")
        elements.append(_Element(entry.ai, value, delimited=entry.fnc1_required))
    if not elements:
        return elements, _malformed("empty GS1 data")
    return elements, None


def _collect(elements: list[_Element]) -> dict[str, str]:
    values: dict[str, str] = {}
    for element in elements:
        previous = values.setdefault(element.ai, element.value)
        if previous != element.value:
            raise _malformed(
                f"AI ({element.ai}) repeated with different values: {previous!r} and "
                f"{element.value!r}"
            )
    return values


def _validate_all(values: dict[str, str], dictionary: SyntaxDictionary) -> None:
    for ai, value in values.items():
        try:
            dictionary.validate_value(ai, value)
        except AIValueError as exc:
            raise _from_value_error(exc) from None
    try:
        dictionary.check_associations(values)
    except AssociationError as exc:
        raise _malformed(exc.detail) from None


def _fixed_tail(tail: str, dictionary: SyntaxDictionary) -> list[_Element] | None:
    """Split ``tail`` into predefined-length, check-digit- or date-checked AIs, if it is one."""
    found: list[_Element] = []
    pos = 0
    while pos < len(tail):
        entry = dictionary.match_prefix(tail[pos:])
        if entry is None or entry.fnc1_required or not entry.strongly_checked:
            return None
        value = tail[pos + len(entry.ai) : pos + len(entry.ai) + entry.max_length]
        try:
            dictionary.validate_value(entry.ai, value)
        except AIValueError:
            return None
        found.append(_Element(entry.ai, value, delimited=False))
        pos += len(entry.ai) + entry.max_length
    return found or None


def _glue_candidates(
    elements: list[_Element], dictionary: SyntaxDictionary
) -> list[tuple[int, _Element, list[_Element]]]:
    """Variable-length values whose end looks like the next AI swallowed by a missing FNC1."""
    present = {e.ai for e in elements}
    found = []
    for index, element in enumerate(elements):
        if not element.delimited:
            continue
        for k in range(1, len(element.value)):
            tail = _fixed_tail(element.value[k:], dictionary)
            if tail is None or any(t.ai in present for t in tail):
                continue
            head = _Element(element.ai, element.value[:k], delimited=True)
            try:
                dictionary.validate_value(head.ai, head.value)
            except AIValueError:
                continue
            found.append((index, head, tail))
            break
    return found


def _glue_hint(candidates: list[tuple[int, _Element, list[_Element]]]) -> str:
    index, head, tail = candidates[0]
    ais = ", ".join(f"({t.ai})" for t in tail)
    return (
        f"the value of AI ({head.ai}) seems to run into the next AI {ais}: "
        "a missing FNC1 separator?"
    )


def _parse_element_string(
    body: str,
    dictionary: SyntaxDictionary,
    lenient: bool,
    symbology: str | None,
    notes: list[str],
    bracketed: bool,
) -> ParsedCode:
    if bracketed:
        elements = _tokenize_bracketed(body, dictionary)
    else:
        elements, syntax_error = _tokenize_raw(body, dictionary, notes)
        if syntax_error is not None:
            # Report a bad value before the point where parsing lost its way, as it may be why.
            for element in elements:
                try:
                    dictionary.validate_value(element.ai, element.value)
                except AIValueError as exc:
                    raise _from_value_error(exc) from None
            raise syntax_error
    candidates = [] if bracketed else _glue_candidates(elements, dictionary)
    try:
        values = _collect(elements)
        _validate_all(values, dictionary)
    except MalformedCode as exc:
        if not candidates:
            raise
        hint = _glue_hint(candidates)
        if not lenient:
            raise MalformedCode(exc.reason, exc.detail, hint=hint) from None
        try:
            values = _collect(_split(elements, candidates))
            _validate_all(values, dictionary)
        except MalformedCode:
            raise MalformedCode(exc.reason, exc.detail, hint=hint) from None
        notes.append(Note.MISSING_FNC1_SPLIT)
        logger.info("element string split at a missing FNC1: %s", hint)
    else:
        if candidates:
            if lenient:
                split_values = _collect(_split(elements, candidates))
                try:
                    _validate_all(split_values, dictionary)
                except MalformedCode:
                    notes.append(Note.POSSIBLE_MISSING_FNC1)
                else:
                    values = split_values
                    notes.append(Note.MISSING_FNC1_SPLIT)
            else:
                notes.append(Note.POSSIBLE_MISSING_FNC1)
    return _build("element_string", values, symbology=symbology, notes=notes)


def _split(
    elements: list[_Element], candidates: list[tuple[int, _Element, list[_Element]]]
) -> list[_Element]:
    by_index = {index: (head, tail) for index, head, tail in candidates}
    out: list[_Element] = []
    for index, element in enumerate(elements):
        if index in by_index:
            head, tail = by_index[index]
            out.append(head)
            out.extend(tail)
        else:
            out.append(element)
    return out


# --------------------------------------------------------------------------------------------
# GS1 Digital Link


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _decode(raw: str, ai: str, *, query: bool) -> str:
    if _BAD_ESCAPE.search(raw):  # '%' not followed by two hex digits: no URI encodes a value so
        raise _malformed(f"AI ({ai}) holds a broken percent-escape: {raw[:40]!r}")
    value = unquote_plus(raw) if query else unquote(raw)
    if "\x00" in value:
        raise _malformed(f"decoded value of AI ({ai}) contains NUL")
    return value


def _parse_digital_link(
    body: str,
    dictionary: SyntaxDictionary,
    lenient: bool,
    symbology: str | None,
    notes: list[str],
) -> ParsedCode:
    scheme_match = _SCHEME_RE.match(body)
    assert scheme_match is not None
    scheme = scheme_match.group(1)
    if scheme.lower() not in ("http", "https"):
        raise _malformed(f"not a GS1 Digital Link: scheme {scheme!r} is not http or https")
    if scheme not in ("http", "https", "HTTP", "HTTPS"):
        raise _malformed(
            f"URI scheme {scheme!r} mixes upper and lower case",
            hint="a GS1 Digital Link scheme is http:// or https://, all lower or all upper case",
        )
    if scheme.isupper():
        notes.append(Note.UPPERCASE_URI)
    if not _URI_CHARS.issuperset(body):
        bad = sorted(set(body) - _URI_CHARS)
        hint = "spaces must be percent-encoded" if " " in bad else None
        raise _malformed(
            f"URI contains illegal characters: {' '.join(repr(c) for c in bad)}", hint=hint
        )
    rest = body[scheme_match.end() :]
    slash = rest.find("/")
    if slash < 1:
        raise _malformed("URI has no domain or no path info")
    host = rest[:slash]
    if any(c in _BAD_DOMAIN_CHARS for c in host):
        raise _malformed(f"illegal character in domain {host!r}")
    path = rest[slash:]
    path, _, _fragment = path.partition("#")
    path, has_query, query = path.partition("?")

    path_ais, path_values = _dl_path(path, dictionary, lenient, notes)
    values: dict[str, str] = dict(zip(path_ais, path_values, strict=True))

    signature: str | None = None
    for param in query.split("&") if has_query else ():
        if not param or "=" not in param:
            continue  # empty or a singleton: not AI data
        key, raw = param.split("=", 1)
        if key == "s":
            if signature is not None:
                raise _malformed("duplicate signature parameter 's' in DL URI")
            signature = raw
            continue
        if not (key.isdigit() and key.isascii()):
            continue  # other non-AI parameters (linkType, ...) are ignored
        entry = dictionary.get(key)
        if entry is None:
            raise _malformed(f"unknown AI ({key}) in query parameters")
        if not raw:
            raise _malformed(f"empty value for AI ({key}) in query parameters")
        value = _decode(raw, key, query=True)
        if key == "01" and value.isdigit() and len(value) in (8, 12, 13):
            value = value.zfill(14)
            notes.append(Note.ZERO_SUPPRESSED_GTIN)
        if key in values:
            raise _malformed(f"duplicate AI ({key}) in DL URI")
        belongs_in_path = any(
            dictionary.is_valid_dl_path([*path_ais[:j], key, *path_ais[j:]])
            for j in range(1, len(path_ais) + 1)
        )
        hint = f"write it as /{key}/{raw} in the path" if belongs_in_path else None
        if not entry.dl_attribute:
            raise _malformed(f"AI ({key}) is not a valid DL data attribute", hint=hint)
        if belongs_in_path:
            raise _malformed(f"AI ({key}) should be in the path info", hint=hint)
        values[key] = value

    _validate_all(values, dictionary)
    return _build(
        "digital_link",
        values,
        symbology=symbology,
        notes=notes,
        signature=signature,
        host=host.lower(),
    )


def _dl_path(
    path: str, dictionary: SyntaxDictionary, lenient: bool, notes: list[str]
) -> tuple[list[str], list[str]]:
    parts = path.split("/")  # parts[0] is "" (before the first "/")

    def as_ai(segment: str) -> str | None:
        if lenient and segment in _CONVENIENCE_ALPHAS:
            return _CONVENIENCE_ALPHAS[segment]
        return segment if segment.isdigit() and dictionary.get(segment) is not None else None

    # Walk back from the end in /AI/value pairs to the rightmost primary key.
    start = None
    i = len(parts) - 2
    while i >= 1:
        ai = as_ai(parts[i])
        if ai is None:
            break
        if dictionary.is_dl_primary_key(ai):
            start = i
            break
        i -= 2
    if start is None:
        hint = None
        if not lenient and any(seg in _CONVENIENCE_ALPHAS for seg in parts):
            hint = "legacy convenience alphas such as /gtin/ are accepted only in lenient mode"
        raise _malformed("no GS1 DL primary key found in path info", hint=hint)

    ais: list[str] = []
    values: list[str] = []
    for j in range(start, len(parts), 2):
        segment, raw = parts[j], parts[j + 1]
        ai = as_ai(segment)
        assert ai is not None
        if ai != segment and Note.CONVENIENCE_ALPHA not in notes:
            notes.append(Note.CONVENIENCE_ALPHA)
        if not raw:
            raise _malformed(f"empty value for AI ({ai}) in path")
        value = _decode(raw, ai, query=False)
        if ai == "01" and value.isdigit() and len(value) in (8, 12, 13):
            if not lenient:
                try:
                    dictionary.validate_value("01", value.zfill(14))
                except AIValueError as exc:
                    hint = "the GTIN is also zero-suppressed: it must be written with 14 digits"
                    raise _from_value_error(exc, hint=hint) from None
                raise _malformed(
                    f"zero-suppressed GTIN {value} in DL path (GTIN must be 14 digits)",
                    hint=f"write it as {value.zfill(14)}",
                )
            value = value.zfill(14)
            notes.append(Note.ZERO_SUPPRESSED_GTIN)
        ais.append(ai)
        values.append(value)
    if not dictionary.is_valid_dl_path(ais):
        raise _malformed(
            "invalid key-qualifier sequence in path info: /" + "/".join(ais) + " is not allowed"
        )
    return ais, values


# --------------------------------------------------------------------------------------------
# Result


def _expiry(raw: str) -> datetime.date:
    return _expiry_on(raw, _today())


@functools.lru_cache(maxsize=4096)
def _expiry_on(raw: str, today: datetime.date) -> datetime.date:
    year = century_for(int(raw[0:2]), today=today)
    month, day = int(raw[2:4]), int(raw[4:6])
    if day == 0:
        day = calendar.monthrange(year, month)[1]
    return datetime.date(year, month, day)


def _build(
    kind: str,
    values: dict[str, str],
    *,
    symbology: str | None,
    notes: list[str],
    signature: str | None = None,
    host: str | None = None,
) -> ParsedCode:
    known = {"01", "10", "21", "17"}
    expiry_raw = values.get("17")
    return ParsedCode(
        kind=kind,
        gtin=values.get("01"),
        lot=values.get("10"),
        serial=values.get("21"),
        expiry=_expiry(expiry_raw) if expiry_raw else None,
        expiry_raw=expiry_raw,
        other_ais={ai: v for ai, v in values.items() if ai not in known},
        signature=signature,
        host=host,
        symbology=symbology,
        notes=tuple(dict.fromkeys(notes)),
    )
