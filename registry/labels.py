"""Printable labels for goods: the QR code with its GS1 Digital Link plus human-readable text.

Three outputs share one layout:

* :func:`render_png` - one label as a PNG (Pillow), for previews and thermal printers;
* :func:`render_svg` - one label as SVG, the QR as a single vector ``<path>``;
* :func:`write_pdf_sheet` - A4 sheets of die-cut labels (:data:`LABEL_STOCKS`), streamed
  page by page from any iterable of :class:`LabelData`.

QR encoding (:func:`qr_matrix`) uses zxing-cpp's native writer when it is available
(``zxingcpp.create_barcode``, zxing-cpp 3.x), which is about two orders of magnitude faster than
pure-Python encoders, and falls back to segno with a fixed mask otherwise. Error correction is
always level M.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape

__all__ = [
    "CODES_COLUMNS",
    "codes_csv",
    "MAX_LABELS_PER_SHEET",
    "LABEL_STOCKS",
    "LabelData",
    "LabelStock",
    "QrMatrix",
    "qr_matrix",
    "render_png",
    "render_svg",
    "write_pdf_sheet",
]

logger = logging.getLogger(__name__)

#: The most labels one PDF sheet takes: a 10,000-label PDF is written in 8–25 s on these machines
#: (bench/labels.py), well within a worker's timeout; a larger batch is printed in parts.
MAX_LABELS_PER_SHEET = 10_000
MM = 72 / 25.4
"""PDF points per millimetre."""

QUIET_ZONE = 4
"""Light modules around the symbol, as ISO/IEC 18004 asks for QR codes."""

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_REGULAR_FILES = ("DejaVuSansCondensed.ttf", "DejaVuSans.ttf")
FONT_BOLD_FILES = ("DejaVuSansCondensed-Bold.ttf", "DejaVuSans-Bold.ttf")
PDF_FONT_REGULAR = "LabelSans"
PDF_FONT_BOLD = "LabelSans-Bold"

# Layout of a printed label, in millimetres and points.
PRINT_INSET_MM = 0.75
"""Distance kept clear along every label edge, for die-cut and feed tolerance..."""
PRINT_MIN_INSET_MM = 0.25
"""...which small labels give up, down to this, to keep QR modules at PRINT_MIN_MODULE_MM."""
PRINT_MAX_MODULE_MM = 0.5
"""Larger modules scan no better and only take room from the text."""
PRINT_MIN_MODULE_MM = 0.33
PRINTER_MARGIN_MM = 4.0
"""Office laser and inkjet printers leave about this much of the paper's edge blank."""
PRINT_MIN_FONT_PT = 4.0
PRINT_MAX_FONT_PT = 9.0

LINE_PITCH = 1.22
"""Baseline-to-baseline distance, as a multiple of the font size."""
ASCENT = 0.93
"""DejaVu's ascender, as a multiple of the font size."""
ELLIPSIS = "…"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class LabelData:
    """What one label shows. ``url`` is the signed GS1 Digital Link URI the QR code carries."""

    url: str
    gtin: str
    lot: str
    serial: str | None
    expiry: datetime.date | None
    product_name: str


#: The list of a batch's codes, for producers printing on their own label printers (or with a
#: print shop's software): every code's signed URL, from which the QR codes are made.
CODES_COLUMNS = ("gtin", "lot", "serial", "expiry", "url")


def codes_csv(items: Iterable[LabelData]) -> Iterator[str]:
    """The lines of a CSV of ``items`` (``Registry.labels``): one code a line, in issue order."""
    from registry.exports import csv_lines

    return csv_lines(CODES_COLUMNS, ((i.gtin, i.lot, i.serial, i.expiry.isoformat() if i.expiry else None, i.url)
                                     for i in items))


