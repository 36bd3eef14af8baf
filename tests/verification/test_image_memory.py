"""Memory of image loading: small files of many pixels must not cost many bytes a pixel.

The pixel limit (50 megapixels) counts pixels, not bytes. A 7000x7000 16-bit grayscale PNG, float32
TIFF or RGBA PNG is only 100-300 KB, and loading each once took 0.8-1.1 GB (float64 copies of the
whole image, several full-size RGBA buffers). Loading now costs Pillow's
decoded copy (at most 4 bytes a pixel) plus the 1-byte-a-pixel result; the conversion to 8-bit
gray works in strips.

Peak memory is measured in a fresh interpreter: peak RSS from ``/proc/self/status`` (everything,
Pillow's C buffers included) and ``tracemalloc`` (Python objects and numpy arrays), each image
decoded through :func:`verification.decoding.decode_image`, the function the upload endpoints use.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import segno
from PIL import Image

from registry.labels import LabelData, render_png
from tests.conftest import GTIN
from tests.verification.phone_photos import phone_photo
from verification.decoding import ImageUndecodable, decode_image, load_image

REPO = Path(__file__).resolve().parents[2]
SIDE = 7000  # 49 megapixels, just under the 50-megapixel limit
PIXELS = SIDE * SIDE
MODULE = 40  # QR module size in pixels: still 7 pixels once the cascade scales to 1280
TEXTS = {
    "gray16.png": "https://example.com/16-bit-gray",
    "float32.tif": "https://example.com/float32",
    "rgba.png": "https://example.com/rgba",
}

# Budgets, in bytes a pixel above the interpreter's own footprint. Measured before the fix: peak RSS
# 17-23, traced 2-17; after: peak RSS 3 (16-bit) or 5.5 (float, RGBA), traced 1.1-1.3.
RSS_BUDGET = 7.0
TRACED_BUDGET = 2.0

_MEASURE = r"""
import io, json, sys, time, tracemalloc
from PIL import Image
from verification.decoding import decode_image

def status(key):  # kB figures of /proc/self/status, in bytes (VmHWM: peak RSS of this program)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

def reset_peak():  # Linux >= 4.0; ru_maxrss would not do: it keeps the parent's (pytest's) peak
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

blank = io.BytesIO()
Image.new("L", (64, 64), 255).save(blank, "PNG")
decode_image(blank.getvalue())  # every decoder initialised before the baseline
data = open(sys.argv[1], "rb").read()
tracemalloc.start()
reset_peak()
baseline = status("VmRSS")
started = time.perf_counter()
texts = [s.text for s in decode_image(data)]
seconds = time.perf_counter() - started
print(json.dumps({"texts": texts, "seconds": seconds, "rss": status("VmHWM") - baseline,
                  "traced": tracemalloc.get_traced_memory()[1]}))
