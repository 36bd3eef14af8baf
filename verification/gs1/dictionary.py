"""The GS1 Barcode Syntax Dictionary, read as data, and the checks it names.

The vendored ``data/gs1-syntax-dictionary.txt`` describes every Application Identifier (AI):
the format of each component (``N14``, ``X..20``, ``[N..12]``), the content "linters" to run on
it (``csum``, ``yymmd0``, ``iso3166``...), whether FNC1 must follow it, the AIs it requires
(``req=``) or excludes (``ex=``), and its GS1 Digital Link role (``dlpkey=``, ``?``). Nothing here
copies an AI table into code: the file is parsed once, lazily, by :func:`get_dictionary`.

Linters the dictionary names but this module does not implement are skipped (see
``UNIMPLEMENTED_LINTERS``).
"""

from __future__ import annotations

import calendar
import datetime
import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from biip.checksums import gs1_standard_check_digit

__all__ = [
    "AIEntry",
    "AIValueError",
    "AssociationError",
    "Component",
    "SyntaxDictionary",
    "UNIMPLEMENTED_LINTERS",
    "century_for",
    "get_dictionary",
    "load_dictionary",
]

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
DICTIONARY_PATH = DATA_DIR / "gs1-syntax-dictionary.txt"
ISO3166_PATH = DATA_DIR / "iso3166.txt"

# GS1 General Specifications, figure 7.11-1 (CSET 82, in check-character-pair value order),
# figure 7.11-2 (CSET 39) and figure 7.11-3 (CSET 64, file-safe base64).
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
CSET39 = "#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CSET64 = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_CSET32 = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # check characters of csumalpha
_CHARSETS = {name: frozenset(chars)
             for name, chars in (("N", "0123456789"), ("X", CSET82), ("Y", CSET39), ("Z", CSET64))}
_CHARSET_NAMES = {"N": "digit", "X": "CSET 82", "Y": "CSET 39", "Z": "CSET 64"}
_FLAG_CHARS = set("*!?\"$%&'()+,-./:;<=>@[\\]^_`{|}~")
_COMPONENT_RE = re.compile(r"^(\[)?([NXYZ])(\.\.)?(\d+)(\])?((?:,\w+)*)$")

_MEMO_SIZE = 50_000  # checks remembered as passed, then forgotten all at once

#: Linters named in the dictionary that are not implemented here (their checks are skipped).
UNIMPLEMENTED_LINTERS = frozenset(
    {"iso4217", "importeridx", "packagetype", "mediatype", "couponcode", "couponposoffer"}
)


# --------------------------------------------------------------------------------------------
# Errors


class AIValueError(ValueError):
    """An AI value breaks its format or one of its linters."""

    def __init__(self, ai: str, detail: str, *, check_digit: bool = False) -> None:
        super().__init__(detail)
        self.ai = ai
        self.detail = detail
        self.check_digit = check_digit


class AssociationError(ValueError):
    """A mandatory association (``req=``) is missing or an exclusion (``ex=``) is broken."""

    def __init__(self, ai: str, detail: str) -> None:
        super().__init__(detail)
        self.ai = ai
        self.detail = detail


class _LintFailure(Exception):
    def __init__(self, message: str, *, check_digit: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.check_digit = check_digit


# --------------------------------------------------------------------------------------------
# Dates: GS1 General Specifications 7.12, the sliding century window.


def century_for(yy: int, *, today: datetime.date | None = None) -> int:
    """Full year for a two-digit year, by GS1's sliding window around the current year."""
    current = (today or datetime.date.today()).year
    century, current_yy = divmod(current, 100)
    diff = yy - current_yy
    if diff >= 51:
        century -= 1
    elif diff <= -50:
        century += 1
    return century * 100 + yy


def _check_date(year: int, month: int, day: int, *, day_zero: bool) -> None:
    if not 1 <= month <= 12:
        raise _LintFailure("illegal month")
    if day == 0 and day_zero:
        return
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise _LintFailure(f"illegal day {day:02d}")


def _lint_yymm(value: str, *, day_zero: bool) -> None:
    year = century_for(int(value[0:2]))
    _check_date(year, int(value[2:4]), int(value[4:6]), day_zero=day_zero)


def _lint_yyyymm(value: str, *, day_zero: bool) -> None:
    _check_date(int(value[0:4]), int(value[4:6]), int(value[6:8]), day_zero=day_zero)


def _lint_range(name: str, high: int) -> Callable[[str], None]:
    def lint(value: str) -> None:
        if int(value) > high:
            raise _LintFailure(f"illegal {name}")

    return lint


def _lint_hhmi(value: str) -> None:
    _lint_range("hour", 23)(value[0:2])
    _lint_range("minute", 59)(value[2:4])


# --------------------------------------------------------------------------------------------
# Check digits and keys


def _lint_csum(value: str) -> None:
    expected = gs1_standard_check_digit(value[:-1])
    if int(value[-1]) != expected:
        raise _LintFailure(f"has check digit {value[-1]}, expected {expected}", check_digit=True)


_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83)


