"""GS1 rules the registry enforces on what it signs, read from GS1's Barcode Syntax Dictionary
(the same data the verifier's parser uses), so both sides agree on what a valid code is."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

import pycountry
from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.vn import mst

from registry.errors import Invalid
from verification.gs1.dictionary import AIValueError, century_for, get_dictionary

__all__ = ["parse_date", "check_gtin", "check_gln", "check_lot", "check_code_date", "check_serial", "check_gs1_prefix",
           "check_tax_code", "check_country", "check_length", "yymmdd", "MAX_NAME_LENGTH", "MAX_ADDRESS_LENGTH",
           "MAX_CERTIFICATION_TEXT", "MAX_CERTIFICATIONS", "MAX_QUANTITY", "RECORD_TEXT", "shown_status", "fold",
           "blank", "record_text", "check_text"]

# What an origin record may hold. The record is signed, kept in the transparency log for good and
# sent with every verification of the batch's codes: a 400,000-character product name typed into the
# portal's form had been signed into a record of 500 KB. The registry holds every way in to these
# (the form, the CSV import, the API, the command line, a record signed by the producer's own key);
# the API's schemas take the same numbers, so that its OpenAPI document says them.
MAX_NAME_LENGTH = 200  # characters: a product's name, brand and category, a facility's name
MAX_ADDRESS_LENGTH = 500  # characters: a facility's address
MAX_CERTIFICATION_TEXT = 100  # characters: a certification's scheme, and its number
MAX_CERTIFICATIONS = 20
#: A batch's largest declared quantity: far above any lot, and exact in every JSON reader (< 2^53).
MAX_QUANTITY = 10**12
#: The fields of a record's product and facility, each with its longest text (None: held to its own
#: form instead, the GLN's 13 digits and the country's two letters). No other field is signed.
RECORD_TEXT: dict[str, dict[str, int | None]] = {
    "product": {"name": MAX_NAME_LENGTH, "brand": MAX_NAME_LENGTH, "category": MAX_NAME_LENGTH},
    "facility": {"name": MAX_NAME_LENGTH, "address": MAX_ADDRESS_LENGTH, "gln": None, "country": None},
}


def shown_status(status: str, expiry_date: date | None, today: date) -> str:
    """A batch's status as shoppers' verdicts call it: the registry keeps ``active`` or
    ``recalled``; an active batch past its expiry date (``today`` is the date in Vietnam) is
    ``expired``. Every answer that names a batch's status says this one."""
    return "expired" if status == "active" and expiry_date is not None and expiry_date < today else status


def _check_ai(ai: str, value: str, *, field: str, code: str, label: str) -> str:
    try:
        get_dictionary().validate_value(ai, value)
    except AIValueError as exc:
        raise Invalid(f"{label} {value!r}: {exc.detail}", code="BAD_CHECK_DIGIT" if exc.check_digit else code,
                      field=field) from None
    return value


def check_gtin(value: str) -> str:
    """Return the GTIN as 14 digits (GTIN-8/12/13 are zero-padded), or raise ``Invalid``."""
    value = value.strip()
    if not value.isdigit() or len(value) not in (8, 12, 13, 14):
        raise Invalid(f"GTIN must be 8, 12, 13 or 14 digits, got {value!r}", code="BAD_GTIN", field="gtin")
    return _check_ai("01", value.zfill(14), field="gtin", code="BAD_GTIN", label="GTIN")


def check_gln(value: str) -> str:
    return _check_ai("414", value, field="facility.gln", code="BAD_GLN", label="GLN")


def check_lot(value: str) -> str:
    """AI (10): 1 to 20 characters of the GS1 AI encodable character set 82, and not a path's dot
    segment: a lot of ``.`` or ``..`` is a path step in the Digital Link URL (/10/..), which every
    browser and client resolves away before sending it (percent-encoded too, by the URL standard),
    so no printed code could be opened."""
    if value in (".", ".."):
        raise Invalid(f"lot {value!r} cannot stand in a Digital Link URL: browsers resolve it as a path step",
                      code="LOT_UNPRINTABLE", field="lot")
    return _check_ai("10", value, field="lot", code="BAD_LOT", label="lot")


def check_code_date(day: date, *, field: str, today: date) -> date:
    """A date a code carries as YYMMDD (AI 17): the two-digit year must read back as ``day``'s by
    GS1's sliding century window (General Specifications 7.12), else every printed code would
    carry another date (9999-12-31 read as 1999-12-31: expired, and a mismatch)."""
    if century_for(day.year % 100, today=today) != day.year:
        raise Invalid(f"{field} {day.isoformat()} cannot be carried by a code: its two-digit year reads as "
                      f"{century_for(day.year % 100, today=today)} (at most 50 years from today)",
                      code="DATE_OUT_OF_RANGE", field=field)
    return day


def check_serial(value: str) -> str:
    return _check_ai("21", value, field="serial", code="BAD_SERIAL", label="serial")


