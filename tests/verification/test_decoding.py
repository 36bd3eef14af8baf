"""Tests for verification.decoding: image checks, the decoder cascade, and real photos.

The real photos are zxing-cpp's development samples in ``$SHARED_DIR/samples/zxing`` (see its
SOURCE.md). Expected texts follow zxing-cpp's test runner; where our decoder output differs only
by convention, the helpers here normalise (never the decoder).
"""

from __future__ import annotations

import io
import os
import random
import statistics
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import segno
import zxingcpp
from PIL import Image

from tests.verification.phone_photos import phone_photo
from verification.decoding import (
    DECODERS,
    DecodedSymbol,
    ImageEmpty,
    ImageRejected,
    ImageTooLarge,
    ImageUndecodable,
    NotAnImage,
    decode_array,
    decode_image,
    load_image,
)

SHARED = Path(os.environ.get("SHARED_DIR") or Path(__file__).resolve().parents[3] / "shared")
SAMPLES = SHARED / "samples" / "zxing"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}
FALSE_POSITIVES = "falsepositives-1"

# SOURCE.md: these two ground-truth files are wrong; the photos show 9784872348880.
KNOWN_WRONG_GROUND_TRUTH = {
    ("ean13-2", "23"): "9784872348880",
    ("ean13-2", "28"): "9784872348880",
}

needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no samples at {SAMPLES}")


# ------------------------------------------------------------------ helpers: expected results


@dataclass
class Sample:
    set_name: str
    path: Path
    expected: str | None  # None: the image holds no code
    metadata: dict[str, str] = field(default_factory=dict)


def _samples() -> list[Sample]:
    out = []
    for folder in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        for img in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            txt, binary, meta = img.with_suffix(".txt"), img.with_suffix(".bin"), img.with_suffix(".result.txt")
            if folder.name == FALSE_POSITIVES:
                expected = None
            elif txt.exists():
                expected = txt.read_bytes().decode("utf-8")  # bytes: keep CR LF as they are
            elif binary.exists():
                expected = binary.read_bytes().decode("latin-1")
            else:
                continue
            expected = KNOWN_WRONG_GROUND_TRUTH.get((folder.name, img.stem), expected)
            metadata = {}
            if meta.exists():
                for line in meta.read_text("utf-8").splitlines():
                    if "=" in line and not line.startswith("#"):
                        key, value = line.split("=", 1)
                        metadata[key] = value
            out.append(Sample(folder.name, img, expected, metadata))
    return out


def _upce_to_upca(upce: str) -> str:
    """Expand an 8-digit UPC-E (number system, 6 digits, check) to its 12-digit UPC-A."""
    ns, d, check = upce[0], upce[1:7], upce[7]
    last = d[5]
    if last in "012":
        body = d[0:2] + last + "0000" + d[2:5]
    elif last == "3":
        body = d[0:3] + "00000" + d[3:5]
    elif last == "4":
        body = d[0:4] + "00000" + d[4]
    else:
        body = d[0:5] + "0000" + last
    return ns + body + check


def normalised_text(symbol: DecodedSymbol, set_name: str) -> str:
    """The text as zxing-cpp's test runner states it for ``set_name``.

    UPC-A and UPC-E as 13 digits with a leading 0 (UPC-E expanded); in the ``*-extension-*``
    sets (which the runner reads with add-ons required) the add-on digits appended.
    """
    text = symbol.text
    if symbol.symbology in ("UPC-A", "EAN-13") and len(text) == 12 and text.isdigit():
        text = "0" + text
    if symbol.symbology == "UPC-E" and len(text) == 8 and text.isdigit():
        text = "0" + _upce_to_upca(text)
    if "-extension-" in set_name and symbol.add_on:
        text += symbol.add_on
    return text


def metadata_mismatches(symbol: DecodedSymbol, metadata: dict[str, str]) -> list[str]:
    """Differences from ``.result.txt`` for the keys our contract carries."""
    problems = []
    expected_id = metadata.get("symbologyIdentifier")
    if expected_id is not None:
        actual_id = symbol.symbology_identifier
        if expected_id == "]E3":  # EAN/UPC with add-on: we give the main symbol's id + add_on
            ok = actual_id in ("]E0", "]E3") and bool(symbol.add_on)
        else:
            ok = actual_id == expected_id
        if not ok:
            problems.append(f"symbologyIdentifier {actual_id!r} != {expected_id!r}")
    if metadata.get("contentType") == "GS1" and not symbol.gs1:
        problems.append("gs1 flag not set")
    return problems