@dataclass(frozen=True, slots=True)
class LabelStock:
    """An A4 sheet of die-cut labels. All lengths in millimetres, measured from the top left.

    ``horizontal_pitch`` and ``vertical_pitch`` are the distances between the left (top) edges of
    neighbouring labels, so the gap between labels is the pitch minus the label size.
    """

    name: str
    description: str
    label_width: float
    label_height: float
    columns: int
    rows: int
    left_margin: float
    top_margin: float
    horizontal_pitch: float
    vertical_pitch: float
    page_width: float = 210.0
    page_height: float = 297.0

    def __post_init__(self) -> None:
        if self.horizontal_pitch < self.label_width or self.vertical_pitch < self.label_height:
            raise ValueError(f"label stock {self.name}: labels overlap")
        right = self.left_margin + (self.columns - 1) * self.horizontal_pitch + self.label_width
        bottom = self.top_margin + (self.rows - 1) * self.vertical_pitch + self.label_height
        if self.left_margin < 0 or self.top_margin < 0:
            raise ValueError(f"label stock {self.name}: negative margin")
        if right > self.page_width + 0.01 or bottom > self.page_height + 0.01:
            raise ValueError(f"label stock {self.name}: labels do not fit on the page")

    @property
    def labels_per_page(self) -> int:
        return self.columns * self.rows

    @property
    def edge_to_edge(self) -> bool:
        """The labels meet at the sheet's sides: no margin to the left, none between columns."""
        return self.left_margin == 0 and self.horizontal_pitch == self.label_width

    def label_box(self, index: int) -> tuple[float, float, float, float]:
        """``(left, top, width, height)`` in mm from the page's top left of label ``index`` on a
        page, counting left to right, then top to bottom."""
        if not 0 <= index < self.labels_per_page:
            raise IndexError(f"label stock {self.name} has {self.labels_per_page} labels a page")
        row, column = divmod(index, self.columns)
        return (
            self.left_margin + column * self.horizontal_pitch,
            self.top_margin + row * self.vertical_pitch,
            self.label_width,
            self.label_height,
        )


LABEL_STOCKS: dict[str, LabelStock] = {
    stock.name: stock
    for stock in (
        LabelStock(
            "a4-14", "99.1 x 38.1 mm, 2 x 7 (Avery L7163)",
            99.1, 38.1, 2, 7, left_margin=4.65, top_margin=15.15,
            horizontal_pitch=101.6, vertical_pitch=38.1,
        ),
        LabelStock(
            "a4-21", "63.5 x 38.1 mm, 3 x 7 (Avery L7160)",
            63.5, 38.1, 3, 7, left_margin=7.25, top_margin=15.15,
            horizontal_pitch=66.0, vertical_pitch=38.1,
        ),
        LabelStock(
            "a4-24", "70 x 37 mm, 3 x 8 (Avery 3474)",
            70.0, 37.0, 3, 8, left_margin=0.0, top_margin=0.5,
            horizontal_pitch=70.0, vertical_pitch=37.0,
        ),
        LabelStock(
            "a4-40", "52.5 x 29.7 mm, 4 x 10 (Avery 3651)",
            52.5, 29.7, 4, 10, left_margin=0.0, top_margin=0.0,
            horizontal_pitch=52.5, vertical_pitch=29.7,
        ),
        LabelStock(
            "a4-65", "38.1 x 21.2 mm, 5 x 13 (Avery L7651)",
            38.1, 21.2, 5, 13, left_margin=4.75, top_margin=10.7,
            horizontal_pitch=40.6, vertical_pitch=21.2,
        ),
    )
}


# --------------------------------------------------------------------------- QR encoding


_DARK_RUN = re.compile(rb"\x01+")
_GREY_TO_BIT = bytes(1 if value < 128 else 0 for value in range(256))


@dataclass(frozen=True, slots=True)
class QrMatrix:
    """The modules of a QR symbol without its quiet zone: ``rows[y][x]`` is 1 when dark, else 0."""

    size: int
    rows: tuple[bytes, ...]

    def is_dark(self, x: int, y: int) -> bool:
        return self.rows[y][x] == 1

    def dark_runs(self) -> Iterator[tuple[int, int, int]]:
        """``(y, x, length)`` of every horizontal run of dark modules, top to bottom."""
        for y, row in enumerate(self.rows):
            for match in _DARK_RUN.finditer(row):
                yield y, match.start(), match.end() - match.start()


QR_MASK = 2
"""The data mask every code uses. Any of the eight decodes; searching for the best one is what
makes encoders slow (zxing-cpp: 1,500 codes/s searching, 8,700 with a fixed mask). Over signed
Digital Links of our shape, mask 2 has the lowest ISO 18004 penalty on average (45 points above
the best mask, against 166-434 for the others) and is the one a full search most often picks.
"""