"""


def _qr_mask(text: str) -> np.ndarray:
    matrix = np.array(segno.make(text, error="m", boost_error=False).matrix, dtype=bool)
    matrix = np.pad(matrix, 4)  # quiet zone
    return np.kron(matrix, np.ones((MODULE, MODULE), dtype=bool)).astype(bool)


def _place(canvas: np.ndarray, mask: np.ndarray, value) -> None:
    top = (SIDE - mask.shape[0]) // 2
    canvas[top:top + mask.shape[0], top:top + mask.shape[1]][mask] = value


def _encode(img: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


@pytest.fixture(scope="module")
def big_images(tmp_path_factory) -> dict[str, Path]:
    """Three 7000x7000 images, each with a QR code: 16-bit gray PNG, float32 TIFF with deflate,
    RGBA PNG with a transparent background (flattened onto white when loaded)."""
    folder = tmp_path_factory.mktemp("big-images")
    made = {}

    gray16 = np.full((SIDE, SIDE), 60000, dtype=np.uint16)
    _place(gray16, _qr_mask(TEXTS["gray16.png"]), 3000)
    made["gray16.png"] = _encode(Image.fromarray(gray16), "PNG", compress_level=1)
    del gray16

    floats = np.full((SIDE, SIDE), 240.0, dtype=np.float32)
    _place(floats, _qr_mask(TEXTS["float32.tif"]), 15.0)
    made["float32.tif"] = _encode(Image.fromarray(floats), "TIFF", compression="tiff_adobe_deflate")
    del floats

    rgba = np.zeros((SIDE, SIDE, 4), dtype=np.uint8)  # transparent black
    _place(rgba[:, :, 3], _qr_mask(TEXTS["rgba.png"]), 255)  # opaque black modules
    made["rgba.png"] = _encode(Image.fromarray(rgba, "RGBA"), "PNG", compress_level=1)
    del rgba

    paths = {}
    for name, data in made.items():
        assert len(data) < 2_000_000, (name, len(data))  # small files: the point of the audit
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS read from Linux /proc")
@pytest.mark.parametrize("name", list(TEXTS))
def test_large_16_bit_float_and_rgba_images_decode_in_bounded_memory(big_images, name):
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(big_images[name])],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    report = (f"{name}: {result['seconds']:.2f} s, peak RSS +{result['rss'] / 2**20:.0f} MiB, "
              f"traced peak {result['traced'] / 2**20:.0f} MiB")
    print(report)
    assert result["texts"] == [TEXTS[name]], report
    assert result["rss"] < RSS_BUDGET * PIXELS, report
    assert result["traced"] < TRACED_BUDGET * PIXELS, report


def test_converted_pixels_of_a_16_bit_float_and_rgba_image():
    """The strip-wise conversion gives what the whole-image one gave (16-bit scaled by 255/65535
    when it goes above 255, floats clipped, transparency flattened onto white)."""
    rows, cols = 1500, 1200  # more than one strip
    ramp = (np.arange(rows * cols, dtype=np.uint64) % 65536).astype(np.uint16).reshape(rows, cols)
    gray = load_image(_encode(Image.fromarray(ramp), "PNG"))
    assert gray.dtype == np.uint8 and gray.shape == (rows, cols)
    expected = np.clip(ramp.astype(np.float64) * (255.0 / 65535.0), 0, 255).astype(np.uint8)
    assert np.array_equal(gray, expected)

    floats = np.linspace(-20.0, 250.0, rows * cols, dtype=np.float32).reshape(rows, cols)
    gray = load_image(_encode(Image.fromarray(floats), "TIFF", compression="tiff_adobe_deflate"))
    assert np.array_equal(gray, np.clip(floats.astype(np.float64), 0, 255).astype(np.uint8))

    rgba = np.zeros((rows, cols, 4), dtype=np.uint8)
    rgba[:, :, 3] = np.arange(cols) % 256  # black, alpha ramp
    gray = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert abs(int(gray[0, 0]) - 255) <= 1 and gray[0, 255] == 0  # clear is white, opaque black
    assert np.all(np.diff(gray[0, :256].astype(int)) <= 0)


def test_a_phone_photo_of_a_label_still_decodes():
    url = "https://verify.example.vn/01/08936000010010/10/LOT-1/21/SN123?s=AbCdEf.0123456789"
    label = render_png(LabelData(url=url, gtin=GTIN, lot="LOT-1", serial="SN123", expiry=None,
                                 product_name="Cà phê rang xay Buôn Ma Thuột"))
    photo = phone_photo(Image.open(io.BytesIO(label)).convert("RGB"), seed=3)
    assert url in [s.text for s in decode_image(photo)]


def test_undecodable_message_names_no_python_objects():
    data = b"GIF89a" + (10).to_bytes(2, "little") * 2 + b"\xff" * 40  # right header, then garbage
    with pytest.raises(ImageUndecodable) as caught:
        decode_image(data)
    message = caught.value.message
    assert caught.value.code == "IMAGE_UNDECODABLE"
    assert message.startswith("The GIF image is corrupt or truncated")
    assert "0x" not in message and "<" not in message and "BytesIO" not in message, message
