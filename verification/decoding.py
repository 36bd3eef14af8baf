"""Image decoding: photo bytes in, every barcode and 2D code in the photo out.

The verification layer reads a shopper's or an inspector's photo (DESIGN.md, ``POST
/verify/image``) and needs the *text* of every code in it, with enough metadata (symbology, AIM
symbology identifier, GS1 flag) for the parser to tell a GS1 element string from plain text.

Two steps:

* :func:`load_image` checks the bytes before any pixel is decoded: the format is judged from the
  magic bytes only (never a declared media type), the dimensions are read from the header and an
  image over ``max_pixels`` is refused before Pillow allocates anything. The result is a grayscale
  ``uint8`` array, with EXIF orientation applied and transparency flattened onto white.
* :func:`decode_array` runs a cascade of decoders over the array. zxing-cpp goes first: on the
  reference samples it is both the fastest and the one that reads the most (QR, DataMatrix,
  EAN/UPC with add-ons, Code 128, all DataBar variants). pyzbar runs only when zxing-cpp found
  nothing (it rescues some blurred, low-contrast EAN/UPC photos), then OpenCV. Photos larger than
  :data:`WORKING_SIDE` pixels on their longest side are scaled down first; the full resolution
  (at most :data:`SECOND_PASS_MAX_PIXELS`) is tried only when the scaled image gave nothing.

Text conventions (the same for every decoder): GS1 data carries FNC1 separators as ASCII 29
(``"\\x1d"``) and no leading FNC1; UPC-A and UPC-E come out as 13 digits with a leading 0, as both
zxing-cpp 3 and zbar report them; an EAN/UPC add-on (2 or 5 digits) is *not* appended to
``text`` but kept in :attr:`DecodedSymbol.add_on`, so ``text`` stays a GTIN. Data that no decoder
can map to characters (an unknown ECI) is given as its bytes read as Latin-1.
"""

from __future__ import annotations

import ctypes
import enum
import io
import logging
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp
from PIL import Image, UnidentifiedImageError