def _qr_matrix_zxing(url: str) -> QrMatrix:
    import zxingcpp

    barcode = zxingcpp.create_barcode(url, zxingcpp.BarcodeFormat.QRCode, ec_level="M", data_mask=QR_MASK)
    image = barcode.to_image(scale=1, add_quiet_zones=False)
    height, width = image.shape
    grey = memoryview(image).tobytes()
    bits = grey.translate(_GREY_TO_BIT)
    return QrMatrix(width, tuple(bits[y * width:(y + 1) * width] for y in range(height)))


def _qr_matrix_segno(url: str) -> QrMatrix:
    import segno

    symbol = segno.make_qr(url, error="m", boost_error=False, mask=QR_MASK)
    return QrMatrix(len(symbol.matrix), tuple(bytes(row) for row in symbol.matrix))


def _pick_encoder() -> Callable[[str], QrMatrix]:
    try:
        import zxingcpp
    except ImportError:
        return _qr_matrix_segno
    if hasattr(zxingcpp, "create_barcode"):
        return _qr_matrix_zxing
    return _qr_matrix_segno  # zxing-cpp 2.x has no writer API with an error-correction level


_ENCODER: Callable[[str], QrMatrix] | None = None


def qr_matrix(url: str) -> QrMatrix:
    """Encode ``url`` as a QR code, error correction level M, and return its modules."""
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = _pick_encoder()
        logger.debug("QR encoder: %s", _ENCODER.__name__)
    return _ENCODER(url)


# --------------------------------------------------------------------------- fonts


def _font_file(candidates: tuple[str, ...]) -> Path | None:
    for name in candidates:
        path = FONT_DIR / name
        if path.is_file():
            return path
    return None


@functools.cache
def _pil_font(bold: bool, size: int):  # -> ImageFont.FreeTypeFont | ImageFont.ImageFont
    from PIL import ImageFont

    path = _font_file(FONT_BOLD_FILES if bold else FONT_REGULAR_FILES)
    if path is None:
        logger.warning("DejaVu fonts missing from %s: label text may lack Vietnamese glyphs", FONT_DIR)
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(path), size=size)


_MEASURE_SIZE = 1000


@functools.lru_cache(maxsize=4096)
def _text_width(text: str, bold: bool) -> float:
    """Advance width of ``text`` at font size 1, in the same units as the font size."""
    return _pil_font(bold, _MEASURE_SIZE).getlength(text) / _MEASURE_SIZE


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class _TextLine:
    text: str
    x: float
    baseline: float  # distance from the top of the label
    size: float
    bold: bool


@dataclass(frozen=True, slots=True)
class _Layout:
    qr_left: float  # top left of the first module, not of the quiet zone
    qr_top: float
    module: float
    text_size: float  # of the data lines; the product name is a little larger
    lines: tuple[_TextLine, ...] = field(default=())


def _format_date(value: datetime.date) -> str:
    return value.strftime("%d/%m/%Y")


def _data_lines(label: LabelData) -> list[str]:
    lines = [f"GTIN {label.gtin}", f"LOT {label.lot}"]
    if label.serial:
        lines.append(f"SN {label.serial}")
    if label.expiry is not None:
        lines.append(f"HSD/EXP {_format_date(label.expiry)}")
    return lines


def _ellipsize(text: str, width: float, size: float, bold: bool) -> str:
    if _text_width(text, bold) * size <= width:
        return text
    while text and _text_width(text + ELLIPSIS, bold) * size > width:
        text = text[:-1]
    return text.rstrip() + ELLIPSIS


def _wrap(text: str, width: float, size: float, bold: bool, max_lines: int) -> list[str]:
    """Greedy word wrap to at most ``max_lines``; the last line is ellipsized if text remains."""
    words = text.split()
    lines: list[str] = []
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and _text_width(f"{line} {words[0]}", bold) * size <= width:
            line = f"{line} {words.pop(0)}"
        if _text_width(line, bold) * size > width and len(lines) < max_lines - 1:
            # One word longer than the line: break it where it overflows.
            cut = len(line)
            while cut > 1 and _text_width(line[:cut], bold) * size > width:
                cut -= 1
            words.insert(0, line[cut:])
            line = line[:cut]
        lines.append(line)
    if words:
        lines[-1] = _ellipsize(f"{lines[-1]} {' '.join(words)}", width, size, bold)
    return [_ellipsize(line, width, size, bold) for line in lines]


