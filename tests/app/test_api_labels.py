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


def test_every_code_of_a_batch_as_csv_for_the_producers_own_printer(client, world, registry, session):
    """A producer printing on its own printer needs every code's signed URL after issuing them:
    there had been no way to get them back (the serials listing has no URL, the portal shows 100)."""
    import csv

    from registry.services import SYSTEM

    serials, public = _setup(client, world, count=5)
    answer = client.get(f"/api/v1/batches/{GTIN}/LOT-1/codes.csv", headers=world.auth("producer"))
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [(r["serial"], r["url"]) for r in rows] == [(s["serial"], s["url"]) for s in serials]
    assert {r["gtin"] for r in rows} == {GTIN} and {r["lot"] for r in rows} == {"LOT-1"}
    for row in rows:
        oc.check_code_url(row["url"], public)
        assert client.get("/api/v1/verify", query_string={"code": row["url"]}).get_json()["verdict"] == "genuine"
    for role in ("inspector", "partner"):
        assert client.get(f"/api/v1/batches/{GTIN}/LOT-1/codes.csv", headers=world.auth(role)).status_code == 403
    other = registry.admit_producer(SYSTEM, name="Other", tax_code="0377777777", gs1_prefixes=["893700001"],
                                    country="VN")
    from registry.services import Role, TokenService

    token = TokenService(session).create(role=Role.PRODUCER, producer_id=other.id)[0]
    session.commit()
    refused = client.get(f"/api/v1/batches/{GTIN}/LOT-1/codes.csv", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "NOT_YOUR_PRODUCER"


def test_the_batch_page_links_to_its_codes_csv(client, world, session):
    from tests.app.portal_support import client_login, make_user

    serials, _ = _setup(client, world, count=3)
    make_user(session, "maker", "producer", world.producer_id)
    client_login(client, "maker")
    page = client.get(f"/portal/producer/batches/{GTIN}/LOT-1").get_data(as_text=True)
    link = f'/portal/producer/batches/{GTIN}/LOT-1/codes.csv'
    assert f'href="{link}"' in page
    lines = client.get(link).get_data(as_text=True).splitlines()
    assert lines[0] == "gtin,lot,serial,expiry,url" and [line.split(",")[-1] for line in lines[1:]] == [
        s["url"] for s in serials]