def check_gs1_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix.isdigit() or not 4 <= len(prefix) <= 12:
        raise Invalid(f"a GS1 company prefix is 4 to 12 digits, got {prefix!r}", code="BAD_PREFIX",
                      field="gs1_prefixes")
    return prefix


def check_tax_code(value: str, *, country: str = "VN") -> str:
    """A producer's tax code. In Vietnam a mã số thuế: 10 digits, or for a branch 10 digits, a
    hyphen and 3 digits (``0312345673-001``); ASCII digits only ("abc" had passed), the 10th digit the
    check digit of the first nine (python-stdnum's ``stdnum.vn.mst``). A producer of
    another country (an importer's supplier) has its own country's number: letters and digits,
    with the separators such numbers are written with (``DE123456789``, ``91310000-MA1FL``)."""
    if country.upper() == "VN":
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{10}(-[0-9]{3})?", value):
            raise Invalid(f"a Vietnamese tax code is 10 digits, or 10 digits, a hyphen and 3 digits for a branch, "
                          f"got {value!r}", code="BAD_TAX_CODE", field="tax_code")
        try:
            mst.validate(value)  # the 10th digit checks the first nine; no sequence or branch is all zeros
        except InvalidChecksum:
            raise Invalid(f"the tax code {value!r} has a wrong check digit (its 10th digit): a typing mistake",
                          code="BAD_TAX_CODE", field="tax_code") from None
        except ValidationError:
            raise Invalid(f"no tax code is {value!r}: its sequence (digits 3 to 9) or its branch number is zero",
                          code="BAD_TAX_CODE", field="tax_code") from None
    elif not isinstance(value, str) or not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z ./-]{0,30}[0-9A-Za-z]?", value):
        raise Invalid(f"a tax code is letters and digits (with . / - or spaces between), got {value!r}",
                      code="BAD_TAX_CODE", field="tax_code")
    return value


def check_country(code: str) -> str:
    """An assigned ISO 3166-1 alpha-2 code (pycountry's list), upper-cased. Any two letters had
    passed: "Vi", what a two-letter field keeps of "Việt Nam", signed "US Virgin Islands" into an
    origin record for good."""
    if (not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{2}", code)
            or pycountry.countries.get(alpha_2=code.upper()) is None):
        raise Invalid(f"country must be an ISO 3166-1 alpha-2 code, got {code!r}", code="BAD_COUNTRY",
                      field="country")
    return code.upper()


def fold(text: str | None) -> str:
    """Lower-case without diacritics, so "ca phe" finds "Cà phê" and "dak lak" finds "Đắk Lắk": what
    searches compare (publications, recalls, cases)."""
    text = (text or "").replace("Đ", "D").replace("đ", "d").casefold()
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def blank(text: str | None) -> bool:
    """Whether ``text`` shows nothing: empty, or only spaces and invisible characters (a zero-width
    space, a joiner, a direction mark: Unicode's separators, controls and format characters), which
    ``str.strip`` keeps. A recall's reason of one zero-width space had been signed into the log."""
    return not any(unicodedata.category(c)[0] not in "ZC" for c in text or "")


#: The format characters a record's text may hold: the zero-width joiner and non-joiner, which emoji
#: and some scripts need. Every other one is invisible, and some make a text display as another:
#: the bidirectional overrides (U+202E shows "Trà sen" as "nes àrT"), a zero-width space inside a
#: name that then matches no search, a byte order mark.
ALLOWED_FORMAT = frozenset("\u200c\u200d")


def record_text(value: Any) -> str:
    """A text as an origin record is signed: NFC, so that a name typed where accents are composed
    ("Trà", as Vietnamese keyboards send it) and where they are not ("Tra" + U+0300, as macOS may
    send it) is one name, which searches find."""
    return unicodedata.normalize("NFC", str(value))


def check_text(text: str, *, field: str, limit: int | None) -> str:
    """A record's free text: no control character (a BEL, a line break: no label shows them; the
    record is signed into the log for good) nor invisible format character but the joiners
    (``ALLOWED_FORMAT``; ``BAD_CHARACTER``), and at most ``limit`` characters (``TOO_LONG``)."""
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc" or (category == "Cf" and ch not in ALLOWED_FORMAT):
            raise Invalid(f"{field} holds U+{ord(ch):04X}, an invisible or control character that no label shows",
                          code="BAD_CHARACTER", field=field)
    return text if limit is None else check_length(text, field=field, limit=limit)


def check_length(text: str, *, field: str, limit: int) -> str:
    """Free text of at most ``limit`` characters (as the API's schemas count them), or ``TOO_LONG``."""
    if len(text) > limit:
        raise Invalid(f"{field} is at most {limit:,} characters, got {len(text):,}", code="TOO_LONG", field=field)
    return text


def yymmdd(day: date | None) -> str | None:
    return day.strftime("%y%m%d") if day else None


def parse_date(value: Any, name: str) -> date | None:
    """``YYYY-MM-DD`` (or a date) to a date; empty is None; anything else raises ``Invalid``."""
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise Invalid(f"{name} must be a date YYYY-MM-DD, got {value!r}", code="BAD_DATE", field=name) from None