__all__ = [
    "DECODERS",
    "WORKING_SIDE",
    "DecodedSymbol",
    "ImageEmpty",
    "ImageErrorCode",
    "ImageRejected",
    "ImageTooLarge",
    "ImageUndecodable",
    "NotAnImage",
    "decode_array",
    "decode_image",
    "load_image",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000
#: Longest side, in pixels, of the scaled-down copy the cascade tries first on large photos.
WORKING_SIDE = 1280
#: The most pixels the cascade's second pass reads: a photo larger than this (a 48-50 megapixel
#: phone's full-resolution mode) is scaled down to it, not read at full size. A 49-megapixel photo
#: with no code took 21 s of a worker in that pass (zbar alone 8 s), 16 megapixels about a third of
#: that; 16 is above the 12 of a phone's usual photo, which is still read at full size.
SECOND_PASS_MAX_PIXELS = 16_000_000
#: Seconds of decoding after which the cascade starts no further stage. Every photo of the sample
#: sets and of the benchmark's phone photos (12 megapixels included) is read within half a second,
#: while a photo of noise of under 10 MiB kept a worker for 9-11 s: with this bound it costs the
#: stages begun within it (each at most a few seconds), and the answer is that no code was found.
TIME_BUDGET_SECONDS = 2.0
#: Decoder names, in cascade order.
DECODERS: tuple[str, ...] = ("zxing-cpp", "pyzbar", "opencv")

Point = tuple[int, int]


@dataclass(frozen=True)
class DecodedSymbol:
    """One code found in an image."""

    text: str
    symbology: str
    symbology_identifier: str | None
    gs1: bool
    decoder: str
    position: tuple[Point, ...] | None = None
    #: The 2- or 5-digit EAN/UPC add-on printed beside the main symbol, if one was read.
    add_on: str | None = None


# --------------------------------------------------------------------------------------- errors


class ImageErrorCode(enum.StrEnum):
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    IMAGE_UNDECODABLE = "IMAGE_UNDECODABLE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    IMAGE_EMPTY = "IMAGE_EMPTY"


class ImageRejected(ValueError):
    """The uploaded bytes cannot be used as a photo. ``code`` is a stable machine code."""

    code: ImageErrorCode

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageEmpty(ImageRejected):
    """No bytes at all (a file chosen that holds nothing, a photo the phone never finished saving)."""

    code = ImageErrorCode.IMAGE_EMPTY


class NotAnImage(ImageRejected):
    """The bytes are not in a supported image format (judged by their magic bytes)."""

    code = ImageErrorCode.UNSUPPORTED_MEDIA_TYPE


class ImageUndecodable(ImageRejected):
    """The bytes look like an image but are corrupt or truncated."""

    code = ImageErrorCode.IMAGE_UNDECODABLE


class ImageTooLarge(ImageRejected):
    """The image has more pixels than allowed."""

    code = ImageErrorCode.IMAGE_TOO_LARGE

    def __init__(self, message: str, *, width: int | None = None, height: int | None = None) -> None:
        super().__init__(message)
        self.width = width
        self.height = height


# ------------------------------------------------------------------------------ format sniffing

_SUPPORTED = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def _sniff(data: bytes) -> str:
    """The image format named by the magic bytes, or raise :class:`NotAnImage`."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM" and len(data) >= 18:
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _HEIF_BRANDS:
            raise NotAnImage("HEIC/HEIF photos are not supported; please send a JPEG or PNG image.")
        if brand in _AVIF_BRANDS:
            raise NotAnImage("AVIF images are not supported; please send a JPEG or PNG image.")
    raise NotAnImage(
        "The file is not a supported image; send a JPEG, PNG, WebP, GIF, BMP or TIFF picture."
    )


def _u16(data: bytes, offset: int, order: str) -> int:
    return struct.unpack_from(order + "H", data, offset)[0]


def _u32(data: bytes, offset: int, order: str) -> int:
    return struct.unpack_from(order + "I", data, offset)[0]


def _png_size(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ValueError("no IHDR chunk")
    return _u32(data, 16, ">"), _u32(data, 20, ">")


def _gif_size(data: bytes) -> tuple[int, int]:
    return _u16(data, 6, "<"), _u16(data, 8, "<")


def _bmp_size(data: bytes) -> tuple[int, int]:
    header_size = _u32(data, 14, "<")
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        return _u16(data, 18, "<"), _u16(data, 20, "<")
    width, height = struct.unpack_from("<ii", data, 18)
    return abs(width), abs(height)


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        return _u16(data, 26, "<") & 0x3FFF, _u16(data, 28, "<") & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = _u32(data, 21, "<")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise ValueError("unknown WebP chunk")


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ValueError("marker expected")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            raise ValueError("no frame header")
        length = _u16(data, i + 2, ">")
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, i + 5)
            return width, height
        i += 2 + length
    raise ValueError("no frame header")


def _tiff_size(data: bytes) -> tuple[int, int]:
    order = "<" if data[:2] == b"II" else ">"
    big = _u16(data, 2, order) == 43
    if big:
        offset = struct.unpack_from(order + "Q", data, 8)[0]
        count = struct.unpack_from(order + "Q", data, offset)[0]
        entry, first = 20, offset + 8
    else:
        offset = _u32(data, 4, order)
        count = _u16(data, offset, order)
        entry, first = 12, offset + 2
    dims: dict[int, int] = {}
    for k in range(min(count, 4096)):
        at = first + k * entry
        tag, kind = struct.unpack_from(order + "HH", data, at)
        if tag not in (256, 257):
            continue
        value_at = at + (12 if big else 8)
        if kind == 3:  # SHORT
            dims[tag] = _u16(data, value_at, order)
        elif kind == 4:  # LONG
            dims[tag] = _u32(data, value_at, order)
        elif kind == 16:  # LONG8 (BigTIFF)
            dims[tag] = struct.unpack_from(order + "Q", data, value_at)[0]
        if len(dims) == 2:
            return dims[256], dims[257]
    raise ValueError("no image width/length tags")


_HEADER_READERS: dict[str, Callable[[bytes], tuple[int, int]]] = {
    "JPEG": _jpeg_size,
    "PNG": _png_size,
    "WEBP": _webp_size,
    "GIF": _gif_size,
    "BMP": _bmp_size,
    "TIFF": _tiff_size,
}


def _header_size(fmt: str, data: bytes) -> tuple[int, int]:
    try:
        width, height = _HEADER_READERS[fmt](data)
    except (ValueError, IndexError, struct.error) as exc:
        raise ImageUndecodable(f"The {fmt} image is corrupt or truncated ({exc}).") from exc
    if width <= 0 or height <= 0:
        raise ImageUndecodable(f"The {fmt} image header gives an empty size ({width}x{height}).")
    return width, height


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {max_pixels / 1e6:g} megapixels.",
            width=width,
            height=height,
        )


# Everything Pillow raises for bad data while opening or decoding (no bare ``except Exception``).
_PIL_ERRORS = (OSError, SyntaxError, ValueError, TypeError, EOFError, IndexError, KeyError,
               struct.error, zlib.error)


#: Pixels converted per strip: every full-size intermediate of the conversion to 8-bit gray is
#: replaced by one strip this big (a few MB even as float64), so loading an image costs Pillow's
#: decoded copy plus the ``uint8`` result, whatever its mode: the pixel limit alone says nothing
#: about bytes, and a 49-megapixel 16-bit, float or RGBA image once took over 1 GB.
_STRIP_PIXELS = 1 << 20

_NUMERIC_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ORIENTATION = 0x0112
_TRANSPOSES: dict[int, Callable[[np.ndarray], np.ndarray]] = {  # as ImageOps.exif_transpose
    2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],  # ROTATE_180
    4: lambda a: a[::-1, :],  # FLIP_TOP_BOTTOM
    5: lambda a: a.T,  # TRANSPOSE
    6: lambda a: np.rot90(a, -1),  # ROTATE_270
    7: lambda a: a[::-1, ::-1].T,  # TRANSVERSE
    8: lambda a: np.rot90(a, 1),  # ROTATE_90
}


def _strips(im: Image.Image) -> Iterable[tuple[slice, Image.Image]]:
    """``(rows, part)`` for horizontal strips of at most :data:`_STRIP_PIXELS` pixels."""
    rows = max(1, _STRIP_PIXELS // im.width)
    for top in range(0, im.height, rows):
        bottom = min(im.height, top + rows)
        yield slice(top, bottom), im.crop((0, top, im.width, bottom))


def _numeric_to_gray(values: np.ndarray, scale: bool) -> np.ndarray:
    """16-bit, 32-bit integer and float pixels to 8 bits: 0..65535 scaled to 0..255 when the
    image goes above 255, kept as they are otherwise; clipped, truncated."""
    values = values.astype(np.float64)
    if scale:
        values *= 255.0 / 65535.0
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def _strip_converter(im: Image.Image) -> Callable[[Image.Image], np.ndarray]:
    """How to turn one strip of ``im`` into 8-bit gray (each the same per-pixel operation the
    whole image would get)."""
    mode = im.mode
    if mode == "L":
        return np.asarray
    if mode in _NUMERIC_MODES:
        # Whether to scale depends on the whole image's maximum.
        if mode.startswith("I;16"):
            scale = im.getextrema()[1] > 255
            lut = _numeric_to_gray(np.arange(65536), scale)  # the same mapping, as a table
            return lambda part: lut[np.asarray(part)]
        top = np.max([np.max(np.asarray(part)) for _, part in _strips(im)])  # NaN as numpy has it
        return lambda part: _numeric_to_gray(np.asarray(part), bool(top > 255))
    if "A" in mode or "a" in mode or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        def flatten(part: Image.Image) -> np.ndarray:  # onto white
            rgba = part.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(white, rgba).convert("L"))
        return flatten
    if mode in ("1", "P", "RGB"):
        return lambda part: np.asarray(part.convert("L"))
    return lambda part: np.asarray(part.convert("RGB").convert("L"))


def _to_gray(im: Image.Image) -> np.ndarray:
    """A loaded image as a grayscale ``uint8`` array, upright (EXIF orientation applied).

    Converted strip by strip into one preallocated array, and turned upright afterwards (on the
    8-bit result, not on Pillow's copy, which can be four bytes a pixel).
    """
    convert = _strip_converter(im)
    gray = np.empty((im.height, im.width), dtype=np.uint8)
    for rows, part in _strips(im):
        gray[rows] = convert(part)
    transpose = _TRANSPOSES.get(im.getexif().get(_ORIENTATION, 1))
    if transpose is not None:
        gray = np.ascontiguousarray(transpose(gray))
    return gray


def _reason(exc: BaseException, fmt: str) -> str:
    """Pillow's message without object reprs (``cannot identify image file <_io.BytesIO object
    at 0x...>``): those say nothing to the sender and leak process internals."""
    if isinstance(exc, UnidentifiedImageError):
        return f"its header is not a valid {fmt} header"
    text = re.sub(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>", "", str(exc)).strip(" :")
    return text or type(exc).__name__


def load_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes into a grayscale ``uint8`` array (height x width).

    Raises :class:`ImageEmpty` for no bytes, :class:`NotAnImage` for bytes that are not a supported image format,
    :class:`ImageTooLarge` when the header claims more than ``max_pixels`` pixels (checked before
    any pixel is decoded) and :class:`ImageUndecodable` for corrupt or truncated images.

    Memory: Pillow's decoded image (at most four bytes a pixel) plus the one-byte-a-pixel result;
    the conversion works in strips (see :data:`_STRIP_PIXELS`).
    """
    data = bytes(data)
    if not data:
        raise ImageEmpty("the file is empty (0 bytes)")
    fmt = _sniff(data)
    width, height = _header_size(fmt, data)
    _check_pixels(width, height, max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            # The header parsers above and Pillow agree on every sample; check Pillow's view too,
            # in case a file says one thing to us and another to Pillow (e.g. a GIF frame larger
            # than its logical screen).
            _check_pixels(im.width, im.height, max_pixels)
            if fmt == "JPEG":
                im.draft("L", im.size)  # decode luma only: same pixels, less work
            im.load()
            gray = _to_gray(im)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"The image is too large to decode safely ({_reason(exc, fmt)}).") from exc
    except _PIL_ERRORS as exc:
        raise ImageUndecodable(f"The {fmt} image is corrupt or truncated ({_reason(exc, fmt)}).") from exc
    logger.debug("loaded %s image %dx%d", fmt, gray.shape[1], gray.shape[0])
    return gray


# ------------------------------------------------------------------------------------ decoders

_GS1_IDENTIFIERS = {"]C1", "]d2", "]Q3", "]e0", "]J1", "]z1", "]L3", "]L4"}

_ZXING_NAMES = {
    "QR Code": "QRCode",
    "QR Code Model 1": "QRCode",
    "QR Code Model 2": "QRCode",
    "Micro QR Code": "MicroQRCode",
    "rMQR Code": "rMQRCode",
    "Data Matrix": "DataMatrix",
    "DataBar Omni": "DataBar",
    "DataBar Stacked": "DataBar",
    "DataBar Stacked Omni": "DataBar",
    "DataBar Expanded": "DataBarExpanded",
    "DataBar Expanded Stacked": "DataBarExpanded",
    "DataBar Limited": "DataBarLimited",
    "Code 39 Standard": "Code39",
    "Code 39 Extended": "Code39",
}


def _scaled_position(points: Iterable[tuple[float, float]], scale: float) -> tuple[Point, ...] | None:
    out = tuple((int(round(x / scale)), int(round(y / scale))) for x, y in points)
    return out or None


def _text_from_bytes(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_EAN_UPC = ("EAN-13", "UPC-A", "UPC-E", "EAN-8")


def _zxing_add_ons(gray: np.ndarray) -> dict[str, str]:
    """Add-ons read in zxing-cpp's ``Require`` mode, keyed by main symbol text.

    ``Read`` mode accepts the first add-on it sees and misreads some (2 of 6 in the
    upca-extension samples); ``Require`` checks it more strictly. Only run when ``Read`` saw one.
    """
    results = zxingcpp.read_barcodes(
        gray,
        formats=zxingcpp.BarcodeFormat.EANUPC,
        text_mode=zxingcpp.TextMode.Plain,
        ean_add_on_symbol=zxingcpp.EanAddOnSymbol.Require,
    )
    out = {}
    for r in results:
        add_on = (r.extra or {}).get("EanAddOn")
        if add_on:
            text = r.text
            if text.endswith(add_on) and len(text) - len(add_on) in (8, 12, 13):
                text = text[: -len(add_on)]
            out[text] = add_on
    return out


def _read_zxing(gray: np.ndarray, scale: float) -> list[DecodedSymbol]:
    found = []
    results = zxingcpp.read_barcodes(
        gray,
        text_mode=zxingcpp.TextMode.Plain,
        ean_add_on_symbol=zxingcpp.EanAddOnSymbol.Read,
    )
    checked_add_ons: dict[str, str] | None = None
    for r in results:
        text = r.text
        if not text and r.bytes:
            text = r.bytes.decode("latin-1")  # unknown ECI: keep the bytes, one char per byte
        if not text:
            continue
        fmt = str(r.format)
        symbology = _ZXING_NAMES.get(fmt, fmt.replace(" ", ""))
        identifier = r.symbology_identifier or None
        add_on = (r.extra or {}).get("EanAddOn") if fmt in _EAN_UPC else None
        if add_on:
            # zxing-cpp appends the add-on to the text in some reads and not in others.
            main_lengths = (8,) if fmt == "EAN-8" else (12, 13)
            if text.endswith(add_on) and len(text) - len(add_on) in main_lengths:
                text = text[: -len(add_on)]
            identifier = "]E4" if fmt == "EAN-8" else "]E0"
            if checked_add_ons is None:
                checked_add_ons = _zxing_add_ons(gray)
            add_on = checked_add_ons.get(text, add_on)
        gs1 = r.content_type == zxingcpp.ContentType.GS1 or identifier in _GS1_IDENTIFIERS
        p = r.position
        corners = [(pt.x, pt.y) for pt in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
        found.append(
            DecodedSymbol(
                text=text,
                symbology=symbology,
                symbology_identifier=identifier,
                gs1=gs1,
                decoder="zxing-cpp",
                position=_scaled_position(corners, scale),
                add_on=add_on or None,
            )
        )
    return found


# pyzbar's decode() hides zbar's symbol modifiers (the GS1 flag) and crashes on composite
# symbols without a location, so scan through its ctypes bindings directly.
_ZBAR_MOD_GS1 = 1 << 0
_ZBAR_CFG_ENABLE = 0
_ZBAR_TYPES = {
    # zbar type number: (our symbology, AIM identifier when not GS1, when GS1)
    8: ("EAN-8", "]E4", "]E4"),
    9: ("UPC-E", "]E0", "]E0"),
    10: ("ISBN-10", "]X0", "]X0"),
    12: ("UPC-A", "]E0", "]E0"),
    13: ("EAN-13", "]E0", "]E0"),
    14: ("ISBN-13", "]E0", "]E0"),
    25: ("ITF", "]I0", "]I0"),
    34: ("DataBar", "]e0", "]e0"),
    35: ("DataBarExpanded", "]e0", "]e0"),
    38: ("Codabar", "]F0", "]F0"),
    39: ("Code39", "]A0", "]A0"),
    57: ("PDF417", "]L2", "]L2"),
    64: ("QRCode", "]Q1", "]Q3"),
    93: ("Code93", "]G0", "]G0"),
    128: ("Code128", "]C0", "]C1"),
}
_ZBAR_ALWAYS_GS1 = {34, 35}
_ZBAR_ADDONS = {2: "EAN-2", 5: "EAN-5"}


class _Zbar:
    """Thin use of pyzbar's ctypes bindings to libzbar (loaded on first use)."""

    def __init__(self) -> None:
        from pyzbar import wrapper as w

        self.w = w
        self.get_modifiers = w.zbar_function(
            "zbar_symbol_get_modifiers", ctypes.c_uint, ctypes.POINTER(w.zbar_symbol)
        )
        self.y800 = int.from_bytes(b"Y800", "little")  # zbar's fourcc for 8-bit grayscale

    def scan(self, gray: np.ndarray) -> list[tuple[int, bytes, int, list[tuple[int, int]]]]:
        w = self.w
        height, width = gray.shape
        pixels = np.ascontiguousarray(gray, dtype=np.uint8).tobytes()
        scanner = w.zbar_image_scanner_create()
        image = w.zbar_image_create()
        out = []
        try:
            # EAN-2/EAN-5 add-ons are off by default in zbar; they arrive as extra symbols.
            for addon in _ZBAR_ADDONS:
                w.zbar_image_scanner_set_config(scanner, addon, _ZBAR_CFG_ENABLE, 1)
            w.zbar_image_set_format(image, self.y800)
            w.zbar_image_set_size(image, width, height)
            w.zbar_image_set_data(image, ctypes.cast(pixels, ctypes.c_void_p), len(pixels), None)
            w.zbar_scan_image(scanner, image)
            symbol = w.zbar_image_first_symbol(image)
            while symbol:
                kind = symbol.contents.type
                data = ctypes.string_at(w.zbar_symbol_get_data(symbol), w.zbar_symbol_get_data_length(symbol))
                modifiers = self.get_modifiers(symbol)
                points = [
                    (w.zbar_symbol_get_loc_x(symbol, k), w.zbar_symbol_get_loc_y(symbol, k))
                    for k in range(w.zbar_symbol_get_loc_size(symbol))
                ]
                out.append((kind, data, modifiers, points))
                symbol = w.zbar_symbol_next(symbol)
        finally:
            w.zbar_image_destroy(image)
            w.zbar_image_scanner_destroy(scanner)
        return out


_zbar: _Zbar | None = None


def _bbox(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _read_pyzbar(gray: np.ndarray, scale: float) -> list[DecodedSymbol]:
    global _zbar
    if _zbar is None:
        _zbar = _Zbar()
    raw = _zbar.scan(gray)
    addons = [(data.decode("ascii", "replace"), points) for kind, data, _, points in raw if kind in _ZBAR_ADDONS]
    found = []
    for kind, data, modifiers, points in raw:
        if kind not in _ZBAR_TYPES or not data:
            continue
        symbology, plain_id, gs1_id = _ZBAR_TYPES[kind]
        gs1 = bool(modifiers & _ZBAR_MOD_GS1) or kind in _ZBAR_ALWAYS_GS1
        text = _text_from_bytes(data)
        add_on = None
        if kind in (8, 9, 12, 13) and addons and points:
            add_on = _nearest_addon(points, addons)
        found.append(
            DecodedSymbol(
                text=text,
                symbology=symbology,
                symbology_identifier=gs1_id if gs1 else plain_id,
                gs1=gs1,
                decoder="pyzbar",
                position=_scaled_position(_bbox(points), scale) if points else None,
                add_on=add_on,
            )
        )
    return found


def _nearest_addon(points: list[tuple[int, int]], addons: list[tuple[str, list[tuple[int, int]]]]) -> str | None:
    cx = sum(p[0] for p in points) / len(points)
    cy = sum(p[1] for p in points) / len(points)
    best, best_d = None, float("inf")
    for text, pts in addons:
        if not pts:
            continue
        ax = sum(p[0] for p in pts) / len(pts)
        ay = sum(p[1] for p in pts) / len(pts)
        d = (ax - cx) ** 2 + (ay - cy) ** 2
        if d < best_d:
            best, best_d = text, d
    return best


_OPENCV_TYPES = {
    "EAN_13": ("EAN-13", "]E0"),
    "EAN_8": ("EAN-8", "]E4"),
    "UPC_A": ("UPC-A", "]E0"),
    "UPC_E": ("UPC-E", "]E0"),
}


class _OpenCV:
    def __init__(self) -> None:
        self.qr = cv2.QRCodeDetector()
        self.barcode = cv2.barcode.BarcodeDetector() if hasattr(cv2, "barcode") else None


_opencv: _OpenCV | None = None


def _read_opencv(gray: np.ndarray, scale: float) -> list[DecodedSymbol]:
    global _opencv
    if _opencv is None:
        _opencv = _OpenCV()
    found = []
    try:
        ok, texts, points, _ = _opencv.qr.detectAndDecodeBytesMulti(gray)
    except cv2.error as exc:  # e.g. a QR mode this OpenCV build does not implement
        logger.debug("OpenCV QR decoder failed: %s", exc)
        ok = False
    if ok:
        for raw, pts in zip(texts, points):
            raw = bytes(raw)
            if not raw:
                continue
            found.append(
                DecodedSymbol(
                    text=_text_from_bytes(raw),
                    symbology="QRCode",
                    symbology_identifier=None,  # OpenCV does not report ECI or FNC1 modes
                    gs1=False,
                    decoder="opencv",
                    position=_scaled_position([(float(x), float(y)) for x, y in pts], scale),
                )
            )
    if _opencv.barcode is not None:
        try:
            ok, texts, types, points = _opencv.barcode.detectAndDecodeWithType(gray)
        except cv2.error as exc:
            logger.debug("OpenCV barcode decoder failed: %s", exc)
            ok = False
        if ok:
            for text, kind, pts in zip(texts, types, points):
                if not text:
                    continue
                symbology, identifier = _OPENCV_TYPES.get(kind, (kind.replace("_", "-"), None))
                if symbology == "UPC-A" and len(text) == 12:
                    text = "0" + text  # same 13-digit convention as the other decoders
                found.append(
                    DecodedSymbol(
                        text=text,
                        symbology=symbology,
                        symbology_identifier=identifier,
                        gs1=False,
                        decoder="opencv",
                        position=_scaled_position([(float(x), float(y)) for x, y in pts], scale),
                    )
                )
    return found


_READERS: dict[str, Callable[[np.ndarray, float], list[DecodedSymbol]]] = {
    "zxing-cpp": _read_zxing,
    "pyzbar": _read_pyzbar,
    "opencv": _read_opencv,
}

# --------------------------------------------------------------------------------------- cascade


def _rank(symbol: DecodedSymbol) -> tuple[int, int, int, int]:
    return (
        DECODERS.index(symbol.decoder),
        symbol.symbology_identifier is None,
        symbol.position is None,
        symbol.add_on is None,
    )


def _merge(into: dict[str, DecodedSymbol], symbols: Iterable[DecodedSymbol]) -> None:
    for symbol in symbols:
        held = into.get(symbol.text)
        if held is None or _rank(symbol) < _rank(held):
            into[symbol.text] = symbol


def _resize(gray: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    height, width = gray.shape
    longest = max(height, width)
    if longest <= side:
        return gray, 1.0
    scale = side / longest
    small = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    return small, scale


def _side_within(shape: tuple[int, ...], max_pixels: int) -> int:
    """The longest side that keeps an image of this shape within ``max_pixels`` (its own when it is)."""
    height, width = shape[:2]
    if height * width <= max_pixels:
        return max(height, width)
    return int(max(height, width) * (max_pixels / (height * width)) ** 0.5)


def _sharpen(gray: np.ndarray) -> np.ndarray:
    """Unsharp mask: restores edges softened by focus blur and JPEG (rescues many EAN photos)."""
    blurred = cv2.GaussianBlur(gray, (0, 0), 2.0)
    return cv2.addWeighted(gray, 2.0, blurred, -1.0, 0)


#: Images whose longest side is at most this are also tried upscaled 2x (small crops, thin bars).
UPSCALE_BELOW = 800


def _upscale(gray: np.ndarray) -> np.ndarray | None:
    if max(gray.shape) > UPSCALE_BELOW:
        return None
    return cv2.resize(gray, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)


#: Linear symbologies, where one symbol misread twice gives two texts at the same place.
_ONE_D = frozenset({"EAN-13", "EAN-8", "UPC-A", "UPC-E", "Code128", "Code39", "Code93", "ITF", "Codabar",
                    "DataBar", "DataBarLimited", "DataBarExpanded"})


def _not_opencv_ean8(symbol: DecodedSymbol) -> bool:
    # OpenCV's barcode reader takes half of an EAN-13/UPC-A for a (checksum-valid) EAN-8: 4 such
    # misreads on the reference samples and not one right EAN-8 the other decoders missed.
    return symbol.symbology != "EAN-8"


@dataclass(frozen=True)
class _Stage:
    decoder: str
    transform: Callable[[np.ndarray], np.ndarray | None] | None = None
    factor: float = 1.0  # how much the transform scales the image
    accept: Callable[[DecodedSymbol], bool] | None = None

    @property
    def name(self) -> str:
        return self.decoder + (f"+{self.transform.__name__.lstrip('_')}" if self.transform else "")


# The default cascade, cheapest and strongest first; each stage runs only while nothing is found.
_CASCADE: tuple[_Stage, ...] = (
    _Stage("zxing-cpp"),
    _Stage("pyzbar"),
    _Stage("zxing-cpp", _sharpen),
    _Stage("zxing-cpp", _upscale, 2.0),
    _Stage("opencv", accept=_not_opencv_ean8),
)


def _stages(decoders: Sequence[str] | None) -> tuple[_Stage, ...]:
    if decoders is None:
        return _CASCADE
    if isinstance(decoders, str):
        decoders = [decoders]
    chosen = tuple(decoders)
    unknown = [d for d in chosen if d not in _READERS]
    if unknown or not chosen:
        raise ValueError(f"Unknown decoder(s) {unknown}; choose from {list(DECODERS)}.")
    return tuple(_Stage(name) for name in chosen)


def decode_array(gray: np.ndarray, *, decoders: Sequence[str] | None = None,
                 time_budget: float | None = None) -> list[DecodedSymbol]:
    """Every distinct code in a grayscale ``uint8`` image, best metadata kept per text.

    With ``decoders=None`` the default cascade runs: zxing-cpp, pyzbar, zxing-cpp on a
    sharpened copy, zxing-cpp on a 2x upscaled copy (small images only), OpenCV; each stage only
    while nothing has been found. A large image is first tried scaled down to
    :data:`WORKING_SIDE` pixels on its longest side, and only if that found nothing at full size,
    or scaled down to :data:`SECOND_PASS_MAX_PIXELS` when it is larger. ``decoders=["pyzbar"]``
    (or any list of names from :data:`DECODERS`) runs just those decoders, in that order, on the
    plain image, with the same scaling policy. No stage starts after ``time_budget`` seconds
    (default :data:`TIME_BUDGET_SECONDS`; the first stage always runs).
    """
    budget = TIME_BUDGET_SECONDS if time_budget is None else time_budget
    stages = _stages(decoders)
    gray = np.asarray(gray)
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError("decode_array expects a 2-D uint8 grayscale array.")
    gray = np.ascontiguousarray(gray)
    if gray.size == 0:
        return []

    small, scale = _resize(gray, WORKING_SIDE)
    passes = [(small, scale)]
    if scale != 1.0:
        passes.append(_resize(gray, _side_within(gray.shape, SECOND_PASS_MAX_PIXELS)))

    found: dict[str, DecodedSymbol] = {}
    began, first = time.perf_counter(), True
    for image, pass_scale in passes:
        for stage in stages:
            started = time.perf_counter()
            if not first and started - began > budget:
                logger.info("no code found in %.1f s: the cascade stops before %s on %dx%d", started - began,
                            stage.name, image.shape[1], image.shape[0])
                return []
            work = image if stage.transform is None else stage.transform(image)
            if work is None:
                continue
            symbols = _READERS[stage.decoder](work, pass_scale * stage.factor)
            first = False
            if stage.accept is not None:
                symbols = [symbol for symbol in symbols if stage.accept(symbol)]
            logger.debug(
                "%s on %dx%d: %d code(s) in %.1f ms", stage.name, work.shape[1], work.shape[0],
                len(symbols), (time.perf_counter() - started) * 1000,
            )
            _merge(found, symbols)
            if found:
                return _resolve_overlaps(list(found.values()), gray)
    return list(found.values())


def _box(symbol: DecodedSymbol) -> tuple[int, int, int, int] | None:
    if not symbol.position:
        return None
    xs = [p[0] for p in symbol.position]
    ys = [p[1] for p in symbol.position]
    return min(xs), min(ys), max(xs), max(ys)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])) or 1
    return w * h / smaller


def _resolve_overlaps(symbols: list[DecodedSymbol], gray: np.ndarray) -> list[DecodedSymbol]:
    """Two different texts read from the same 1-D symbol are a misread: keep the one a second
    decoder confirms on that region, else the first reported (zxing-cpp reports its best first).

    Seen on a sharp EAN-13: zxing-cpp returned the right text and a check-digit-valid misread at
    the same place in one call.
    """
    kept: list[DecodedSymbol] = []
    for symbol in symbols:
        box = _box(symbol)
        rival_index = next((i for i, other in enumerate(kept)
                            if box is not None and _box(other) is not None and other.text != symbol.text
                            and other.symbology in _ONE_D and symbol.symbology in _ONE_D
                            and _overlap(box, _box(other)) > 0.5), None)
        if rival_index is None:
            kept.append(symbol)
            continue
        rival = kept[rival_index]
        x0, y0, x1, y1 = _box(rival)
        margin = max(10, (x1 - x0) // 5)
        crop = gray[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin]
        confirmed = {s.text for s in _read_pyzbar(np.ascontiguousarray(crop), 1.0)} if crop.size else set()
        if symbol.text in confirmed and rival.text not in confirmed:
            kept[rival_index] = symbol
        logger.info("dropped a conflicting read of one symbol (%s vs %s)", symbol.symbology, rival.symbology)
    return kept


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    decoders: Sequence[str] | None = None,
) -> list[DecodedSymbol]:
    """Every distinct code in a photo given as file bytes (see :func:`load_image`)."""
    gray = load_image(data, max_pixels=max_pixels)
    symbols = decode_array(gray, decoders=decoders)
    logger.info(
        "decoded %d code(s) from a %dx%d image", len(symbols), gray.shape[1], gray.shape[0]
    )
    return symbols