def _broken(line: str, width: float, size: float) -> list[str]:
    """A data line as lines that each fit ``width``, never cut: the value on a line of its own after
    its label (``LOT``), and a value still too long broken where it overflows."""
    if _text_width(line, False) * size <= width:
        return [line]
    head, _, value = line.partition(" ")
    parts = [head] if value else []
    rest = value or line
    while _text_width(rest, False) * size > width and len(rest) > 1:
        cut = len(rest) - 1
        while cut > 1 and _text_width(rest[:cut], False) * size > width:
            cut -= 1
        parts.append(rest[:cut])
        rest = rest[cut:]
    return parts + [rest]


def _layout(
    label: LabelData,
    matrix_size: int,
    *,
    width: float,
    height: float,
    inset: float,
    max_module: float,
    min_font: float,
    max_font: float,
) -> _Layout:
    """Place the QR code at the left, vertically centred, and the text to its right.

    Units are whatever the caller uses for ``width`` and ``height`` (points, pixels, modules).
    The text is as large as fits, between ``min_font`` and ``max_font``. The GTIN, lot, serial and
    expiry are never cut (shoppers and recall notices match goods on them; a 20-character lot had
    been printed "LOT ABCDEFGHIJ012345…" on the smaller stocks): a line that still does not fit at
    ``min_font`` is broken onto the next, and the product name gives up its lines first (cut with an
    ellipsis) so that they stay on the label.
    """
    side_modules = matrix_size + 2 * QUIET_ZONE
    module = min((height - 2 * inset) / side_modules, (width * 0.6 - inset) / side_modules, max_module)
    qr_side = side_modules * module
    qr_left = inset + QUIET_ZONE * module
    qr_top = (height - qr_side) / 2 + QUIET_ZONE * module

    text_left = inset + qr_side  # the QR's own quiet zone separates it from the text
    text_width = width - text_left - max(inset, 2 * module)
    text_height = height - 2 * inset
    data = _data_lines(label)
    name = " ".join(label.product_name.split())

    size = max_font
    while True:
        data_lines = [part for line in data for part in _broken(line, text_width, size)]
        name_size = size * 1.05
        name_lines = _wrap(name, text_width, name_size, True, 2) if name else []
        block = (len(name_lines) + len(data_lines)) * LINE_PITCH * size
        if (len(data_lines) == len(data) and block <= text_height) or size <= min_font:
            break
        size = max(min_font, size * 0.94)
    while name_lines and block > text_height:  # the identifiers first: the name gives up a line
        name_lines = _wrap(name, text_width, name_size, True, len(name_lines) - 1) if len(name_lines) > 1 else []
        block = (len(name_lines) + len(data_lines)) * LINE_PITCH * size

    top = inset + max(0.0, (text_height - block) / 2)
    baseline = top + ASCENT * size + (LINE_PITCH - 1) * size / 2
    lines: list[_TextLine] = []
    for line in name_lines:
        lines.append(_TextLine(line, text_left, baseline, name_size, True))
        baseline += LINE_PITCH * size
    for line in data_lines:
        lines.append(_TextLine(line, text_left, baseline, size, False))
        baseline += LINE_PITCH * size
    return _Layout(qr_left, qr_top, module, size, tuple(lines))


PREVIEW_ASPECT = 70 / 37
"""Width over height of a single-label PNG or SVG, the shape of the a4-24 stock's labels."""


# --------------------------------------------------------------------------- PNG


def render_png(label: LabelData, *, scale: int = 8) -> bytes:
    """One label as a greyscale PNG, ``scale`` pixels per QR module."""
    from PIL import Image, ImageDraw

    if scale < 1:
        raise ValueError("scale must be at least 1 pixel per module")
    matrix = qr_matrix(label.url)
    height = (matrix.size + 2 * QUIET_ZONE) * scale
    width = round(height * PREVIEW_ASPECT)
    layout = _layout(
        label, matrix.size, width=width, height=height, inset=0, max_module=scale,
        min_font=max(8.0, 1.2 * scale), max_font=3.2 * scale,
    )

    image = Image.new("L", (width, height), 255)
    symbol = Image.frombytes("L", (matrix.size, matrix.size), b"".join(matrix.rows).translate(_BIT_TO_GREY))
    image.paste(
        symbol.resize((matrix.size * scale, matrix.size * scale), Image.Resampling.NEAREST),
        (round(layout.qr_left), round(layout.qr_top)),
    )
    draw = ImageDraw.Draw(image)
    for line in layout.lines:
        draw.text((line.x, line.baseline), line.text, fill=0, font=_pil_font(line.bold, round(line.size)), anchor="ls")
    out = BytesIO()
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()


