"""Labels: the QR codes decode to the signed URL, text fits, and sheets print on A4 stocks."""

from __future__ import annotations

import base64
import datetime
import io
import logging
import math
import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from registry import labels
from registry.labels import LABEL_STOCKS, LabelData, qr_matrix, render_png, render_svg, write_pdf_sheet
from verification.digital_link import build_url

SVG = "{http://www.w3.org/2000/svg}"
COFFEE = "Cà phê rang xay Buôn Ma Thuột"


def make_label(
    i: int = 0,
    *,
    serial: bool = True,
    expiry: datetime.date | None = datetime.date(2027, 12, 31),
    product_name: str = COFFEE,
) -> LabelData:
    """A label as the registry prints it: a signed Digital Link of 160-180 characters."""
    rng = random.Random(i)
    gtin = f"0893600001{i % 1000:03d}{rng.randrange(10)}"
    lot = f"LOT2026{'ABC'[i % 3]}"
    serial_number = "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=12)) if serial else None
    kid = base64.urlsafe_b64encode(rng.randbytes(6)).decode()
    signature = base64.urlsafe_b64encode(rng.randbytes(64)).decode().rstrip("=")
    url = build_url(
        "https://verify.example.vn", gtin=gtin, lot=lot, serial=serial_number,
        exp=expiry.strftime("%y%m%d") if expiry else None, s=f"{kid}.{signature}",
    )
    return LabelData(url, gtin, lot, serial_number, expiry, product_name)


def label_stream(count: int) -> Iterator[LabelData]:
    for i in range(count):
        yield make_label(i, serial=i % 7 != 3)


def decode_all(image: Image.Image) -> list[str]:
    return [barcode.text for barcode in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} not found: these tests rasterise the PDF with poppler. "
            "Install it with `apt-get install -y poppler-utils`."
        )
    return path


def rasterise(pdf: Path, *, page: int, dpi: int) -> Image.Image:
    prefix = pdf.with_suffix("")
    subprocess.run(
        [poppler("pdftoppm"), "-r", str(dpi), "-gray", "-png", "-singlefile", "-f", str(page), "-l", str(page),
         str(pdf), str(prefix)],
        check=True,
    )
    return Image.open(f"{prefix}.png")


def page_count(pdf: Path) -> int:
    info = subprocess.run([poppler("pdfinfo"), str(pdf)], check=True, capture_output=True, text=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))


def write_sheet(tmp_path: Path, labels_: Iterator[LabelData] | list[LabelData], stock: str) -> tuple[Path, int]:
    pdf = tmp_path / f"{stock}.pdf"
    with pdf.open("wb") as out:
        pages = write_pdf_sheet(labels_, out, stock=stock)
    return pdf, pages


# --------------------------------------------------------------------------- QR encoding


@pytest.mark.parametrize("label", [make_label(1), make_label(2, serial=False), make_label(3, expiry=None)])
def test_qr_matrix_decodes_to_the_url_at_level_m_with_the_fixed_mask(label: LabelData) -> None:
    matrix = qr_matrix(label.url)
    assert len(matrix.rows) == matrix.size and all(len(row) == matrix.size for row in matrix.rows)
    quiet = labels.QUIET_ZONE
    image = Image.new("L", (matrix.size + 2 * quiet,) * 2, 255)
    image.paste(Image.frombytes("L", (matrix.size, matrix.size), b"".join(matrix.rows).translate(
        bytes([255, 0]) + bytes(254))), (quiet, quiet))
    image = image.resize((image.width * 4, image.height * 4), Image.Resampling.NEAREST)

    [barcode] = zxingcpp.read_barcodes(image)
    assert barcode.text == label.url
    assert barcode.extra["ECLevel"] == "M"
    assert barcode.extra["DataMask"] == labels.QR_MASK


def test_segno_fallback_encodes_the_same_symbol_size() -> None:
    url = make_label(4).url
    fallback = labels._qr_matrix_segno(url)
    assert fallback.size == qr_matrix(url).size  # same version at level M, so the same layout
    assert sum(length for _, _, length in fallback.dark_runs()) == sum(map(sum, fallback.rows))


def test_dark_runs_cover_exactly_the_dark_modules() -> None:
    matrix = qr_matrix(make_label(5).url)
    covered = {(x + dx, y) for y, x, length in matrix.dark_runs() for dx in range(length)}
    dark = {(x, y) for y in range(matrix.size) for x in range(matrix.size) if matrix.is_dark(x, y)}
    assert covered == dark


# --------------------------------------------------------------------------- PNG


@pytest.mark.parametrize("label", [make_label(6), make_label(7, serial=False, expiry=None)])
def test_render_png_decodes_to_exactly_the_url(label: LabelData) -> None:
    image = Image.open(io.BytesIO(render_png(label)))
    assert image.format == "PNG"
    assert decode_all(image) == [label.url]