def csumalpha_pair(data: str) -> str:
    """The GS1 check character pair for ``data`` (General Specifications 7.9.5)."""
    weights = _PRIMES[: len(data)][::-1]
    total = sum(CSET82.index(c) * w for c, w in zip(data, weights, strict=True)) % 1021
    return _CSET32[total // 32] + _CSET32[total % 32]


def _lint_csumalpha(value: str) -> None:
    if len(value) < 2:
        raise _LintFailure("too short for check pair")
    if len(value) - 2 > len(_PRIMES):
        raise _LintFailure("too long for check pair")
    expected = csumalpha_pair(value[:-2])
    if value[-2:] != expected:
        raise _LintFailure(f"has check pair {value[-2:]}, expected {expected}", check_digit=True)


def _lint_gcppos1(value: str) -> None:
    if len(value) < 4:  # the shortest GS1 Company Prefix has four digits
        raise _LintFailure("too short for gcp")
    if not value[:4].isdigit():
        raise _LintFailure("invalid gcp prefix")


def _lint_gcppos2(value: str) -> None:
    _lint_gcppos1(value[1:])


def _lint_iban(value: str) -> None:
    if len(value) < 4:
        raise _LintFailure("iban too short")
    if value[:2] not in _iso3166()[1]:
        raise _LintFailure("illegal iban country code")
    if len(value) > 34:
        raise _LintFailure("iban too long")
    if len(value) <= 10:
        raise _LintFailure("iban too short")
    rotated = value[4:] + value[:4]
    if not all(c.isdigit() or "A" <= c <= "Z" for c in rotated):
        raise _LintFailure("invalid iban character")
    if int("".join(str(int(c, 36)) for c in rotated)) % 97 != 1:
        raise _LintFailure("has an incorrect IBAN checksum", check_digit=True)


# --------------------------------------------------------------------------------------------
# Code lists and simple content rules


@functools.cache
def _iso3166() -> tuple[frozenset[str], frozenset[str]]:
    numeric, alpha2 = set(), set()
    for line in ISO3166_PATH.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            num, a2 = line.split()
            numeric.add(num)
            alpha2.add(a2)
    return frozenset(numeric), frozenset(alpha2)


def _lint_iso3166(value: str) -> None:
    if value not in _iso3166()[0]:
        raise _LintFailure("not iso3166")


def _lint_iso3166999(value: str) -> None:
    if value != "999" and value not in _iso3166()[0]:
        raise _LintFailure("not iso3166 or 999")


def _lint_iso3166list(value: str) -> None:
    if not value or len(value) % 3:
        raise _LintFailure("not iso3166 list")
    for i in range(0, len(value), 3):
        _lint_iso3166(value[i : i + 3])


def _lint_iso3166alpha2(value: str) -> None:
    if value not in _iso3166()[1]:
        raise _LintFailure("not iso3166 alpha2")


def _lint_one_of(name: str, allowed: str) -> Callable[[str], None]:
    def lint(value: str) -> None:
        if value not in allowed.split():
            raise _LintFailure(f"invalid {name}")

    return lint


def _lint_zero(value: str) -> None:
    if value != "0":
        raise _LintFailure("not zero")


def _lint_nonzero(value: str) -> None:
    if set(value) <= {"0"}:
        raise _LintFailure("illegal zero value")


def _lint_nozeroprefix(value: str) -> None:
    if len(value) > 1 and value[0] == "0":
        raise _LintFailure("illegal zero prefix")


def _lint_hasnondigit(value: str) -> None:
    if value.isdigit():
        raise _LintFailure("requires a non-digit character")


def _lint_pieceoftotal(value: str) -> None:
    half = len(value) // 2
    piece, total = int(value[:half]), int(value[half:])
    if piece == 0:
        raise _LintFailure("zero piece number")
    if total == 0:
        raise _LintFailure("zero total")
    if piece > total:
        raise _LintFailure("piece exceeds total")


def _lint_posinseqslash(value: str) -> None:
    pos, sep, end = value.partition("/")
    if not sep or not pos.isdigit() or not end.isdigit():
        raise _LintFailure("position in sequence malformed")
    if pos[0] == "0" or end[0] == "0":
        raise _LintFailure("illegal zero prefix")
    if int(pos) > int(end):
        raise _LintFailure("position exceeds end")


def _lint_pcenc(value: str) -> None:
    for match in re.finditer("%", value):
        hexpair = value[match.start() + 1 : match.start() + 3]
        if len(hexpair) != 2 or not all(c in "0123456789ABCDEFabcdef" for c in hexpair):
            raise _LintFailure("invalid percent sequence")


_LINTERS: dict[str, Callable[[str], None]] = {
    "csum": _lint_csum,
    "csumalpha": _lint_csumalpha,
    "gcppos1": _lint_gcppos1,
    "gcppos2": _lint_gcppos2,
    "key": _lint_gcppos1,
    "yymmd0": functools.partial(_lint_yymm, day_zero=True),
    "yymmdd": functools.partial(_lint_yymm, day_zero=False),
    "yyyymmd0": functools.partial(_lint_yyyymm, day_zero=True),
    "yyyymmdd": functools.partial(_lint_yyyymm, day_zero=False),
    "hhmi": _lint_hhmi,
    "hhmm": _lint_hhmi,
    "hh": _lint_range("hour", 23),
    "mi": _lint_range("minute", 59),
    "ss": _lint_range("second", 59),
    "iso3166": _lint_iso3166,
    "iso3166999": _lint_iso3166999,
    "iso3166list": _lint_iso3166list,
    "iso3166alpha2": _lint_iso3166alpha2,
    "iban": _lint_iban,
    "latitude": _lint_range("latitude", 1800000000),
    "longitude": _lint_range("longitude", 3600000000),
    "yesno": _lint_one_of("yes/no value", "0 1"),
    "winding": _lint_one_of("winding direction", "0 1 9"),
    "iso5218": _lint_one_of("biological sex code", "0 1 2 9"),
    "hyphen": _lint_one_of("hyphen", "-"),
    "zero": _lint_zero,
    "nonzero": _lint_nonzero,
    "nozeroprefix": _lint_nozeroprefix,
    "hasnondigit": _lint_hasnondigit,
    "pieceoftotal": _lint_pieceoftotal,
    "posinseqslash": _lint_posinseqslash,
    "pcenc": _lint_pcenc,
}


# --------------------------------------------------------------------------------------------
# Entries


@dataclass(frozen=True)
class Component:
    """One component of an AI's data field, e.g. ``N13,csum,gcppos1`` or ``[X..17]``."""

    charset: str  # "N", "X", "Y" or "Z"
    min_length: int
    max_length: int
    optional: bool
    linters: tuple[str, ...]


@dataclass(frozen=True)
class AIEntry:
    """What the dictionary says about one AI."""

    ai: str
    title: str
    components: tuple[Component, ...]
    fnc1_required: bool  # no "*" flag: FNC1 must follow unless the value ends the message
    dl_attribute: bool  # "?" flag: permitted as a Digital Link query attribute
    requires: tuple[tuple[tuple[str, ...], ...], ...] = ()  # per req=: alternatives of groups
    excludes: tuple[str, ...] = ()
    dl_qualifiers: tuple[tuple[str, ...], ...] | None = None  # None: not a DL primary key

    @property
    def min_length(self) -> int:
        """Shortest valid value."""
        return sum(c.min_length for c in self.components if not c.optional)

    @property
    def max_length(self) -> int:
        """Longest valid value."""
        return sum(c.max_length for c in self.components)

    @property
    def strongly_checked(self) -> bool:
        """Whether a check digit or a date rule makes an accidental match unlikely."""
        strong = {"csum", "yymmd0", "yymmdd", "yyyymmdd", "yyyymmd0"}
        return any(strong & set(c.linters) for c in self.components)


def _pattern_matches(pattern: str, ai: str) -> bool:
    return len(pattern) == len(ai) and all(p in ("n", a) for p, a in zip(pattern, ai, strict=True))


def _expand_ais(spec: str) -> list[str]:
    if "-" not in spec:
        return [spec]
    first, last = spec.split("-")
    return [str(n).zfill(len(first)) for n in range(int(first), int(last) + 1)]


def _parse_line(line: str) -> list[AIEntry]:
    body, _, title = line.partition("#")
    tokens = body.split()
    ais = _expand_ais(tokens[0])
    rest = tokens[1:]
    flags = ""
    if rest and set(rest[0]) <= _FLAG_CHARS and not rest[0].startswith("["):
        flags = rest.pop(0)
    components: list[Component] = []
    requires: list[tuple[tuple[str, ...], ...]] = []
    excludes: list[str] = []
    dl_qualifiers: list[tuple[str, ...]] | None = None
    for token in rest:
        match = _COMPONENT_RE.match(token)
        if match:
            opt_open, charset, dots, length, opt_close, linters = match.groups()
            if bool(opt_open) != bool(opt_close):
                raise ValueError(f"unbalanced optional component {token!r}")
            n = int(length)
            components.append(
                Component(
                    charset=charset,
                    min_length=1 if dots else n,
                    max_length=n,
                    optional=bool(opt_open),
                    linters=tuple(x for x in linters.split(",") if x),
                )
            )
        elif token.startswith("req="):
            requires.append(tuple(tuple(g.split("+")) for g in token[4:].split(",")))
        elif token.startswith("ex="):
            excludes.extend(token[3:].split(","))
        elif token == "dlpkey":
            dl_qualifiers = [()]
        elif token.startswith("dlpkey="):
            dl_qualifiers = [tuple(alt.split(",")) for alt in token[7:].split("|")]
        # Other attributes are not needed here and are ignored.
    return [
        AIEntry(
            ai=ai,
            title=title.strip(),
            components=tuple(components),
            fnc1_required="*" not in flags,
            dl_attribute="?" in flags,
            requires=tuple(requires),
            excludes=tuple(excludes),
            dl_qualifiers=tuple(dl_qualifiers) if dl_qualifiers is not None else None,
        )
        for ai in ais
    ]


@dataclass(frozen=True)
class SyntaxDictionary:
    """All AI entries, with the checks that use them."""

    entries: Mapping[str, AIEntry]
    serialised_key_ais: frozenset[str] = field(default_factory=frozenset)
    # What has passed a check before (and which DL paths are not valid): the checks are pure, and
    # the codes of one batch repeat the same GTIN, lot, expiry and path (the hot path of
    # verification parses them all).
    _passed: dict[tuple, bool] = field(default_factory=dict, compare=False, repr=False)

    def _remember(self, key: tuple, result: bool = True) -> None:
        if len(self._passed) >= _MEMO_SIZE:
            self._passed.clear()
        self._passed[key] = result

    def get(self, ai: str) -> AIEntry | None:
        """The entry for an AI, or None when the AI is unknown."""
        return self.entries.get(ai)

    def match_prefix(self, data: str) -> AIEntry | None:
        """The AI that ``data`` starts with (AIs are prefix-free), or None."""
        for length in (2, 3, 4):
            entry = self.entries.get(data[:length])
            if entry is not None and len(data) >= length:
                return entry
        return None

    # ---- values

    def validate_value(self, ai: str, value: str) -> None:
        """Check one value against its components and linters; raise :class:`AIValueError`."""
        if ("value", ai, value) in self._passed:
            return
        self._check_value(ai, value)
        self._remember(("value", ai, value))

    def _check_value(self, ai: str, value: str) -> None:
        entry = self.entries.get(ai)
        if entry is None:
            raise AIValueError(ai, f"unknown AI ({ai})")
        if not value:
            raise AIValueError(ai, f"AI ({ai}) has an empty value")
        fixed = entry.min_length == entry.max_length
        if len(value) < entry.min_length or len(value) > entry.max_length:
            if fixed:
                detail = f"value has wrong length {len(value)} (expected {entry.max_length})"
            elif len(value) < entry.min_length:
                detail = f"value too short ({len(value)}, at least {entry.min_length})"
            else:
                detail = f"value too long ({len(value)}, at most {entry.max_length})"
            raise AIValueError(ai, f"AI ({ai}) {detail}")
        pos = 0
        for component in entry.components:
            if pos >= len(value) and component.optional:
                break
            part = value[pos : pos + component.max_length]
            if len(part) < component.min_length:
                raise AIValueError(ai, f"AI ({ai}) component too short: {part!r}")
            pos += len(part)
            allowed = _CHARSETS[component.charset]
            if not allowed.issuperset(part):
                char = next(c for c in part if c not in allowed)
                name = _CHARSET_NAMES[component.charset]
                what = "non-digit character" if name == "digit" else f"invalid {name} character"
                raise AIValueError(ai, f"AI ({ai}): {what} {char!r}")
            for linter in component.linters:
                check = _LINTERS.get(linter)
                if check is None:
                    continue  # listed in UNIMPLEMENTED_LINTERS
                try:
                    check(part)
                except _LintFailure as exc:
                    if exc.check_digit:
                        detail = f"AI ({ai}) {entry.title} {part} {exc.message}"
                    else:
                        detail = f"AI ({ai}) {part}: {exc.message}"
                    raise AIValueError(ai, detail, check_digit=exc.check_digit) from None
        if pos < len(value):
            raise AIValueError(ai, f"AI ({ai}) value too long")

    # ---- associations

    def check_associations(self, values: Mapping[str, str]) -> None:
        """Apply ``req=`` and ``ex=`` to all AIs of one message, or raise AssociationError."""
        memo = ("associations", *values) if "8030" not in values else None  # 8030 looks at the values
        if memo in self._passed:
            return
        self._check_associations(values)
        if memo is not None:
            self._remember(memo)

    def _check_associations(self, values: Mapping[str, str]) -> None:
        present = list(values)
        for ai in present:
            entry = self.entries[ai]
            for pattern in entry.excludes:
                for other in present:
                    if other != ai and _pattern_matches(pattern, other):
                        detail = f"AI ({ai}) and ({other}) are mutually exclusive"
                        raise AssociationError(ai, detail)
            for alternatives in entry.requires:
                if not any(
                    all(any(_pattern_matches(p, o) for o in present if o != ai) for p in group)
                    for group in alternatives
                ):
                    wanted = " or ".join("+".join(g) for g in alternatives)
                    raise AssociationError(
                        ai, f"required AI association missing: ({ai}) requires {wanted}"
                    )
        # A digital signature (8030) must sign a serialised instance: a key whose optional
        # serial component is absent identifies a class, not an item (GS1 GenSpecs 3.9.14).
        if "8030" in values:
            for ai in self.serialised_key_ais & set(values):
                entry = self.entries[ai]
                mandatory = entry.min_length
                if len(values[ai]) <= mandatory:
                    raise AssociationError(ai, f"(8030) requires serialised ({ai})")

    # ---- Digital Link

    def is_dl_primary_key(self, ai: str) -> bool:
        """Whether the AI may start a Digital Link path."""
        entry = self.entries.get(ai)
        return entry is not None and entry.dl_qualifiers is not None

    def is_valid_dl_path(self, ais: Sequence[str]) -> bool:
        """Whether ``ais`` (primary key first) is a key-qualifier sequence ``dlpkey`` allows."""
        if not ais:
            return False
        memo = ("dl_path", *ais)
        known = self._passed.get(memo)
        if known is not None:
            return known
        entry = self.entries.get(ais[0])
        valid = entry is not None and entry.dl_qualifiers is not None and any(
            _is_ordered_subset(ais[1:], alt) for alt in entry.dl_qualifiers)
        self._remember(memo, valid)
        return valid


def _is_ordered_subset(items: Iterable[str], sequence: Sequence[str]) -> bool:
    it = iter(sequence)
    return all(any(item == s for s in it) for item in items)


def load_dictionary(path: Path = DICTIONARY_PATH) -> SyntaxDictionary:
    """Parse a Barcode Syntax Dictionary file."""
    entries: dict[str, AIEntry] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for entry in _parse_line(line):
            entries[entry.ai] = entry
    used = {linter for e in entries.values() for c in e.components for linter in c.linters}
    skipped = sorted(used - set(_LINTERS))
    if skipped:
        logger.debug("GS1 linters not implemented, skipped: %s", ", ".join(skipped))
    # Keys that 8030 accepts on their own and that carry an optional serial component.
    serialised: set[str] = set()
    digsig = entries.get("8030")
    if digsig is not None:
        for alternatives in digsig.requires:
            for group in alternatives:
                if len(group) == 1 and group[0] in entries:
                    if any(c.optional for c in entries[group[0]].components):
                        serialised.add(group[0])
    logger.debug("GS1 syntax dictionary loaded: %d AIs", len(entries))
    return SyntaxDictionary(entries=entries, serialised_key_ais=frozenset(serialised))


@functools.cache
def get_dictionary() -> SyntaxDictionary:
    """The vendored dictionary, parsed on first use and cached."""
    return load_dictionary()