_BIT_TO_GREY = bytes([255, 0]) + bytes(254)


# --------------------------------------------------------------------------- SVG


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
SVG_MODULE_MM = 0.5


def _svg_text(text: str) -> str:
    return escape(_XML_INVALID.sub("", text))


def render_svg(label: LabelData) -> str:
    """One label as a standalone SVG document, in QR-module units (``SVG_MODULE_MM`` mm each)."""
    matrix = qr_matrix(label.url)
    height = matrix.size + 2 * QUIET_ZONE
    width = round(height * PREVIEW_ASPECT, 2)
    layout = _layout(label, matrix.size, width=width, height=height, inset=0, max_module=1,
                     min_font=1.2, max_font=3.2)
    path = "".join(
        f"M{layout.qr_left + x:g} {layout.qr_top + y:g}h{length}v1h-{length}z"
        for y, x, length in matrix.dark_runs()
    )
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" '
        f'width="{width * SVG_MODULE_MM:g}mm" height="{height * SVG_MODULE_MM:g}mm">',
        f"<title>{_svg_text(label.product_name)}</title>",
        f'<rect width="{width:g}" height="{height:g}" fill="#fff"/>',
        f'<path fill="#000" shape-rendering="crispEdges" d="{path}"/>',
        "<g fill=\"#000\" font-family=\"'DejaVu Sans Condensed', 'DejaVu Sans', sans-serif\">",
    ]
    for line in layout.lines:
        weight = ' font-weight="bold"' if line.bold else ""
        parts.append(
            f'<text x="{line.x:.2f}" y="{line.baseline:.2f}" font-size="{line.size:.2f}"{weight}>'
            f"{_svg_text(line.text)}</text>"
        )
    parts.append(f"<desc>{_svg_text(label.url)}</desc></g></svg>\n")
    return "".join(parts)


# --------------------------------------------------------------------------- PDF