def test_render_png_decodes_at_a_small_scale() -> None:
    label = make_label(8)
    assert decode_all(Image.open(io.BytesIO(render_png(label, scale=3)))) == [label.url]


def test_render_png_keeps_a_long_name_inside_the_label() -> None:
    label = make_label(9, product_name="Nước mắm cá cơm Phú Quốc thượng hạng 40°N " * 6)
    image = Image.open(io.BytesIO(render_png(label))).convert("L")
    margin = image.crop((image.width - 8, 0, image.width, image.height))
    assert margin.getextrema() == (255, 255), "text runs into the right edge"
    assert decode_all(image) == [label.url]


def test_render_png_rejects_a_zero_scale() -> None:
    with pytest.raises(ValueError):
        render_png(make_label(10), scale=0)


# --------------------------------------------------------------------------- SVG


def svg_texts(svg: str) -> list[str]:
    return [element.text or "" for element in ET.fromstring(svg.encode()).iter(f"{SVG}text")]


def test_render_svg_is_well_formed_and_escapes_markup_in_the_name() -> None:
    label = make_label(11, product_name='Trà <Đặc biệt> & "Co"\x07')
    svg = render_svg(label)
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    assert "<Đặc" not in svg and "&lt;Đặc biệt&gt; &amp;" in svg
    assert 'Trà <Đặc biệt> & "Co"' in svg_texts(svg)
    assert len(root.findall(f"{SVG}path")) == 1


def test_render_svg_shows_the_human_readable_lines() -> None:
    texts = svg_texts(render_svg(make_label(12)))
    label = make_label(12)
    assert f"GTIN {label.gtin}" in texts
    assert f"LOT {label.lot}" in texts
    assert f"SN {label.serial}" in texts
    assert "HSD/EXP 31/12/2027" in texts
    assert " ".join(texts).startswith("Cà phê rang xay")

    batch_texts = svg_texts(render_svg(make_label(13, serial=False, expiry=None)))
    assert not any(text.startswith(("SN ", "HSD/EXP ")) for text in batch_texts)


def test_render_svg_path_draws_exactly_the_qr_modules() -> None:
    label = make_label(14)
    matrix = qr_matrix(label.url)
    path = ET.fromstring(render_svg(label).encode()).find(f"{SVG}path").get("d")
    drawn = set()
    for x, y, length in re.findall(r"M([\d.]+) ([\d.]+)h(\d+)v1h-\3z", path):
        drawn |= {(float(x) + dx, float(y)) for dx in range(int(length))}
    origin_x = min(x for x, _ in drawn)
    origin_y = min(y for _, y in drawn)
    modules = {(x - origin_x, y - origin_y) for x, y in drawn}
    dark = {(x, y) for y in range(matrix.size) for x in range(matrix.size) if matrix.is_dark(x, y)}
    assert modules == dark


# --------------------------------------------------------------------------- stocks


@pytest.mark.parametrize("stock", LABEL_STOCKS.values(), ids=LABEL_STOCKS.keys())
def test_every_label_of_a_stock_fits_on_the_a4_page_without_overlap(stock: labels.LabelStock) -> None:
    assert (stock.page_width, stock.page_height) == (210.0, 297.0)
    boxes = [stock.label_box(i) for i in range(stock.labels_per_page)]
    for left, top, width, height in boxes:
        assert left >= 0 and top >= 0
        assert left + width <= 210.0 + 1e-6 and top + height <= 297.0 + 1e-6
    for (l1, t1, w1, h1), (l2, t2, _, _) in zip(boxes, boxes[1:]):
        assert l2 >= l1 + w1 - 1e-6 or t2 >= t1 + h1 - 1e-6
    with pytest.raises(IndexError):
        stock.label_box(stock.labels_per_page)


def test_the_common_stocks_have_their_published_sizes() -> None:
    sizes = {name: (s.label_width, s.label_height, s.columns, s.rows) for name, s in LABEL_STOCKS.items()}
    assert sizes["a4-24"] == (70.0, 37.0, 3, 8)
    assert sizes["a4-40"] == (52.5, 29.7, 4, 10)
    assert sizes["a4-65"] == (38.1, 21.2, 5, 13)


def test_a_stock_that_overflows_the_page_is_refused() -> None:
    with pytest.raises(ValueError):
        labels.LabelStock("bad", "too wide", 70.0, 37.0, 4, 8, left_margin=0, top_margin=0,
                          horizontal_pitch=70.0, vertical_pitch=37.0)


# --------------------------------------------------------------------------- PDF


