"""Benchmark label printing: QR encoders, PNG and SVG labels, and a 10,000-label PDF.

    .venv/bin/python bench/labels.py [--codes 2000] [--pdf-labels 10000] [--json FILE]

The PDF runs in a child process so that its peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry import labels  # noqa: E402
from verification.digital_link import build_url  # noqa: E402

BASE_URL = "https://verify.example.vn"
NAMES = (
    "Cà phê rang xay Buôn Ma Thuột",
    "Nước mắm Phú Quốc 40°N",
    "Trà Shan tuyết cổ thụ Hà Giang",
    "Hạt điều rang muối Bình Phước",
)


def sample_label(rng: random.Random, i: int) -> labels.LabelData:
    """A label as the registry would print it: signed Digital Link, about 160-180 characters."""
    gtin = f"0893600{rng.randrange(10**6):06d}{rng.randrange(10)}"
    lot = f"LOT{2026 + i % 3}{'ABC'[i % 3]}{i % 97:02d}"
    serial = None if i % 5 == 0 else "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=12))
    expiry = datetime.date(2027, 1, 1) + datetime.timedelta(days=i % 700)
    kid = base64.urlsafe_b64encode(rng.randbytes(6)).decode()
    signature = base64.urlsafe_b64encode(rng.randbytes(64)).decode().rstrip("=")
    url = build_url(BASE_URL, gtin=gtin, lot=lot, serial=serial, exp=expiry.strftime("%y%m%d"),
                    s=f"{kid}.{signature}")
    return labels.LabelData(url, gtin, lot, serial, expiry, NAMES[i % len(NAMES)])


def sample_labels(count: int, seed: int = 2026) -> Iterator[labels.LabelData]:
    rng = random.Random(seed)
    for i in range(count):
        yield sample_label(rng, i)


def rate(func: Callable[[str], object], items: list, min_seconds: float = 1.0) -> float:
    """Calls per second of ``func`` over ``items``, repeated for at least ``min_seconds``."""
    calls = 0
    start = time.perf_counter()
    while True:
        for item in items:
            func(item)
        calls += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls / elapsed


def encoders() -> dict[str, Callable[[str], object]]:
    import qrcode
    import segno
    import zxingcpp

    def qrcode_matrix(url: str, mask: int | None = None):
        code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0, mask_pattern=mask)
        code.add_data(url)
        code.make(fit=True)
        return code.get_matrix()

    return {
        "segno default (mask search, M)": lambda url: segno.make_qr(url, error="m", boost_error=False).matrix,
        "segno fixed mask (M)": labels._qr_matrix_segno,
        "qrcode default (mask search, M)": qrcode_matrix,
        "qrcode fixed mask (M)": lambda url: qrcode_matrix(url, mask=4),
        "zxing-cpp default (mask search, M)": lambda url: zxingcpp.create_barcode(
            url, zxingcpp.BarcodeFormat.QRCode, ec_level="M"),
        "zxing-cpp fixed mask (M)": lambda url: zxingcpp.create_barcode(
            url, zxingcpp.BarcodeFormat.QRCode, ec_level="M", data_mask=labels.QR_MASK),
        "zxing-cpp fixed mask to QrMatrix (M)": labels._qr_matrix_zxing,
        "labels.qr_matrix": labels.qr_matrix,
    }


def pdf_child(count: int, stock: str) -> None:
    """Run in the child process: write the PDF to a temporary file and print figures as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.pdf"
        start = time.perf_counter()
        with path.open("wb") as out:
            pages = labels.write_pdf_sheet(sample_labels(count), out, stock=stock)
        seconds = time.perf_counter() - start
        size = path.stat().st_size
    print(json.dumps({
        "labels": count, "stock": stock, "pages": pages, "seconds": seconds, "bytes": size,
        "child_self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def pdf_in_child(count: int, stock: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    completed = subprocess.run(
        [sys.executable, __file__, "--pdf-child", str(count), "--stock", stock],
        check=True, capture_output=True, text=True,
    )
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    figures["peak_rss_mb"] = after / 1024
    if after <= before:  # an earlier child was bigger; the child's own figure is then the one to trust
        figures["peak_rss_mb"] = figures["child_self_maxrss_mb"]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codes", type=int, default=300, help="distinct URLs for the encoder benchmark")
    parser.add_argument("--pdf-labels", type=int, default=10_000)
    parser.add_argument("--stock", default="a4-24", choices=sorted(labels.LABEL_STOCKS))
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    parser.add_argument("--pdf-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.pdf_child is not None:
        pdf_child(args.pdf_child, args.stock)
        return 0

    figures: dict = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    # The PDF child first, so that no earlier child process inflates RUSAGE_CHILDREN.
    pdf = pdf_in_child(args.pdf_labels, args.stock)
    figures["pdf"] = pdf

    sample = list(sample_labels(args.codes, seed=7))
    urls = [label.url for label in sample]
    figures["url_chars"] = {"min": min(map(len, urls)), "max": max(map(len, urls)),
                            "mean": round(sum(map(len, urls)) / len(urls), 1)}
    figures["qr_modules"] = sorted({labels.qr_matrix(url).size for url in urls})

    print(f"URLs: {figures['url_chars']} characters; QR sizes {figures['qr_modules']} modules")
    figures["qr_codes_per_second"] = {}
    for name, func in encoders().items():
        per_second = rate(func, urls)
        figures["qr_codes_per_second"][name] = round(per_second, 1)
        print(f"QR  {name:40s} {per_second:10.1f} codes/s")

    png_rate = rate(labels.render_png, sample[:100], min_seconds=2.0)
    svg_rate = rate(labels.render_svg, sample[:100], min_seconds=2.0)
    figures["png_labels_per_second"] = round(png_rate, 1)
    figures["svg_labels_per_second"] = round(svg_rate, 1)
    print(f"PNG labels (scale 8)                       {png_rate:10.1f} labels/s")
    print(f"SVG labels                                 {svg_rate:10.1f} labels/s")

    sheet = io.BytesIO()
    start = time.perf_counter()
    labels.write_pdf_sheet(iter(sample), sheet, stock=args.stock)
    figures["pdf_labels_per_second_in_process"] = round(len(sample) / (time.perf_counter() - start), 1)
    print(f"PDF {pdf['labels']} labels on {pdf['stock']}: {pdf['seconds']:.2f} s, {pdf['pages']} pages, "
          f"{pdf['bytes'] / 1e6:.1f} MB, peak RSS {pdf['peak_rss_mb']:.0f} MB "
          f"({pdf['labels'] / pdf['seconds']:.0f} labels/s)")

    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
