"""Tests for verification.parsing: the GS1 sample cases, then one test per behaviour."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest
from biip.checksums import gs1_standard_check_digit
from hypothesis import given, settings
from hypothesis import strategies as st

from verification import parsing
from verification.digital_link import build_url
from verification.gs1 import get_dictionary
from verification.gs1.dictionary import CSET82
from verification.parsing import MalformedCode, ParsedCode, parse_code

REFERENCE_DAY = datetime.date(2026, 11, 22)  # cases.jsonl resolves centuries around 2026


def _shared_dir() -> Path:
    parents = Path(__file__).resolve().parents
    candidate = parents[3] / "shared" if len(parents) > 3 else None
    if candidate is not None and (candidate / "samples").is_dir():
        return candidate
    env = os.environ.get("SHARED_DIR")
    if env:
        return Path(env)
    return candidate or Path("shared")


CASES_PATH = _shared_dir() / "samples" / "gs1" / "cases.jsonl"


@pytest.fixture(autouse=True)
def _fixed_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "_today", lambda: REFERENCE_DAY)


def _load_cases() -> list[dict[str, Any]]:
    if not CASES_PATH.is_file():
        pytest.skip(f"sample cases not found at {CASES_PATH} (set SHARED_DIR)")
    with CASES_PATH.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _fields(code: ParsedCode) -> dict[str, Any]:
    return {
        "gtin": code.gtin,
        "lot": code.lot,
        "serial": code.serial,
        "expiry": code.expiry.isoformat() if code.expiry else None,
        "expiry_raw": code.expiry_raw,
        "other_ais": dict(code.other_ais),
    }


def _outcome(text: str, *, lenient: bool) -> tuple[str, Any]:
    try:
        return "ok", _fields(parse_code(text, lenient=lenient))
    except MalformedCode as exc:
        hint = f" [hint: {exc.hint}]" if exc.hint else ""
        return "error", f"{exc.reason}: {exc.detail}{hint}"


def _judge(case: dict[str, Any], *, lenient: bool) -> tuple[bool, str, Any, Any]:
    """Whether the parser meets the case; returns (passed, mode, expected, got)."""
    if lenient and "lenient_valid" in case:
        should_parse, expected = case["lenient_valid"], case.get("lenient_expected")
    else:
        should_parse, expected = case["valid"], case.get("expected")
    status, got = _outcome(case["input"], lenient=lenient)
    if should_parse:
        return status == "ok" and got == expected, "valid", expected, got
    return status == "error", "invalid", f"MalformedCode ({case.get('reason')})", got


def _run(cases: list[dict[str, Any]], *, lenient: bool) -> tuple[float, dict[str, list[int]]]:
    tally: dict[str, list[int]] = {}
    misses = []
    for case in cases:
        passed, mode, expected, got = _judge(case, lenient=lenient)
        group = "lenient-marked" if lenient and "lenient_valid" in case else mode
        counts = tally.setdefault(group, [0, 0])
        counts[0] += passed
        counts[1] += 1
        if not passed:
            misses.append((case["id"], case["input"], expected, got))
    label = "lenient" if lenient else "strict"
    for case_id, text, expected, got in misses:
        print(f"MISS [{label}] {case_id} input={text!r}")
        print(f"    expected: {expected}\n    got:      {got}")
    total = sum(n for _, n in tally.values())
    rate = sum(p for p, _ in tally.values()) / total
    summary = ", ".join(f"{k} {p}/{n}" for k, (p, n) in sorted(tally.items()))
    print(f"[{label}] pass rate {rate:.1%} ({summary})")
    return rate, tally


def test_sample_cases_strict() -> None:
    rate, _ = _run(_load_cases(), lenient=False)
    assert rate >= 0.95


def test_sample_cases_lenient() -> None:
    rate, tally = _run(_load_cases(), lenient=True)
    assert rate >= 0.95
    passed, total = tally.get("lenient-marked", [0, 0])
    assert passed == total


def test_check_digit_cases_report_bad_check_digit() -> None:
    for case in _load_cases():
        if case.get("invalid_class") == "check_digit" and "incorrect" in case["reason"]:
            with pytest.raises(MalformedCode) as info:
                parse_code(case["input"], lenient=False)
            assert info.value.reason == "BAD_CHECK_DIGIT", case["id"]


# ---- our own Digital Link


def test_round_trip_with_build_url() -> None:
    url = build_url(
        "https://x.example",
        gtin="08936000010010",
        lot="L/1",
        serial="ABC",
        exp="261231",
        s="abcdEFGH.sigsig",
    )
    assert url == "https://x.example/01/08936000010010/10/L%2F1/21/ABC?17=261231&s=abcdEFGH.sigsig"
    code = parse_code(url)
    assert code.kind == "digital_link"
    assert (code.gtin, code.lot, code.serial) == ("08936000010010", "L/1", "ABC")
    assert code.expiry == datetime.date(2026, 12, 31)
    assert code.expiry_raw == "261231"
    assert code.signature == "abcdEFGH.sigsig"
    assert code.host == "x.example"
    assert code.other_ais == {}


def test_batch_level_code_without_serial_or_expiry() -> None:
    code = parse_code(build_url("https://x.example/", gtin="08936000010010", lot="A1"))
    assert (code.lot, code.serial, code.expiry, code.signature) == ("A1", None, None, None)


def test_upper_case_host_and_scheme() -> None:
    code = parse_code("HTTPS://X.EXAMPLE/01/08936000010010/10/A1")
    assert code.host == "x.example"
    assert "UPPERCASE_URI" in code.notes


def test_mixed_case_scheme_is_refused_with_hint() -> None:
    with pytest.raises(MalformedCode) as info:
        parse_code("HtTps://x.example/01/08936000010010/10/A1")
    assert info.value.reason == "MALFORMED_CODE"
    assert info.value.hint


def test_symbology_identifier_before_url() -> None:
    code = parse_code("]Q1https://x.example/01/08936000010010/10/A1?s=k.v")
    assert code.symbology == "]Q1"
    assert code.signature == "k.v"


# ---- failures


def test_bad_check_digit() -> None:
    with pytest.raises(MalformedCode) as info:
        parse_code("08936000010013")
    assert info.value.reason == "BAD_CHECK_DIGIT"
    assert info.value.detail == "GTIN 08936000010013 has check digit 3, expected 0"


def test_design_example_gtin_has_a_wrong_check_digit() -> None:
    # DESIGN.md's example 08936000010012 fails the GS1 check digit: 0893600001001 -> 0.
    with pytest.raises(MalformedCode) as info:
        parse_code("08936000010012")
    assert info.value.reason == "BAD_CHECK_DIGIT"


def test_bad_check_digit_in_digital_link() -> None:
    with pytest.raises(MalformedCode) as info:
        parse_code("https://x.example/01/08936000010013/10/A1")
    assert info.value.reason == "BAD_CHECK_DIGIT"


@pytest.mark.parametrize(
    "text",
    ["hello world", "", "   ", "https://example.com/about", "ftp://x/01/08936000010010", "]d2"],
)
def test_free_text_is_malformed(text: str) -> None:
    with pytest.raises(MalformedCode) as info:
        parse_code(text)
    assert info.value.reason == "MALFORMED_CODE"
    assert info.value.detail


def test_strict_refuses_zero_suppressed_gtin_in_digital_link() -> None:
    url = "https://x.example/01/8936000010010/10/A1"
    with pytest.raises(MalformedCode):
        parse_code(url, lenient=False)
    code = parse_code(url, lenient=True)
    assert code.gtin == "08936000010010"
    assert "ZERO_SUPPRESSED_GTIN" in code.notes


# ---- dates


def test_day_00_expiry_is_last_day_of_month() -> None:
    code = parse_code("(01)08936000010010(10)A1(17)270200")
    assert code.expiry == datetime.date(2027, 2, 28)
    assert code.expiry_raw == "270200"
    assert parse_code("(01)08936000010010(17)280200").expiry == datetime.date(2028, 2, 29)


def test_century_sliding_window() -> None:
    assert parse_code("(01)08936000010010(17)761231").expiry == datetime.date(2076, 12, 31)
    assert parse_code("(01)08936000010010(17)771231").expiry == datetime.date(1977, 12, 31)


# ---- plain GTINs and element strings


def test_plain_ean13() -> None:
    body = "893600001001"
    ean13 = body + str(gs1_standard_check_digit(body))
    code = parse_code(ean13)
    assert code.kind == "gtin"
    assert code.gtin == "0" + ean13
    assert len(code.gtin) == 14


def test_ean8_with_identifier() -> None:
    code = parse_code("]E496385074")
    assert (code.kind, code.gtin, code.symbology) == ("gtin", "00000096385074", "]E4")


def test_gs1_datamatrix_element_string() -> None:
    code = parse_code("]d201089360000100101726123110LOT-7\x1d21SN001")
    assert code.kind == "element_string"
    assert (code.gtin, code.lot, code.serial) == ("08936000010010", "LOT-7", "SN001")
    assert code.expiry == datetime.date(2026, 12, 31)
    assert code.symbology == "]d2"


def test_scanner_trailing_newline_is_trimmed() -> None:
    code = parse_code("]d20108936000010010\r\n")
    assert code.gtin == "08936000010010"
    assert "WHITESPACE_TRIMMED" in code.notes


def test_missing_fnc1_after_lot() -> None:
    glued = "]d2010893600001001010ABC1217261231"
    strict = parse_code(glued, lenient=False)
    assert strict.lot == "ABC1217261231"
    assert "POSSIBLE_MISSING_FNC1" in strict.notes
    lenient = parse_code(glued)
    assert (lenient.lot, lenient.expiry_raw) == ("ABC12", "261231")
    assert "MISSING_FNC1_SPLIT" in lenient.notes


def test_missing_fnc1_refused_in_strict_mode_with_hint() -> None:
    glued = "]d2010893600001001010ABCDEFGHIJKLMNOPQR17261231"  # lot would be 26 characters
    with pytest.raises(MalformedCode) as info:
        parse_code(glued, lenient=False)
    assert info.value.hint and "(17)" in info.value.hint
    assert parse_code(glued).lot == "ABCDEFGHIJKLMNOPQR"


def test_association_rules_from_dictionary() -> None:
    with pytest.raises(MalformedCode, match="requires"):
        parse_code("(10)ABC")
    with pytest.raises(MalformedCode, match="mutually exclusive"):
        parse_code("(01)12345678901231(02)12345678901231")


def test_dictionary_is_read_as_data() -> None:
    dictionary = get_dictionary()
    gtin = dictionary.get("01")
    assert gtin is not None and not gtin.fnc1_required and gtin.dl_qualifiers
    lot = dictionary.get("10")
    assert lot is not None and lot.fnc1_required and lot.max_length == 20


# ---- property: whatever build_url prints, parse_code reads back

_digits = st.text(alphabet="0123456789", min_size=13, max_size=13)
_cset82_value = st.text(alphabet=CSET82, min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(body=_digits, lot=_cset82_value, serial=st.one_of(st.none(), _cset82_value))
def test_build_url_round_trip_property(body: str, lot: str, serial: str | None) -> None:
    gtin = body + str(gs1_standard_check_digit(body))
    if not gtin[1:5].isdigit():  # pragma: no cover - digits only
        return
    url = build_url("https://x.example", gtin=gtin, lot=lot, serial=serial, s="kid12345.sig")
    code = parse_code(url, lenient=False)
    assert (code.gtin, code.lot, code.serial, code.signature) == (gtin, lot, serial, "kid12345.sig")


@pytest.mark.parametrize("url", [
    "https://x.example/01/08936000010010/10/%ZZ",
    "https://x.example/01/08936000010010/10/CF%2",
    "https://x.example/01/08936000010010/10/L1/21/A%G1",
    "https://x.example/01/08936000010010/10/L1?17=2612%3",
])
def test_a_broken_percent_escape_is_malformed_not_an_unknown_batch(url) -> None:
    """'%' without two hex digits after it is in no URI a printer made: the code is malformed (it
    had been read as the lot '%ZZ', and answered 'unknown batch')."""
    with pytest.raises(MalformedCode) as err:
        parse_code(url)
    assert "percent-escape" in err.value.detail


def test_a_percent_encoded_lot_is_still_read() -> None:
    assert parse_code("https://x.example/01/08936000010010/10/L%2F1%25").lot == "L/1%"