@functools.cache
def _pdf_fonts() -> tuple[str, str]:
    """Register the DejaVu TTFs with reportlab; Helvetica (no Vietnamese glyphs) if missing."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    regular, bold = _font_file(FONT_REGULAR_FILES), _font_file(FONT_BOLD_FILES)
    if regular is None or bold is None:
        logger.warning("DejaVu fonts missing from %s: PDF labels fall back to Helvetica", FONT_DIR)
        return "Helvetica", "Helvetica-Bold"
    pdfmetrics.registerFont(TTFont(PDF_FONT_REGULAR, str(regular)))
    pdfmetrics.registerFont(TTFont(PDF_FONT_BOLD, str(bold)))
    return PDF_FONT_REGULAR, PDF_FONT_BOLD


def _pdf_qr_operators(matrix: QrMatrix, left: float, top: float, module: float) -> str:
    """PDF operators filling every horizontal run of dark modules, as one path in module units."""
    runs = "\n".join(
        f"{match.start()} {y} {match.end() - match.start()} 1 re"
        for y, row in enumerate(matrix.rows)
        for match in _DARK_RUN.finditer(row)
    )
    # Scale to modules and flip y, so that row y of the matrix sits y modules below ``top``.
    return f"q 0 g {module:.5f} 0 0 {-module:.5f} {left:.3f} {top:.3f} cm\n{runs}\nf Q"


@contextlib.contextmanager
def _binary_streams() -> Iterator[None]:
    """Skip reportlab's ASCII85 pass over compressed streams while saving.

    Without reportlab's optional C accelerator that pass is pure Python and took a quarter of the
    time of a large sheet; the file is also a fifth smaller. ``useA85`` is a process-wide
    reportlab setting, read only while a document is saved, so it is restored at once.
    """
    from reportlab import rl_config

    previous = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = previous


def _printable_box(sheet: LabelStock, index: int, printer_margin: float) -> tuple[float, float, float, float]:
    """The part of label ``index`` a printer reaches, ``(left, top, width, height)`` in mm from the
    page's top left: edge-to-edge stocks lose their outer strip to the printer's unprintable margin."""
    left, top, width, height = sheet.label_box(index)
    right = min(left + width, sheet.page_width - printer_margin)
    bottom = min(top + height, sheet.page_height - printer_margin)
    left, top = max(left, printer_margin), max(top, printer_margin)
    return left, top, right - left, bottom - top


_REFERENCE_LABEL = LabelData(
    url="", gtin="08936000010012", lot="LOT2026A", serial="K7M2Q9X4ZP3R",
    expiry=datetime.date(2027, 12, 31), product_name="Cà phê rang xay Buôn Ma Thuột đặc biệt",
)
"""Typical content: a two-line name and all four data lines."""


def _sheet_limits(sheet: LabelStock, printer_margin: float, matrix_size: int) -> tuple[float, float, float]:
    """``(inset mm, module pt, font pt)`` shared by every label of a sheet, so that labels cut short
    by the printer margin do not end up with bigger or smaller text and codes than their neighbours.
    They are what a typical label gets in the narrowest and in the lowest printable box."""
    boxes = [_printable_box(sheet, index, printer_margin) for index in range(sheet.labels_per_page)]
    width_mm = min(box[2] for box in boxes)
    height_mm = min(box[3] for box in boxes)
    side_mm = (matrix_size + 2 * QUIET_ZONE) * PRINT_MIN_MODULE_MM
    inset_mm = max(PRINT_MIN_INSET_MM, min(PRINT_INSET_MM, (height_mm - side_mm) / 2))
    reference = _layout(
        _REFERENCE_LABEL, matrix_size, width=width_mm * MM, height=height_mm * MM, inset=inset_mm * MM,
        max_module=PRINT_MAX_MODULE_MM * MM, min_font=PRINT_MIN_FONT_PT, max_font=PRINT_MAX_FONT_PT,
    )
    return inset_mm, reference.module, reference.text_size


def write_pdf_sheet(
    labels: Iterable[LabelData],
    out: BinaryIO,
    *,
    stock: str = "a4-24",
    printer_margin: float = PRINTER_MARGIN_MM,
) -> int:
    """Write A4 sheets of ``stock`` labels to ``out`` and return the number of pages.

    ``labels`` is consumed lazily, one label at a time, so a generator of any length works; each
    page's drawing operators are handed to reportlab as soon as the page is full. Each QR code is
    drawn as vector rectangles, one per horizontal run of dark modules, filled as one path.
    Nothing is drawn closer than ``printer_margin`` mm to the paper's edge.

    reportlab keeps each finished page's content (about 0.3 MB) until ``save()``: 10,000 labels on
    a4-24 peak at about 165 MB. Split much larger runs into several files.
    """
    from reportlab.pdfgen.canvas import Canvas

    try:
        sheet = LABEL_STOCKS[stock]
    except KeyError:
        raise ValueError(f"unknown label stock {stock!r}; known: {', '.join(LABEL_STOCKS)}") from None
    regular_font, bold_font = _pdf_fonts()
    page_height = sheet.page_height * MM
    sheet_limits = functools.cache(functools.partial(_sheet_limits, sheet, printer_margin))
    canvas = Canvas(out, pagesize=(sheet.page_width * MM, page_height), pageCompression=1)
    canvas.setTitle("Labels")
    canvas.setCreator("registry.labels")

    pages = 0
    index = 0
    small_modules = 0
    for label in labels:
        if index == sheet.labels_per_page:
            canvas.showPage()
            pages += 1
            index = 0
        left_mm, top_mm, width_mm, height_mm = _printable_box(sheet, index, printer_margin)
        index += 1
        matrix = qr_matrix(label.url)
        inset_mm, max_module, max_font = sheet_limits(matrix.size)
        layout = _layout(
            label, matrix.size, width=width_mm * MM, height=height_mm * MM, inset=inset_mm * MM,
            max_module=max_module, min_font=PRINT_MIN_FONT_PT, max_font=max_font,
        )
        if layout.module < PRINT_MIN_MODULE_MM * MM - 1e-6:
            small_modules += 1
        x0, y0 = left_mm * MM, page_height - top_mm * MM  # printable box's top left, PDF coordinates
        canvas.addLiteral(_pdf_qr_operators(matrix, x0 + layout.qr_left, y0 - layout.qr_top, layout.module))
        for line in layout.lines:
            canvas.setFont(bold_font if line.bold else regular_font, line.size)
            canvas.drawString(x0 + line.x, y0 - line.baseline, line.text)
    if index:
        canvas.showPage()
        pages += 1
    with _binary_streams():
        canvas.save()
    if small_modules:
        logger.warning(
            "%d labels on stock %s have QR modules under %.2f mm", small_modules, stock, PRINT_MIN_MODULE_MM
        )
    logger.info("wrote %d label pages on stock %s", pages, stock)
    return pages
