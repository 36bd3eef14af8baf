"""The batch-import CSV: its template, and rows parsed into ``register_batch`` bodies.

Only the file's shape is checked here (encoding, header, size); every value is checked by the
registry's own rules when the rows are previewed and imported, so the CSV and the form and the
API cannot disagree. Nothing here imports Flask.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from registry.errors import Invalid
from registry.rules import MAX_CERTIFICATIONS

__all__ = ["COLUMNS", "REQUIRED", "MAX_ROWS", "MAX_BYTES", "CsvRow", "certification_pairs", "template_csv",
           "parse_csv", "quantity_of"]

COLUMNS = ("gtin", "lot", "product_name", "brand", "category", "facility_name", "facility_address",
           "facility_gln", "facility_country", "production_date", "expiry_date", "quantity",
           "certification_scheme", "certification_id")
REQUIRED = ("gtin", "lot", "product_name", "facility_name", "production_date")
MAX_ROWS = 5000
MAX_BYTES = 2 * 1024 * 1024
_EXAMPLE = ("08936000010010", "L2026-001", "Cà phê rang xay 500 g", "Highland", "Coffee", "Xưởng Ea Tu",
            "Buôn Ma Thuột, Đắk Lắk", "", "VN", "2026-11-01", "2027-11-01", "1200", "VietGAP", "VG-0123")


@dataclass(frozen=True)
class CsvRow:
    """One data line: its line number in the file, the ``register_batch`` body built from it, and
    for each of the body's certifications the columns it came from (scheme, number)."""

    line: int
    data: dict[str, Any]
    certification_columns: tuple[tuple[str, str], ...] = ()

    def column(self, field: str) -> str:
        """The file's column a registry field is about (``facility.country`` is
        ``facility_country``, ``certifications.1.id`` the number column of the line's second
        certification); "" for a field no column holds."""
        found = re.fullmatch(r"certifications\.(\d+)\.(scheme|id)", field)
        if found is not None:
            index, part = int(found.group(1)), found.group(2)
            if index >= len(self.certification_columns):
                return ""
            return self.certification_columns[index][0 if part == "scheme" else 1]
        column = field.replace(".", "_")
        return column if column in COLUMNS else ""


def template_csv() -> str:
    """The header and one example line (UTF-8 with a BOM, so spreadsheets open Vietnamese right)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerow(_EXAMPLE)
    return "\ufeff" + buffer.getvalue()


def quantity_of(text: str) -> Any:
    """A whole number, thousands separators allowed ("1200", "1,200", "1.200"); anything else is
    passed on as it is, for the registry to refuse. The batch form reads it the same way (it had
    refused "1.200", which the CSV import took as 1200)."""
    compact = text.replace(" ", "")
    if not compact:
        return None
    if re.fullmatch(r"\d{1,3}([.,]\d{3})+|\d+", compact):
        return int(re.sub(r"[.,]", "", compact))
    return compact


def _date(text: str) -> str:
    """A day as Vietnamese spreadsheets write it back (day first: "01/11/2026", "1-11-2026",
    "1.11.2026") in the template's form (2026-11-01); anything else as it is, for the registry to
    read or refuse. Excel in a Vietnamese locale turns the template's dates into the first form."""
    found = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})", text)
    if found is None:
        return text
    day, month, year = found.groups()
    return f"{year}-{int(month):02d}-{int(day):02d}"


def certification_pairs(header: list[str]) -> list[tuple[str, str]]:
    """The certification columns a header has, in order: the template's ``certification_scheme``
    and ``certification_id``, then ``certification_scheme_2`` and ``certification_id_2`` and so on,
    for lines with more than one certification (as many as the registry takes on a record)."""
    pairs = [("certification_scheme", "certification_id")]
    pairs += [(f"certification_scheme_{n}", f"certification_id_{n}") for n in range(2, MAX_CERTIFICATIONS + 1)]
    return [pair for pair in pairs if pair[0] in header or pair[1] in header]


def _row(line: int, cells: dict[str, str], pairs: list[tuple[str, str]]) -> CsvRow:
    get = lambda name: (cells.get(name) or "").strip()  # noqa: E731
    body: dict[str, Any] = {
        "gtin": get("gtin"), "lot": get("lot"),
        "product": {"name": get("product_name"), "brand": get("brand"), "category": get("category")},
        "facility": {"name": get("facility_name"), "address": get("facility_address"), "gln": get("facility_gln"),
                     "country": get("facility_country")},
        "production_date": _date(get("production_date")), "expiry_date": _date(get("expiry_date")),
        "quantity": quantity_of(get("quantity")),
    }
    used = tuple(pair for pair in pairs if get(pair[0]) or get(pair[1]))  # a blank pair is no certification
    if used:
        body["certifications"] = [{"scheme": get(scheme), "id": get(number)} for scheme, number in used]
    return CsvRow(line=line, data=body, certification_columns=used)


def parse_csv(raw: bytes | str) -> list[CsvRow]:
    """Parse an uploaded file. Raises ``Invalid`` (``CSV_*`` codes) for a file that is not the
    template's shape; the values themselves are left to the registry."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_BYTES:
            raise Invalid(f"the file is larger than {MAX_BYTES // 1024 // 1024} MiB", code="CSV_TOO_LARGE", field="file")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid("the file is not UTF-8 text", code="CSV_UNREADABLE", field="file") from None
    else:
        text = raw.lstrip("\ufeff")
    if "\x00" in text:
        raise Invalid("the file is not a CSV text file", code="CSV_UNREADABLE", field="file")
    sample = text[:4096]
    delimiter = ";" if sample.split("\n", 1)[0].count(";") > sample.split("\n", 1)[0].count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise Invalid("the file is empty", code="CSV_EMPTY", field="file") from None
    except csv.Error as exc:  # a cell over the reader's limit (128 KiB), as on any later line
        raise Invalid(f"line 1: {exc}", code="CSV_UNREADABLE", field="file") from None
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise Invalid(f"the header lacks {', '.join(missing)}; download the template", code="CSV_HEADER",
                      field="file")
    pairs = certification_pairs(header)
    rows: list[CsvRow] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise Invalid(f"at most {MAX_ROWS} rows in one import", code="CSV_TOO_LARGE", field="file")
            rows.append(_row(reader.line_num, dict(zip(header, cells)), pairs))
    except csv.Error as exc:
        raise Invalid(f"line {reader.line_num}: {exc}", code="CSV_UNREADABLE", field="file") from None
    if not rows:
        raise Invalid("the file has a header but no rows", code="CSV_EMPTY", field="file")
    return rows