# ----------------------------------------------------------------- the sample sets, all decoders

RUNS = ("cascade", *DECODERS)


@dataclass
class SetResult:
    total: int = 0
    decoded: dict[str, int] = field(default_factory=lambda: {run: 0 for run in RUNS})
    reported: dict[str, int] = field(default_factory=lambda: {run: 0 for run in RUNS})
    ms: dict[str, list[float]] = field(default_factory=lambda: {run: [] for run in RUNS})


@pytest.fixture(scope="module")
def sample_results() -> tuple[dict[str, SetResult], list[str], list[str]]:
    results: dict[str, SetResult] = {}
    metadata_problems: list[str] = []
    misses: list[str] = []
    for sample in _samples():
        data = sample.path.read_bytes()
        row = results.setdefault(sample.set_name, SetResult())
        row.total += 1
        for run in RUNS:
            started = time.perf_counter()
            symbols = decode_image(data, decoders=None if run == "cascade" else [run])
            row.ms[run].append((time.perf_counter() - started) * 1000)
            row.reported[run] += len(symbols)
            texts = {normalised_text(s, sample.set_name): s for s in symbols}
            if sample.expected is None:
                row.decoded[run] += not symbols
                continue
            match = texts.get(sample.expected)
            if match is None:
                if run == "cascade":
                    misses.append(f"{sample.set_name}/{sample.path.name}: got {sorted(texts)!r}")
                continue
            row.decoded[run] += 1
            if run == "cascade":
                metadata_problems += [
                    f"{sample.set_name}/{sample.path.name}: {p}"
                    for p in metadata_mismatches(match, sample.metadata)
                ]
    return results, metadata_problems, misses


def _table(results: dict[str, SetResult]) -> str:
    lines = ["| set | images | " + " | ".join(RUNS) + " |", "|---" * (len(RUNS) + 2) + "|"]
    totals = {run: 0 for run in RUNS}
    images = 0
    for name, row in results.items():
        cells = [f"{row.decoded[r]} ({statistics.median(row.ms[r]):.1f} ms)" for r in RUNS]
        lines.append(f"| {name} | {row.total} | " + " | ".join(cells) + " |")
        if name != FALSE_POSITIVES:
            images += row.total
            for r in RUNS:
                totals[r] += row.decoded[r]
    lines.append(
        f"| all sets with codes | {images} | "
        + " | ".join(f"{totals[r]} ({100 * totals[r] / images:.1f}%)" for r in RUNS)
        + " |"
    )
    return "\n".join(lines)


@needs_samples
def test_cascade_on_zxing_samples(sample_results):
    results, metadata_problems, misses = sample_results
    print("\nDecoded images per set (median ms per image):\n" + _table(results))
    print("Cascade misses:\n  " + "\n  ".join(misses))

    for name, row in results.items():
        best_single = max(row.decoded[d] for d in DECODERS)
        assert row.decoded["cascade"] >= best_single, (
            f"{name}: cascade {row.decoded['cascade']} < best single decoder {best_single}"
        )
    with_codes = [row for name, row in results.items() if name != FALSE_POSITIVES]
    decoded = sum(row.decoded["cascade"] for row in with_codes)
    total = sum(row.total for row in with_codes)
    assert decoded >= 0.95 * total, f"cascade decoded {decoded}/{total}"


@needs_samples
def test_no_codes_reported_on_false_positive_set(sample_results):
    results, _, _ = sample_results
    row = results[FALSE_POSITIVES]
    assert row.reported["cascade"] == 0
    assert row.decoded["cascade"] == row.total


@needs_samples
def test_metadata_matches_result_files(sample_results):
    _, metadata_problems, _ = sample_results
    assert metadata_problems == []


