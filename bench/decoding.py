"""Benchmark of verification.decoding: each decoder alone and the cascade, per image set.

    python bench/decoding.py [--json out.json] [--photos N] [--sets qrcode-2,ean13-1]

Sets: every folder of $SHARED_DIR/samples/zxing (default ../shared next to the project), plus
simulated phone photos of a product label (a 150-character Digital Link QR beside an EAN-13)
at 1600x1200 and at 12 MP (4000x3000), made with tests/verification/phone_photos.py. On the
phone sets the cascade is also run without its scale-down step, to show what it buys.

Times are per image for decode_image (bytes in, codes out, image decoding included), on one
CPU core when the OS lets us pin the process.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import segno  # noqa: E402
import zxingcpp  # noqa: E402
from PIL import Image  # noqa: E402

from tests.verification.phone_photos import phone_photo  # noqa: E402
from verification import decoding  # noqa: E402

SHARED = Path(os.environ.get("SHARED_DIR") or ROOT.parent / "shared")
SAMPLES = SHARED / "samples" / "zxing"
RUNS = ("zxing-cpp", "pyzbar", "opencv", "cascade")
WRONG_GROUND_TRUTH = {("ean13-2", "23"): "9784872348880", ("ean13-2", "28"): "9784872348880"}


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    return "not pinned (no sched_setaffinity)"


def sample_sets(only: set[str] | None) -> dict[str, list[tuple[bytes, set[str]]]]:
    """{set: [(image bytes, expected texts)]}, expected empty for images without codes."""
    sets: dict[str, list[tuple[bytes, set[str]]]] = {}
    if not SAMPLES.is_dir():
        print(f"no samples at {SAMPLES}", file=sys.stderr)
        return sets
    for folder in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        if only and folder.name not in only:
            continue
        for img in sorted(folder.iterdir()):
            if img.suffix.lower() not in {".png", ".jpg", ".webp", ".gif"}:
                continue
            txt, binary = img.with_suffix(".txt"), img.with_suffix(".bin")
            if folder.name.startswith("falsepositives"):
                expected: set[str] = set()
            elif txt.exists():
                expected = {WRONG_GROUND_TRUTH.get((folder.name, img.stem), txt.read_bytes().decode("utf-8"))}
            elif binary.exists():
                expected = {binary.read_bytes().decode("latin-1")}
            else:
                continue
            sets.setdefault(folder.name, []).append((img.read_bytes(), expected))
    return sets


def _label(seed: int) -> tuple[Image.Image, set[str]]:
    """A product label: a 150-character Digital Link QR (EC level M) and an EAN-13."""
    rng = random.Random(seed)
    url = f"https://verify.example.vn/01/0893{rng.randrange(10**9):09d}0/10/L{rng.randrange(10**6):06d}?s=k7Q2."
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    url += "".join(rng.choice(alphabet) for _ in range(150 - len(url)))
    qr_png = io.BytesIO()
    segno.make(url, error="m", boost_error=False).save(qr_png, kind="png", scale=6, border=4)
    qr = Image.open(io.BytesIO(qr_png.getvalue())).convert("L")
    digits = f"893{rng.randrange(10**9):09d}"
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    ean_text = digits + str(check)
    ean = zxingcpp.create_barcode(ean_text, zxingcpp.BarcodeFormat.EAN13)
    ean_img = Image.fromarray(np.asarray(ean.to_image(scale=3))).resize((3 * 113, 130))
    label = Image.new("L", (qr.width + ean_img.width + 60, max(qr.height, ean_img.height) + 40), 255)
    label.paste(qr, (20, 20))
    label.paste(ean_img, (qr.width + 40, (label.height - ean_img.height) // 2))
    return label, {url, ean_text}


def phone_sets(count: int) -> dict[str, list[tuple[bytes, set[str]]]]:
    sets: dict[str, list[tuple[bytes, set[str]]]] = {"phone-1600x1200": [], "phone-4000x3000": []}
    for seed in range(count):
        label, expected = _label(seed)
        sets["phone-1600x1200"].append((phone_photo(label, seed=seed), expected))
        sets["phone-4000x3000"].append((phone_photo(label, seed=seed, size=(4000, 3000)), expected))
    return sets


def worst_cases() -> list[dict]:
    """Photos with no code, the most a worker can be made to spend on one upload: a 48-megapixel
    photo (a phone's full-resolution mode) and a JPEG of noise just under the 10 MiB upload limit,
    each decoded once with the cascade's bounds (second pass at most SECOND_PASS_MAX_PIXELS, no
    stage begun after TIME_BUDGET_SECONDS) and once without them."""
    rng = np.random.default_rng(1)
    y = np.arange(6000, dtype=np.float32)[:, None]
    x = np.arange(8000, dtype=np.float32)[None, :]
    scene = ((np.sin(x / 300.0) + np.cos(y / 170.0)) * 60 + 128).astype(np.uint8)
    scene += rng.integers(0, 16, scene.shape, dtype=np.uint8)
    noise = rng.integers(0, 256, (3700, 3700), dtype=np.uint8)
    cases = []
    for name, pixels in (("48 MP photo, no code (8000x6000)", scene), ("noise JPEG (3700x3700)", noise)):
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=85)
        cases.append((name, out.getvalue()))
    del scene, noise
    rows = []
    saved = decoding.SECOND_PASS_MAX_PIXELS, decoding.TIME_BUDGET_SECONDS
    for name, data in cases:
        for bounded in (True, False):
            if not bounded:
                decoding.SECOND_PASS_MAX_PIXELS, decoding.TIME_BUDGET_SECONDS = 10**9, float("inf")
            try:
                started = time.perf_counter()
                found = decoding.decode_image(data)
                seconds = time.perf_counter() - started
            finally:
                decoding.SECOND_PASS_MAX_PIXELS, decoding.TIME_BUDGET_SECONDS = saved
            rows.append({"image": name, "mb": round(len(data) / 2**20, 1), "bounded": bounded,
                         "seconds": round(seconds, 2), "codes": len(found)})
            print(f"{name:36} {'bounded' if bounded else 'unbounded':10} {seconds:6.1f} s", file=sys.stderr)
    return rows


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def run(images: list[tuple[bytes, set[str]]], name: str) -> dict:
    decoders = None if name.startswith("cascade") else [name]
    decoded = primary = 0
    times = []
    for data, expected in images:
        started = time.perf_counter()
        symbols = decoding.decode_image(data, decoders=decoders)
        times.append((time.perf_counter() - started) * 1000)
        texts = {s.text + (s.add_on or "") for s in symbols} | {s.text for s in symbols}
        if expected:
            decoded += expected <= texts
            primary += max(expected, key=len) in texts  # phone sets: the QR URL
        else:
            decoded += not symbols
            primary += not symbols
    return {
        "decoded": decoded,
        "qr_found": primary,
        "total": len(images),
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(p95(times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--photos", type=int, default=20, help="phone photos per size (default 20)")
    parser.add_argument("--sets", help="comma-separated sample sets to run (default all)")
    parser.add_argument("--no-worst", action="store_true", help="skip the worst cases (about a minute)")
    args = parser.parse_args()

    pinned = pin_to_one_core()
    only = set(args.sets.split(",")) if args.sets else None
    sets = sample_sets(only)
    if args.photos:
        print(f"making {args.photos} phone photos per size ...", file=sys.stderr)
        sets.update(phone_sets(args.photos))

    rows = []
    for set_name, images in sets.items():
        runs = list(RUNS)
        if set_name.startswith("phone-"):
            runs.append("cascade (no scale-down)")
        for name in runs:
            if name == "cascade (no scale-down)":
                saved = decoding.WORKING_SIDE
                decoding.WORKING_SIDE = 10**6
                try:
                    result = run(images, "cascade")
                finally:
                    decoding.WORKING_SIDE = saved
            else:
                result = run(images, name)
            rows.append({"set": set_name, "decoder": name, **result})
            print(f"{set_name:24} {name:24} {result['decoded']:4}/{result['total']:<4} "
                  f"median {result['median_ms']:8.1f} ms  p95 {result['p95_ms']:8.1f} ms", file=sys.stderr)

    print(f"\nverification.decoding benchmark ({pinned}; ms per image, bytes to codes)\n")
    print("decoded = every expected code found; phone sets: QR = the label's QR code found.\n")
    print("| set | decoder | decoded | phone QR | median ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        qr = f"{row['qr_found']}/{row['total']}" if row["set"].startswith("phone-") else ""
        print(f"| {row['set']} | {row['decoder']} | {row['decoded']}/{row['total']} | {qr} | "
              f"{row['median_ms']:.1f} | {row['p95_ms']:.1f} |")
    worst = [] if args.no_worst else worst_cases()
    if worst:
        print(f"\nWorst cases, no code in the image (one decode each, seconds of one core): with the "
              f"cascade's bounds (second pass at most {decoding.SECOND_PASS_MAX_PIXELS / 1e6:.0f} MP, no stage "
              f"begun after {decoding.TIME_BUDGET_SECONDS:g} s) and without them.\n")
        print("| image | MiB | bounded s | unbounded s | codes reported |")
        print("|---|---|---|---|---|")
        for name in dict.fromkeys(row["image"] for row in worst):
            pair = {row["bounded"]: row for row in worst if row["image"] == name}
            print(f"| {name} | {pair[True]['mb']} | {pair[True]['seconds']:.1f} | {pair[False]['seconds']:.1f} | "
                  f"{pair[True]['codes']} / {pair[False]['codes']} |")
    if args.json:
        bounds = {"second_pass_max_pixels": decoding.SECOND_PASS_MAX_PIXELS,
                  "time_budget_s": decoding.TIME_BUDGET_SECONDS}
        args.json.write_text(json.dumps({"pinned": pinned, "rows": rows, "worst_cases": worst, "bounds": bounds},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