def test_pdf_sheet_qr_codes_on_page_one_decode_to_their_urls(tmp_path: Path) -> None:
    stock = LABEL_STOCKS["a4-24"]
    expected = [label.url for label in label_stream(30)]
    pdf, pages = write_sheet(tmp_path, label_stream(30), "a4-24")

    assert pages == math.ceil(30 / stock.labels_per_page) == 2
    assert page_count(pdf) == pages
    dpi = 200
    page = rasterise(pdf, page=1, dpi=dpi)
    assert page.size == (round(210 / 25.4 * dpi), round(297 / 25.4 * dpi))
    for index in range(stock.labels_per_page):
        left, top, width, height = (round(v / 25.4 * dpi) for v in stock.label_box(index))
        crop = page.crop((left, top, left + width, top + height))
        assert decode_all(crop) == [expected[index]], f"label {index} on page 1"


def test_pdf_sheet_on_the_smallest_stock_decodes(tmp_path: Path) -> None:
    stock = LABEL_STOCKS["a4-65"]
    expected = [label.url for label in label_stream(stock.labels_per_page)]
    pdf, pages = write_sheet(tmp_path, label_stream(stock.labels_per_page), "a4-65")
    assert pages == 1
    page = rasterise(pdf, page=1, dpi=300)
    assert sorted(decode_all(page)) == sorted(expected)


def test_pdf_sheet_text_uses_a_font_with_vietnamese_glyphs(tmp_path: Path) -> None:
    label = make_label(15)
    pdf, _ = write_sheet(tmp_path, [label], "a4-14")
    text = subprocess.run([poppler("pdftotext"), str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    assert COFFEE in " ".join(text.split())
    assert f"GTIN {label.gtin}" in text and "HSD/EXP 31/12/2027" in text


@pytest.mark.parametrize("stock", LABEL_STOCKS.values(), ids=LABEL_STOCKS.keys())
def test_pdf_page_count_follows_the_stock(tmp_path: Path, stock: labels.LabelStock,
                                          caplog: pytest.LogCaptureFixture) -> None:
    count = 2 * stock.labels_per_page + 1
    with caplog.at_level(logging.WARNING, logger="registry.labels"):
        pdf, pages = write_sheet(tmp_path, label_stream(count), stock.name)
    assert pages == 3 == page_count(pdf)
    assert "QR modules under" not in caplog.text  # modules of at least 0.33 mm on every stock


def test_pdf_sheet_takes_its_labels_from_a_generator(tmp_path: Path) -> None:
    pulled = 0

    def counting() -> Iterator[LabelData]:
        nonlocal pulled
        for label in label_stream(50):
            pulled += 1
            yield label

    _, pages = write_sheet(tmp_path, counting(), "a4-40")
    assert (pulled, pages) == (50, 2)


def test_pdf_sheet_without_labels_has_no_pages(tmp_path: Path) -> None:
    _, pages = write_sheet(tmp_path, iter(()), "a4-24")
    assert pages == 0


def test_pdf_sheet_refuses_an_unknown_stock() -> None:
    with pytest.raises(ValueError, match="a4-24"):
        write_pdf_sheet([make_label(16)], io.BytesIO(), stock="letter-30")


@pytest.mark.parametrize("stock", list(LABEL_STOCKS.values()), ids=lambda s: s.name)
def test_the_gtin_lot_serial_and_expiry_are_never_cut_on_any_stock(stock: labels.LabelStock) -> None:
    """Shoppers and recall notices match goods on these: a 20-character lot (GS1's longest) had been
    printed "LOT ABCDEFGHIJ012345…" on a4-65 and "LOT WWWWWWWWWW…" on a4-40. A line too long breaks
    onto the next; the product name gives up its lines first, and everything stays on the label."""
    for lot, serial in (("W" * 20, "W" * 20), ("ABCDEFGHIJ0123456789", "0026AX1MK1GF")):
        label = LabelData(build_url("https://verify.example.vn", gtin="08936000010010", lot=lot, serial=serial,
                                    exp="271231", s="AAAAAAAA." + "B" * 86),
                          "08936000010010", lot, serial, datetime.date(2027, 12, 31), COFFEE * 3)
        matrix = qr_matrix(label.url)
        for index in range(stock.labels_per_page):
            _, _, width_mm, height_mm = labels._printable_box(stock, index, labels.PRINTER_MARGIN_MM)
            inset_mm, max_module, max_font = labels._sheet_limits(stock, labels.PRINTER_MARGIN_MM, matrix.size)
            layout = labels._layout(label, matrix.size, width=width_mm * labels.MM, height=height_mm * labels.MM,
                                    inset=inset_mm * labels.MM, max_module=max_module,
                                    min_font=labels.PRINT_MIN_FONT_PT, max_font=max_font)
            data = "".join(line.text for line in layout.lines if not line.bold)
            assert labels.ELLIPSIS not in data and f"LOT{lot}SN{serial}" in data.replace(" ", ""), (stock.name, data)
            for line in layout.lines:
                assert line.x + labels._text_width(line.text, line.bold) * line.size <= width_mm * labels.MM + 1e-6
                assert line.baseline <= height_mm * labels.MM - inset_mm * labels.MM + 1e-6, (stock.name, line)