@needs_samples
def test_header_sizes_match_pillow():
    from verification import decoding

    for sample in _samples():
        data = sample.path.read_bytes()
        fmt = decoding._sniff(data)
        with Image.open(io.BytesIO(data)) as im:
            assert decoding._header_size(fmt, data) == im.size, sample.path


# ------------------------------------------------------------------------- synthetic images


def _png_bytes(img: Image.Image, **params) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", **params)
    return out.getvalue()


def _qr(text: str, *, scale: int = 6) -> Image.Image:
    out = io.BytesIO()
    segno.make(text, error="m", boost_error=False).save(out, kind="png", scale=scale, border=4)
    out.seek(0)
    return Image.open(out).convert("L")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_png_claiming_900_megapixels_is_refused():
    data = _png_claiming(30000, 30000)
    assert len(data) < 200
    with pytest.raises(ImageTooLarge) as caught:
        load_image(data)
    assert caught.value.code == "IMAGE_TOO_LARGE"
    assert caught.value.width == 30000 and caught.value.height == 30000
    with pytest.raises(ImageTooLarge):
        decode_image(data)


def test_max_pixels_is_a_parameter():
    data = _png_bytes(Image.new("L", (1000, 1000), 255))
    with pytest.raises(ImageTooLarge):
        load_image(data, max_pixels=999_999)
    assert load_image(data, max_pixels=1_000_000).shape == (1000, 1000)


def test_random_bytes_are_not_an_image():
    data = random.Random(1).randbytes(4096)
    with pytest.raises(NotAnImage) as caught:
        decode_image(data)
    assert caught.value.code == "UNSUPPORTED_MEDIA_TYPE"
    assert isinstance(caught.value, ImageRejected) and isinstance(caught.value, ValueError)


def test_text_file_is_not_an_image():
    with pytest.raises(NotAnImage):
        decode_image(b"https://example.com/01/09501101530003/10/ABC\n")


def test_no_bytes_is_an_empty_file_not_a_format():
    with pytest.raises(ImageEmpty) as refused:
        decode_image(b"")
    assert refused.value.code == "IMAGE_EMPTY" and not isinstance(refused.value, NotAnImage)


def test_heic_is_refused_as_unsupported():
    heic_header = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(NotAnImage, match="HEIC"):
        load_image(heic_header)


