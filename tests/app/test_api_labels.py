"""Labels over the API: PNG/SVG for one code, a PDF sheet whose QR codes decode to signed URLs."""

from __future__ import annotations

import io
import shutil
import subprocess

import zxingcpp
from PIL import Image

from tests.app import outside_client as oc
from tests.conftest import GTIN, batch_data


def _setup(client, world, count=6):
    assert client.post("/api/v1/batches", json=batch_data(), headers=world.auth("producer")).status_code == 201
    serials = client.post(f"/api/v1/batches/{GTIN}/LOT-1/serials", json={"count": count},
                          headers=world.auth("producer")).get_json()["serials"]
    public = client.get("/api/v1/trust-list").get_json()["producers"][0]["keys"][0]["public_key"]
    return serials, public


def test_png_and_svg_label_for_one_serial(client, world):
    serials, public = _setup(client, world)
    r = client.get(f"/api/v1/batches/{GTIN}/LOT-1/labels?format=png&serial={serials[0]['serial']}",
                   headers=world.auth("producer"))
    assert r.status_code == 200 and r.mimetype == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(r.data)), formats=zxingcpp.BarcodeFormat.QRCode)
    assert [d.text for d in decoded] == [serials[0]["url"]]
    oc.check_code_url(decoded[0].text, public)
    svg = client.get(f"/api/v1/batches/{GTIN}/LOT-1/labels?format=svg&serial={serials[0]['serial']}",
                     headers=world.auth("producer"))
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data[:300]
    missing = client.get(f"/api/v1/batches/{GTIN}/LOT-1/labels?format=png", headers=world.auth("producer"))
    assert missing.status_code == 422 and missing.get_json()["error"]["code"] == "SERIAL_REQUIRED"


def test_pdf_sheet_decodes_to_valid_signed_urls(client, world, tmp_path):
    assert shutil.which("pdftoppm"), "pdftoppm (Debian poppler-utils) is needed: run scripts/setup.sh dev"
    serials, public = _setup(client, world, count=6)
    r = client.get(f"/api/v1/batches/{GTIN}/LOT-1/labels?format=pdf", headers=world.auth("producer"))
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
    pdf = tmp_path / "labels.pdf"
    pdf.write_bytes(r.data)
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(pdf), str(tmp_path / "page")], check=True)
    page = Image.open(next(tmp_path.glob("page*.png")))
    # The labels' codes are QR codes; the printed text around them (random serials, lots) can be
    # misread as a short 1D barcode by an all-formats scan ("B15D" once), which says nothing here.
    texts = {d.text for d in zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)}
    assert texts == {s["url"] for s in serials}
    for text in texts:
        oc.check_code_url(text, public)


def test_labels_need_the_owning_producer(client, world):
    _setup(client, world, count=1)
    assert client.get(f"/api/v1/batches/{GTIN}/LOT-1/labels").status_code == 401
    r = client.get(f"/api/v1/batches/{GTIN}/LOT-1/labels", headers=world.auth("inspector"))
    assert r.status_code == 403
    r = client.get(f"/api/v1/batches/{GTIN}/LOT-1/labels?format=gif", headers=world.auth("producer"))
    assert r.status_code == 422
