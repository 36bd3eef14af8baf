"""POST /api/v1/verify/image with 1600x1200 JPEG phone photos of our own labels: median and p99.

    .venv/bin/python bench/image_latency.py [--photos 40] [--rounds 3] [--quick] [--json FILE]

The instance (SQLite, a temporary folder) holds real signed unit codes; each photo is one of
them printed by registry/labels.py::render_png and photographed by
tests/verification/phone_photos.py::phone_photo (tilt, rotation, glare, blur, noise, JPEG 60-90).
Requests are sequential, over one keep-alive connection, against gunicorn started with
``-c gunicorn.conf.py`` (the shipped configuration) on a loopback port: the figure is the
latency one shopper sees on an idle server, upload over loopback included.

References in the same run: the in-process time of verification.decoding.decode_image on the
same bytes (the decoding floor) and of GET /api/v1/verify for the same codes over the same server
(the rest of the verification).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import sys
import time
import urllib.parse
import uuid
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, median, percentile  # noqa: E402
from http_load import Server, prepare_instance, shipped_config  # noqa: E402

sys.path.insert(0, str(REPO))


def make_photos(codes: list[dict[str, str]], count: int) -> list[tuple[bytes, str]]:
    from PIL import Image

    from registry.labels import LabelData, render_png
    from tests.verification.phone_photos import phone_photo

    photos = []
    for i, code in enumerate(codes[:count]):
        label = LabelData(url=code["url"], gtin=code["gtin"], lot=code["lot"], serial=code["serial"],
                          expiry=date.fromisoformat(code["expiry"]) if code["expiry"] else None,
                          product_name=code["product_name"])
        image = Image.open(io.BytesIO(render_png(label))).convert("RGB")
        photos.append((phone_photo(image, seed=i, size=(1600, 1200)), code["url"]))
    return photos


def multipart(data: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
                 f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_photos(port: int, photos: list[tuple[bytes, str]], rounds: int) -> tuple[list[float], dict[str, int]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times, verdicts = [], {}
    for r in range(rounds):
        for data, _ in photos:
            body, ctype = multipart(data, {"client_id": uuid.uuid4().hex})
            start = time.perf_counter()
            conn.request("POST", "/api/v1/verify/image", body=body, headers={"Content-Type": ctype})
            response = conn.getresponse()
            payload = response.read()
            times.append((time.perf_counter() - start) * 1000)
            verdict = json.loads(payload).get("verdict", "?") if response.status == 200 else f"http-{response.status}"
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
    conn.close()
    return times, verdicts


def get_codes(port: int, photos: list[tuple[bytes, str]], rounds: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(rounds):
        for _, url in photos:
            path = f"/api/v1/verify?code={urllib.parse.quote(url, safe='')}&client_id={uuid.uuid4().hex}"
            start = time.perf_counter()
            conn.request("GET", path)
            conn.getresponse().read()
            times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=None, help="distinct photos (default 40, quick 20)")
    parser.add_argument("--rounds", type=int, default=None, help="times each photo is sent (default 3, quick 2)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    count = args.photos or (20 if args.quick else 40)
    rounds = args.rounds or (2 if args.quick else 3)

    env, codes = prepare_instance(None, batches=2, serials_per_batch=max(count, 50))
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # the app logs each decode to stdout: keep stdout for figures
    started = time.perf_counter()
    photos = make_photos(codes, count)
    print(f"{len(photos)} photos of 1600x1200 made in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    from verification.decoding import decode_image

    decode_image(photos[0][0])  # warm-up: first-call costs of the decoders
    decode_ms = []
    decoded = 0
    for data, url in photos:
        start = time.perf_counter()
        symbols = decode_image(data)
        decode_ms.append((time.perf_counter() - start) * 1000)
        decoded += any(s.text == url for s in symbols)

    config = shipped_config()
    with Server("wsgi:app", config, env=env) as server:
        post_photos(server.port, photos[:3], 1)  # warm-up: imports, first connections
        times, verdicts = post_photos(server.port, photos, rounds)
        text_ms = get_codes(server.port, photos, rounds)

    figures = {
        "server": f"gunicorn -c gunicorn.conf.py ({config.label}), sequential requests, one keep-alive connection",
        "photos": len(photos), "rounds": rounds, "requests": len(times),
        "jpeg_kb_median": round(median([len(d) for d, _ in photos]) / 1024, 1),
        "median_ms": median(times), "p99_ms": percentile(times, 99), "p95_ms": percentile(times, 95),
        "max_ms": max(times), "verdicts": verdicts,
        "reference_decode_in_process": {"median_ms": median(decode_ms), "p99_ms": percentile(decode_ms, 99),
                                        "qr_decoded": decoded},
        "reference_get_verify": {"median_ms": median(text_ms), "p99_ms": percentile(text_ms, 99)},
        "target_median_ms": 150,
    }
    figures["target_met"] = figures["median_ms"] < 150
    print(markdown(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return figures


def markdown(f: dict) -> str:
    ref_d, ref_t = f["reference_decode_in_process"], f["reference_get_verify"]
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(f["verdicts"].items(), key=lambda kv: -kv[1]))
    return "\n".join([
        f"{f['requests']} sequential requests ({f['photos']} photos × {f['rounds']}), 1600×1200 JPEG "
        f"(median {f['jpeg_kb_median']} KB), {f['server']}. Verdicts: {verdicts}.\n",
        "| measurement | median ms | p99 ms | note |",
        "|---|---|---|---|",
        f"| POST /api/v1/verify/image | {f['median_ms']:.1f} | {f['p99_ms']:.1f} | target: median < 150 ms "
        f"{'✅' if f['target_met'] else '❌'} |",
        f"| reference: decode_image in process, same photos | {ref_d['median_ms']:.1f} | {ref_d['p99_ms']:.1f} | "
        f"QR read on {ref_d['qr_decoded']}/{f['photos']} |",
        f"| reference: GET /api/v1/verify, same codes, same server | {ref_t['median_ms']:.1f} | {ref_t['p99_ms']:.1f} | "
        f"the non-decoding part |",
    ])


if __name__ == "__main__":
    main()