def test_truncated_jpeg_is_undecodable():
    out = io.BytesIO()
    _qr("https://example.com/truncated").convert("RGB").save(out, "JPEG", quality=85)
    data = out.getvalue()
    with pytest.raises(ImageUndecodable) as caught:
        decode_image(data[: len(data) // 2])
    assert caught.value.code == "IMAGE_UNDECODABLE"
    with pytest.raises(ImageUndecodable):
        decode_image(data[:20])  # ends before the frame header


@pytest.mark.parametrize("bad", [b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"II*\x00"])
def test_headers_without_a_size_are_undecodable(bad):
    with pytest.raises(ImageUndecodable):
        load_image(bad)


@pytest.mark.parametrize(
    "fmt,params",
    [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {"lossless": True}), ("GIF", {}),
     ("BMP", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"})],
)
def test_every_supported_format_decodes(fmt, params):
    text = f"https://example.com/{fmt.lower()}"
    out = io.BytesIO()
    _qr(text).convert("RGB").save(out, fmt, **params)
    symbols = decode_image(out.getvalue())
    assert [s.text for s in symbols] == [text]


def test_transparent_png_is_flattened_onto_white():
    qr = _qr("https://example.com/transparent")
    rgba = Image.new("RGBA", qr.size, (0, 0, 0, 0))  # transparent *black*
    rgba.putalpha(Image.eval(qr, lambda v: 255 - v))  # modules opaque black, background clear
    symbols = decode_image(_png_bytes(rgba))
    assert [s.text for s in symbols] == ["https://example.com/transparent"]


def test_exif_rotated_jpeg_is_turned_upright_and_decodes():
    text = "https://example.com/exif"
    qr = _qr(text)
    canvas = Image.new("L", (qr.width * 2, qr.height), 255)  # landscape, QR on the left
    canvas.paste(qr, (0, 0))
    stored = canvas.transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    out = io.BytesIO()
    stored.convert("RGB").save(out, "JPEG", quality=90, exif=exif.tobytes())
    gray = load_image(out.getvalue())
    assert gray.shape == (canvas.height, canvas.width)
    assert gray[: qr.height, qr.width :].mean() > 250  # the blank half is on the right again
    assert [s.text for s in decode_image(out.getvalue())] == [text]


def test_two_qr_codes_and_an_ean13_are_all_found():
    first, second = "https://example.com/01/09501101530003", "https://example.com/other"
    ean = Image.fromarray(np.asarray(zxingcpp.create_barcode("4006381333931", zxingcpp.BarcodeFormat.EAN13).to_image(scale=3)))
    canvas = Image.new("L", (1400, 700), 255)
    canvas.paste(_qr(first), (40, 40))
    canvas.paste(_qr(second), (600, 60))
    canvas.paste(ean.resize((ean.width, 160)), (80, 480))
    symbols = decode_image(_png_bytes(canvas))
    by_text = {s.text: s for s in symbols}
    assert set(by_text) == {first, second, "4006381333931"}
    assert by_text["4006381333931"].symbology == "EAN-13"
    assert by_text["4006381333931"].symbology_identifier == "]E0"
    assert by_text[first].symbology == "QRCode"
    assert by_text[first].decoder == "zxing-cpp"
    assert by_text[first].position is not None and len(by_text[first].position) == 4


def _padded(barcode: zxingcpp.Barcode, scale: int = 4) -> np.ndarray:
    return np.pad(np.asarray(barcode.to_image(scale=scale)), 40, constant_values=255)


GS1_ELEMENTS = "(01)09501101530003(10)ABC123(17)261231"
GS1_TEXT = "0109501101530003" + "10ABC123" + "\x1d" + "17261231"


def test_gs1_datamatrix_keeps_identifier_and_group_separators():
    barcode = zxingcpp.create_barcode(GS1_ELEMENTS, zxingcpp.BarcodeFormat.DataMatrix, gs1=True)
    out = io.BytesIO()
    Image.fromarray(_padded(barcode)).save(out, "PNG")
    (symbol,) = decode_image(out.getvalue())
    assert symbol.text == GS1_TEXT
    assert symbol.symbology == "DataMatrix"
    assert symbol.symbology_identifier == "]d2"
    assert symbol.gs1 is True


@pytest.mark.parametrize("decoder", ["zxing-cpp", "pyzbar"])
@pytest.mark.parametrize(
    "fmt,symbology,identifier",
    [(zxingcpp.BarcodeFormat.QRCode, "QRCode", "]Q3"), (zxingcpp.BarcodeFormat.Code128, "Code128", "]C1")],
)
def test_gs1_qr_and_gs1_128_are_normalised_for_each_decoder(decoder, fmt, symbology, identifier):
    barcode = zxingcpp.create_barcode(GS1_ELEMENTS, fmt, gs1=True)
    (symbol,) = decode_array(_padded(barcode), decoders=[decoder])
    assert (symbol.text, symbol.symbology, symbol.symbology_identifier, symbol.gs1, symbol.decoder) == (
        GS1_TEXT, symbology, identifier, True, decoder,
    )


@pytest.mark.parametrize("decoder", ["zxing-cpp", "pyzbar"])
def test_plain_code128_is_not_gs1(decoder):
    barcode = zxingcpp.create_barcode("0109501101530003", zxingcpp.BarcodeFormat.Code128)
    (symbol,) = decode_array(_padded(barcode), decoders=[decoder])
    assert symbol.symbology_identifier == "]C0" and symbol.gs1 is False


def test_blank_image_gives_nothing():
    assert decode_array(np.full((1200, 1600), 200, np.uint8)) == []
    assert decode_array(np.zeros((1, 1), np.uint8)) == []


def test_unknown_decoder_name_is_rejected():
    with pytest.raises(ValueError):
        decode_array(np.zeros((10, 10), np.uint8), decoders=["zbar"])


def test_positions_are_in_original_pixels_for_large_images():
    text = "https://example.com/large"
    qr = _qr(text, scale=12)
    canvas = Image.new("L", (4000, 3000), 255)
    canvas.paste(qr, (2500, 1800))
    (symbol,) = decode_array(np.asarray(canvas))
    xs = [x for x, _ in symbol.position]
    ys = [y for _, y in symbol.position]
    assert 2500 <= min(xs) and max(xs) <= 2500 + qr.width
    assert 1800 <= min(ys) and max(ys) <= 1800 + qr.height


def _stages_run(caplog) -> list[str]:
    """The cascade's stages that ran, from its debug log: ``"<stage> on <W>x<H>"``."""
    return [r.getMessage().split(":")[0] for r in caplog.records
            if r.name == "verification.decoding" and " code(s) in " in r.getMessage()]


def test_a_photo_over_16_megapixels_is_read_scaled_down_not_at_full_size(caplog):
    """A 48-megapixel photo whose code is too small for the first pass (1280 pixels) is read in
    the second, scaled to 16 megapixels: its modules of 4 pixels are 2.3 there. The full size
    (21 s of a worker for such a photo with no code) is never read."""
    text = "https://example.com/a-small-code-on-a-large-photo"
    qr = _qr(text, scale=4)
    canvas = Image.new("L", (8000, 6000), 255)
    canvas.paste(qr, (5200, 3900))
    caplog.set_level("DEBUG", logger="verification.decoding")
    (symbol,) = decode_array(np.asarray(canvas))
    assert symbol.text == text
    stages = _stages_run(caplog)
    assert any(stage.endswith("on 1280x960") for stage in stages)  # the first pass found nothing
    assert stages[-1] == "zxing-cpp on 4618x3464", stages  # the second, at 16 megapixels
    assert not any("8000x6000" in stage for stage in stages)
    xs = [x for x, _ in symbol.position]
    assert 5200 <= min(xs) and max(xs) <= 5200 + qr.width  # positions still in the photo's pixels


def test_no_stage_starts_after_the_time_budget(caplog):
    """With no time left the cascade stops after its first stage (which always runs): a photo
    with no code costs what was begun within the budget, and still nothing is reported."""
    noise = np.random.default_rng(7).integers(0, 256, (1500, 2000), dtype=np.uint8)
    caplog.set_level("DEBUG", logger="verification.decoding")
    assert decode_array(noise, time_budget=float("inf")) == []
    assert len(_stages_run(caplog)) == 8  # both passes, every stage but the upscale (large image)
    caplog.clear()
    assert decode_array(noise, time_budget=0.0) == []
    assert _stages_run(caplog) == ["zxing-cpp on 1280x960"]
    assert any("the cascade stops before pyzbar" in r.getMessage() for r in caplog.records)
    # The first stage still reads what it can.
    (symbol,) = decode_array(np.asarray(_qr("https://example.com/budget", scale=8)), time_budget=0.0)
    assert symbol.text == "https://example.com/budget"


# ------------------------------------------------------------------------------ phone photos


def _label_url(seed: int) -> str:
    rng = random.Random(seed)
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    url = (
        "https://verify.example.vn/01/08931234567890/10/L"
        + "".join(rng.choice(alphabet) for _ in range(6))
        + "/21/"
        + "".join(rng.choice(alphabet) for _ in range(12))
        + "?17=271231&s=k7Q2.")
    b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return url + "".join(rng.choice(b64url) for _ in range(150 - len(url)))


def test_phone_photo_is_deterministic():
    qr = _qr(_label_url(0))
    assert phone_photo(qr, seed=5) == phone_photo(qr, seed=5)
    assert phone_photo(qr, seed=5) != phone_photo(qr, seed=6)
    with Image.open(io.BytesIO(phone_photo(qr, seed=5))) as im:
        assert im.format == "JPEG" and im.size == (1600, 1200)


def test_150_character_url_qr_survives_phone_photos():
    seeds = range(50)
    read = 0
    failed = []
    for seed in seeds:
        url = _label_url(seed)
        assert len(url) == 150
        symbols = decode_image(phone_photo(_qr(url), seed=seed))
        if any(s.text == url for s in symbols):
            read += 1
        else:
            failed.append(seed)
        assert all(s.text == url for s in symbols), f"seed {seed}: misread {symbols}"
    assert read >= 0.98 * len(seeds), f"read {read}/{len(seeds)}; failed seeds {failed}"
