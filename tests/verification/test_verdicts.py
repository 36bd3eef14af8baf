"""Every verdict scenario of issue 3, through the real API, registry, signatures and decoders."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta

import pytest
from PIL import Image

from keys.signing import Signer, sign_code
from registry.labels import LabelData, render_png
from registry.services import SYSTEM, Actor, Role
from tests.conftest import BASE_URL, GTIN, batch_data
from verification.digital_link import build_url
from verification.parsing import parse_code


def _verify(client, code, *, address="127.0.0.1", **params):
    r = client.get("/api/v1/verify", query_string={"code": code, **params}, environ_base={"REMOTE_ADDR": address})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _codes(body):
    return [r["code"] for r in body["reasons"]]


@pytest.fixture
def batch(registry, world, session):
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    b = registry.register_batch(actor, batch_data())
    serials = registry.issue_serials(actor, GTIN, "LOT-1", 3)
    urls = {"batch_url": registry.batch_url(b), "units": [registry.serial_url(b, serial, s) for serial, s in serials],
            "signer": registry.keystore.load(world.kid), "actor": actor}
    session.commit()  # SQLite: end the fixture's transaction so the app can write
    return urls


def test_genuine_batch_code(client, batch):
    body = _verify(client, batch["batch_url"])
    assert body["verdict"] == "genuine" and body["reasons"] == []
    assert body["code"]["kind"] == "digital_link" and body["code"]["serial"] is None
    assert body["product"]["name"] == "Cà phê rang xay" and body["producer"]["name"] == "HTX Highland"


def test_genuine_unit_code_with_scan_history(client, batch):
    first = _verify(client, batch["units"][0], client_id="phone-a")
    second = _verify(client, batch["units"][0], client_id="phone-a")
    assert first["verdict"] == second["verdict"] == "genuine"
    assert first["scans"]["count"] == 1 and second["scans"]["count"] == 2
    assert second["scans"]["first_seen"] == first["scans"]["first_seen"]


def _swap_signature_char(url: str) -> str:
    head, sig = url.rsplit(".", 1)
    pos = len(sig) // 2
    return f"{head}.{sig[:pos]}{'A' if sig[pos] != 'A' else 'B'}{sig[pos + 1:]}"


def test_tampered_signature_is_counterfeit(client, batch):
    body = _verify(client, _swap_signature_char(batch["units"][0]))
    assert body["verdict"] == "counterfeit" and _codes(body) == ["SIGNATURE_INVALID"]
    assert body["reasons"][0]["message"]["vi"] and body["reasons"][0]["message"]["en"]


def test_key_no_authority_certified_is_counterfeit(client, batch):
    rogue = Signer.generate()
    exp = (date.today() + timedelta(days=365)).strftime("%y%m%d")
    url = build_url(BASE_URL, gtin=GTIN, lot="LOT-1", serial="FAKE1", exp=exp,
                    s=sign_code(rogue, gtin=GTIN, lot="LOT-1", serial="FAKE1", exp=exp))
    body = _verify(client, url)
    assert body["verdict"] == "counterfeit" and _codes(body) == ["KEY_UNKNOWN"]


def test_lot_swapped_under_a_valid_signature_is_counterfeit(client, batch, registry, session):
    registry.register_batch(batch["actor"], batch_data(lot="LOT-2"))
    session.commit()
    swapped = batch["units"][0].replace("/10/LOT-1/", "/10/LOT-2/")
    body = _verify(client, swapped)
    assert body["verdict"] == "counterfeit" and _codes(body) == ["SIGNATURE_INVALID"]


def test_key_signing_outside_its_prefix_is_counterfeit(client, batch, registry, session):
    other = registry.admit_producer(SYSTEM, name="Other", tax_code="0377777777", gs1_prefixes=["893700001"],
                                    country="VN")
    key = registry.certify_key(SYSTEM, other.id)
    signer = registry.keystore.load(key.kid)
    session.commit()
    url = build_url(BASE_URL, gtin=GTIN, lot="LOT-1", s=sign_code(signer, gtin=GTIN, lot="LOT-1"))
    body = _verify(client, url)
    assert body["verdict"] == "counterfeit" and _codes(body) == ["PREFIX_NOT_LICENSED"]


def test_recalled_batch(client, batch, registry, session):
    registry.recall(batch["actor"], GTIN, "LOT-1", reason="bad seal")
    session.commit()
    body = _verify(client, batch["units"][1])
    assert body["verdict"] == "recalled" and "BATCH_RECALLED" in _codes(body)
    assert body["batch"]["recall_reason"] == "bad seal"


def test_expired_batch(client, registry, world, session):
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    old = batch_data(lot="OLD-1", production_date=(date.today() - timedelta(days=400)).isoformat(),
                     expiry=date.today() - timedelta(days=3))
    url = registry.batch_url(registry.register_batch(actor, old))
    session.commit()
    body = _verify(client, url)
    assert body["verdict"] == "expired" and _codes(body) == ["EXPIRED"]


def test_unregistered_lot_is_unknown(client, batch, registry):
    signer = batch["signer"]
    url = build_url(BASE_URL, gtin=GTIN, lot="NEVER", s=sign_code(signer, gtin=GTIN, lot="NEVER"))
    body = _verify(client, url)
    assert body["verdict"] == "unknown" and _codes(body) == ["BATCH_UNKNOWN"]
    # an unsigned GS1 element string for an unknown lot is unknown too
    body = _verify(client, f"]d201{GTIN}10NEVER2")
    assert body["verdict"] == "unknown"


def test_serial_never_issued_is_unknown(client, batch, registry):
    signer = batch["signer"]
    exp = (date.today() + timedelta(days=365)).strftime("%y%m%d")
    url = build_url(BASE_URL, gtin=GTIN, lot="LOT-1", serial="NOTISSUED", exp=exp,
                    s=sign_code(signer, gtin=GTIN, lot="LOT-1", serial="NOTISSUED", exp=exp))
    body = _verify(client, url)
    assert body["verdict"] == "unknown" and _codes(body) == ["SERIAL_UNKNOWN"]


def test_a_serial_never_issued_has_no_history_and_leaves_the_batch_codes_alone(client, batch, app):
    """A made-up serial had shown the batch code's counts as its own (recorded under the batch's
    key), and a signed one had added to them."""
    for _ in range(3):
        assert _verify(client, batch["batch_url"])["verdict"] == "genuine"
    app.extensions["scan_writer"].flush()
    signer = batch["signer"]
    exp = (date.today() + timedelta(days=365)).strftime("%y%m%d")
    signed = build_url(BASE_URL, gtin=GTIN, lot="LOT-1", serial="MADEUP1", exp=exp,
                       s=sign_code(signer, gtin=GTIN, lot="LOT-1", serial="MADEUP1", exp=exp))
    for made_up in (signed, f"{BASE_URL}/01/{GTIN}/10/LOT-1/21/MADEUP2"):
        body = _verify(client, made_up, client_id="someone")
        assert body["verdict"] == "unknown" and "SERIAL_UNKNOWN" in _codes(body)
        assert body["scans"] is None
    app.extensions["scan_writer"].flush()
    assert _verify(client, batch["batch_url"])["scans"]["count"] == 4  # its own three, and this one
    # the page does not present the batch's record as this item's
    page = client.get("/check", query_string={"code": signed}, headers={"Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert 'data-verdict="unknown"' in html and "About the batch this code names" in html
    assert 'id="batch-not-item"' in html and "About this product" not in html


def test_a_unit_code_as_issued_is_checked_against_its_issuance_and_any_other_by_ed25519(client, batch):
    """Online, a unit code whose s is the one the registry signed for its serial and expiry needs
    no Ed25519 check (keys.signing counts its checks); the same s on another serial or expiry
    gets one, and fails it."""
    from keys.signing import _verified

    first, second = (parse_code(url) for url in batch["units"][:2])
    _verified.cache_clear()
    assert _verify(client, batch["units"][0])["verdict"] == "genuine"
    assert _verify(client, batch["units"][1])["verdict"] == "genuine"
    assert _verified.cache_info().misses == 0

    later = (first.expiry + timedelta(days=1)).strftime("%y%m%d")
    moved = [build_url(BASE_URL, gtin=GTIN, lot="LOT-1", serial=second.serial, exp=first.expiry_raw, s=first.signature),
             build_url(BASE_URL, gtin=GTIN, lot="LOT-1", serial=first.serial, exp=later, s=first.signature)]
    for url in moved:
        body = _verify(client, url)
        assert body["verdict"] == "counterfeit" and _codes(body) == ["SIGNATURE_INVALID"]
    assert _verified.cache_info().misses == 2


def test_plain_ean13_is_unverifiable(client, batch):
    body = _verify(client, GTIN[1:])
    assert body["verdict"] == "unverifiable" and _codes(body) == ["PLAIN_GTIN"]
    assert body["code"]["gtin"] == GTIN and body["product"]["name"] == "Cà phê rang xay"
    # a serial without a lot names no batch either: the words had said "a plain product barcode"
    serial_only = _verify(client, f"(01){GTIN}(21)ABC123")
    assert serial_only["verdict"] == "unverifiable" and _codes(serial_only) == ["PLAIN_GTIN"]
    assert serial_only["reasons"][0]["message"]["en"].startswith("A code that names a product without its lot")


def test_free_text_is_unreadable(client):
    body = _verify(client, "hello, is this real?")
    assert body["verdict"] == "unreadable" and _codes(body) == ["MALFORMED_CODE"]


def test_wrong_check_digit_is_unreadable(client):
    body = _verify(client, "8936000010013")
    assert body["verdict"] == "unreadable" and _codes(body) == ["BAD_CHECK_DIGIT"]


def test_missing_separator_is_explained_not_called_counterfeit(client, batch):
    exp = (date.today() + timedelta(days=365)).strftime("%y%m%d")
    body = _verify(client, f"]d201{GTIN}10LOT-117{exp}")  # FNC1 lost after the lot
    assert body["verdict"] != "counterfeit"
    assert body["code"]["lot"] == "LOT-1"
    assert "SCANNER_SLIP" in [n["code"] for n in body["notes"]]


def test_unsigned_datamatrix_of_a_registered_batch_is_unverifiable(client, batch):
    body = _verify(client, f"]d201{GTIN}10LOT-1")
    assert body["verdict"] == "unverifiable" and _codes(body) == ["UNSIGNED_CODE"]
    assert body["batch"]["lot"] == "LOT-1"



def test_the_page_says_an_unsigned_code_lacks_its_signature_not_that_it_only_names_a_product(client, batch):
    """A code naming a batch (a GS1 DataMatrix, a Digital Link) without its signature had been told "this barcode only
    names a product", the plain barcode's advice."""
    unsigned = client.get("/check", query_string={"code": f"(01){GTIN}(10)LOT-1"},
                          headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'data-verdict="unverifiable"' in unsigned
    assert "This code names a batch but carries no signature" in unsigned and "only names a product" not in unsigned
    plain = client.get("/check", query_string={"code": GTIN}, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'data-verdict="unverifiable"' in plain and "only names a product" in plain


def test_a_printed_expiry_that_differs_from_the_registrys_is_a_mismatch_not_expired(client, batch):
    """The code says 2020-01-01, the registry a date ahead: the details do not match (suspect), and
    the registry's date decides whether the goods are past it. The answer had also said 'the
    expiry date has passed' beside the registered date years ahead."""
    body = _verify(client, f"(01){GTIN}(17)200101(10)LOT-1")
    assert body["verdict"] == "suspect" and _codes(body) == ["DATA_MISMATCH", "UNSIGNED_CODE"], body["reasons"]
    assert "the code says expiry 2020-01-01" in body["reasons"][0]["detail"]


def test_twenty_five_clients_from_many_networks_make_a_clone_but_one_client_does_not(client, batch):
    same = [_verify(client, batch["units"][0], client_id="one-shopper")["verdict"] for _ in range(25)]
    assert set(same) == {"genuine"}
    verdicts = [_verify(client, batch["units"][1], client_id=f"shopper-{i}", address=f"203.0.{i}.7") for i in range(25)]
    assert [v["verdict"] for v in verdicts[:10]] == ["genuine"] * 10
    assert verdicts[10]["verdict"] == "suspect"
    assert verdicts[10]["reasons"][0]["detail"] == ("verified by 11 different clients from 11 networks "
                                                    "(limits 10 clients, 5 networks)")
    assert verdicts[-1]["verdict"] == "suspect" and "SERIAL_CLONED" in _codes(verdicts[-1])
    assert verdicts[-1]["reasons"][0]["detail"] == "flagged as a likely clone by an earlier verification"
    assert verdicts[-1]["scans"]["count"] == 25


def test_one_network_inventing_client_ids_does_not_make_a_clone(client, batch):
    """Any client can send a new client_id with each request: from one network (a /24) they count
    as one, and the genuine unit stays genuine for everyone."""
    made_up = [_verify(client, batch["units"][0], client_id=f"fake-{i}", address=f"198.51.100.{i}") for i in range(30)]
    assert {v["verdict"] for v in made_up} == {"genuine"}
    assert made_up[-1]["scans"]["clients"] == 30
    shopper = _verify(client, batch["units"][0], client_id="real-shopper", address="192.0.2.10")
    assert shopper["verdict"] == "genuine"


def test_a_serial_typed_in_clear_is_not_counted_and_cannot_flag_the_unit(client, batch):
    """GTIN, lot and serial are printed in clear on every label: typed from 25 networks without the
    signature they are unverifiable, each answer shows the history as it stands, and nothing is
    added to it. They had been counted, and the genuine unit was flagged as a clone for everyone."""
    unit = batch["units"][1]
    assert _verify(client, unit, client_id="owner", address="192.0.2.10")["scans"]["count"] == 1
    serial = parse_code(unit).serial
    typed = [_verify(client, f"(01){GTIN}(10)LOT-1(21){serial}", client_id=f"typist-{i}", address=f"203.0.{i}.7")
             for i in range(25)]
    assert {v["verdict"] for v in typed} == {"unverifiable"}
    assert {tuple(_codes(v)) for v in typed} == {("UNSIGNED_CODE",)}
    assert {(v["scans"]["count"], v["scans"]["clients"]) for v in typed} == {(1, 1)}
    shopper = _verify(client, unit, client_id="shopper", address="198.51.100.9")
    assert shopper["verdict"] == "genuine", shopper["reasons"]
    assert (shopper["scans"]["count"], shopper["scans"]["clients"]) == (2, 2)


def test_a_clone_found_stays_flagged(client, batch):
    for i in range(12):
        _verify(client, batch["units"][1], client_id=f"shopper-{i}", address=f"203.0.{i}.7")
    later = _verify(client, batch["units"][1], client_id="shopper-0", address="203.0.0.7")
    assert later["verdict"] == "suspect" and "SERIAL_CLONED" in _codes(later)
    assert later["reasons"][0]["detail"] == "flagged as a likely clone by an earlier verification"


def test_made_up_places_from_two_networks_do_not_flag_a_genuine_unit(client, batch):
    """Places are what clients say, and two networks are a phone's data and a wifi: Hanoi then
    Saigon a minute apart makes that verification suspect, and the shoppers after it (whose page
    sends no place) still see the unit genuine. It had been flagged for everyone, for good."""
    _verify(client, batch["units"][2], client_id="a", lat=21.03, lon=105.85, address="203.0.113.5")
    claimed = _verify(client, batch["units"][2], client_id="b", lat=10.78, lon=106.70, address="198.51.100.9")
    assert claimed["verdict"] == "suspect" and "km/h apart" in claimed["reasons"][0]["detail"]
    shopper = _verify(client, batch["units"][2], client_id="shopper", address="192.0.2.10")
    assert shopper["verdict"] == "genuine" and shopper["scans"]["count"] == 3 and shopper["scans"]["clients"] == 3


def test_impossible_travel_is_suspect(client, batch):
    hanoi = _verify(client, batch["units"][2], client_id="a", lat=21.03, lon=105.85, address="203.0.113.5")
    saigon = _verify(client, batch["units"][2], client_id="b", lat=10.78, lon=106.70, address="198.51.100.9")
    assert hanoi["verdict"] == "genuine"
    assert saigon["verdict"] == "suspect" and "SERIAL_CLONED" in _codes(saigon)


def test_places_said_from_one_network_prove_no_travel(client, batch):
    """One client can claim any place: Hanoi then Saigon a minute apart from one network is not a clone."""
    hanoi = _verify(client, batch["units"][2], client_id="a", lat=21.03, lon=105.85, address="203.0.113.5")
    saigon = _verify(client, batch["units"][2], client_id="b", lat=10.78, lon=106.70, address="203.0.113.77")
    assert hanoi["verdict"] == saigon["verdict"] == "genuine"


def test_revoked_key_makes_codes_suspect(client, batch, registry, world, session):
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    session.commit()
    body = _verify(client, batch["units"][0])
    assert body["verdict"] == "suspect" and _codes(body) == ["KEY_REVOKED"]


def test_digital_link_route_answers_html_json_and_linkset(client, batch):
    path = batch["units"][0][len(BASE_URL):]
    html = client.get(path, headers={"Accept": "text/html"})
    assert html.status_code == 200 and b'data-verdict="genuine"' in html.data
    as_json = client.get(path, headers={"Accept": "application/json"}).get_json()
    assert as_json["verdict"] == "genuine"
    linkset = client.get(path, headers={"Accept": "application/linkset+json"})
    assert linkset.mimetype == "application/linkset+json"
    links = linkset.get_json()["linkset"][0]
    assert links["anchor"].endswith(path.split("?")[0]) and "https://gs1.org/voc/pip" in links


def test_head_requests_and_linkset_reads_are_not_counted_as_checks(client, batch):
    """Link checkers and chat previews send HEAD, a GS1 resolver reads the linkset: none is a
    shopper checking goods. Each had added to "verified N times", and, from as many user agents,
    to the clients the clone check counts."""
    unit = batch["units"][2]
    path = unit[len(BASE_URL):]
    for i in range(3):
        assert client.head(path, environ_base={"REMOTE_ADDR": f"203.0.{i}.9"}).status_code == 200
        assert client.head("/api/v1/verify", query_string={"code": unit, "client_id": f"checker-{i}"}).status_code == 200
        linkset = client.get(path, headers={"Accept": "application/linkset+json"},
                             environ_base={"REMOTE_ADDR": f"198.51.{i}.9"})
        assert linkset.mimetype == "application/linkset+json"
    shopper = _verify(client, unit, client_id="shopper")
    assert (shopper["scans"]["count"], shopper["scans"]["clients"]) == (1, 1)
    again = client.get(path, headers={"Accept": "application/json"}, environ_base={"REMOTE_ADDR": "192.0.2.4"})
    assert again.get_json()["scans"]["count"] == 2  # a GET of the JSON is a check, as the page is


def test_the_digital_links_data_forms_are_not_cached_and_vary_with_accept(client, batch):
    """The JSON carries live counts and one address has three forms: a cache between must neither
    keep one nor serve it for another (the HTML form had these headers, the others none)."""
    path = batch["batch_url"][len(BASE_URL):]
    for accept in ("application/json", "application/linkset+json", "text/html"):
        response = client.get(path, headers={"Accept": accept, "Origin": "https://shop.example"})
        # the page: the shopper's browser alone may keep it, for Back, and asks again otherwise
        assert response.headers["Cache-Control"] == ("private, no-cache" if accept == "text/html" else "no-store"), accept
        assert "Accept" in [v.strip() for v in response.headers["Vary"].split(",")], accept
    data = client.get(path, headers={"Accept": "application/json", "Origin": "https://shop.example"})
    assert data.headers["Access-Control-Allow-Origin"] == "*"


def test_digital_link_with_encoded_lot(client, registry, world, session):
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    url = registry.batch_url(registry.register_batch(actor, batch_data(lot="A/B%1")))
    session.commit()
    assert "/10/A%2FB%251" in url
    assert client.get(url[len(BASE_URL):], headers={"Accept": "application/json"}).get_json()["verdict"] == "genuine"


# -- photos ---------------------------------------------------------------------------------
def _label_png(url: str) -> bytes:
    return render_png(LabelData(url=url, gtin=GTIN, lot="LOT-1", serial=None, expiry=None, product_name="Cà phê"))


def _jpeg(png: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def test_photo_with_a_signed_code_and_a_plain_barcode(client, batch):
    import zxingcpp

    label = Image.open(io.BytesIO(_label_png(batch["units"][0]))).convert("RGB")
    ean = zxingcpp.create_barcode(GTIN[1:], zxingcpp.BarcodeFormat.EAN13).to_image(scale=4)
    ean = Image.fromarray(__import__("numpy").asarray(ean)).convert("RGB")
    canvas = Image.new("RGB", (label.width + ean.width + 80, max(label.height, ean.height) + 80), "white")
    canvas.paste(label, (20, 20))
    canvas.paste(ean, (label.width + 60, 40))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    r = client.post("/api/v1/verify/image", data={"image": (io.BytesIO(out.getvalue()), "p.jpg"), "client_id": "x"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    verdicts = sorted(c["verdict"] for c in body["codes"])
    assert verdicts == ["genuine", "unverifiable"]
    assert body["verdict"] == "genuine"  # the signed code decides over the plain barcode


def test_photo_without_a_code_is_unreadable(client):
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 180, 160)).save(out, "PNG")
    body = client.post("/api/v1/verify/image", data={"image": (io.BytesIO(out.getvalue()), "blank.png")}).get_json()
    assert body["verdict"] == "unreadable" and body["codes"] == [] and body["reasons"][0]["code"] == "NO_CODE_FOUND"


def _bomb_png(width=30000, height=30000) -> bytes:
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("payload,status,code", [
    (b"%PDF-1.4 not an image at all", 415, "UNSUPPORTED_MEDIA_TYPE"),
    (b"just some text\n", 415, "UNSUPPORTED_MEDIA_TYPE"),
    (_bomb_png(), 422, "IMAGE_TOO_LARGE"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40, 422, "IMAGE_UNDECODABLE"),
    (b"", 400, "IMAGE_EMPTY"),
])
def test_bad_uploads_get_clear_errors_and_the_service_keeps_serving(client, batch, payload, status, code):
    r = client.post("/api/v1/verify/image", data={"image": (io.BytesIO(payload), "photo.jpg")},
                    content_type="multipart/form-data")
    assert r.status_code == status and r.get_json()["error"]["code"] == code
    assert _verify(client, batch["units"][0])["verdict"] == "genuine"


def test_oversized_upload_is_413(client):
    big = b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024 + 10)
    r = client.post("/api/v1/verify/image", data={"image": (io.BytesIO(big), "big.jpg")})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_missing_image_field_is_400(client):
    r = client.post("/api/v1/verify/image", data={"client_id": "x"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "IMAGE_MISSING"


def test_expiry_is_judged_on_the_date_in_vietnam():
    """Expiry dates are local dates: the verifier's 'today' is Vietnam's (UTC+7), as the inspector's
    phone sees it, not the server's UTC date (they disagreed from 00:00 to 07:00 in Vietnam)."""
    import inspect
    from datetime import datetime, timezone

    from verification.localtime import vietnam_date
    from verification.verdicts import Verifier

    assert vietnam_date(datetime(2026, 12, 5, 16, 59, 59, tzinfo=timezone.utc)) == date(2026, 12, 5)
    assert vietnam_date(datetime(2026, 12, 5, 17, 0, tzinfo=timezone.utc)) == date(2026, 12, 6)
    assert vietnam_date(datetime(2026, 12, 5, 17, 0)) == date(2026, 12, 6)  # naive: UTC
    assert inspect.signature(Verifier).parameters["today"].default is vietnam_date


# -- offline -----------------------------------------------------------------------------------
def test_offline_cli_checks_signatures_and_says_what_it_cannot_know(runner, batch, tmp_path, registry, world,
                                                                    session):
    trust = tmp_path / "trust.json"
    assert runner.invoke(args=["trust-list", "-o", str(trust)]).exit_code == 0
    registry.recall(batch["actor"], GTIN, "LOT-1", reason="after the list")  # unknowable offline
    session.commit()
    out = runner.invoke(args=["verify", batch["units"][0], "--json", "--offline", "--trust-list", str(trust)])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert body["verdict"] == "genuine" and body["offline"] is True
    assert {"OFFLINE_NO_RECALLS", "OFFLINE_NO_CLONES"} <= {n["code"] for n in body["notes"]}
    fake = runner.invoke(args=["verify", _swap_signature_char(batch["units"][0]), "--json", "--offline",
                               "--trust-list", str(trust)])
    assert json.loads(fake.output)["verdict"] == "counterfeit"
    doc = json.loads(trust.read_text())
    doc["producers"][0]["keys"][0]["status"] = "active-forever"
    trust.write_text(json.dumps(doc))
    refused = runner.invoke(args=["verify", batch["units"][0], "--offline", "--trust-list", str(trust)])
    assert refused.exit_code != 0 and "signature does not verify" in refused.output


def test_offline_knows_the_recalls_made_before_the_list(runner, batch, tmp_path, registry, session, client):
    """An inspector with no network must not clear recalled goods: the trust list carries every
    recalled batch (signed with the rest), and only later recalls are unknown offline."""
    registry.recall(batch["actor"], GTIN, "LOT-1", reason="Nhiễm khuẩn")
    session.commit()
    listed = client.get("/api/v1/trust-list").get_json()
    assert [(r["gtin"], r["lot"], r["reason"]) for r in listed["recalls"]] == [(GTIN, "LOT-1", "Nhiễm khuẩn")]
    trust = tmp_path / "trust.json"
    assert runner.invoke(args=["trust-list", "-o", str(trust)]).exit_code == 0
    body = json.loads(runner.invoke(args=["verify", batch["units"][0], "--json", "--offline", "--trust-list",
                                          str(trust)]).output)
    assert body["verdict"] == "recalled" and _codes(body) == ["BATCH_RECALLED"]
    assert body["reasons"][0]["detail"] == "Nhiễm khuẩn"
    assert {"OFFLINE_NO_RECALLS", "OFFLINE_NO_CLONES"} <= {n["code"] for n in body["notes"]}
    doc = json.loads(trust.read_text())
    doc["recalls"] = []  # a recall taken out of a signed list: the list is refused
    trust.write_text(json.dumps(doc))
    hidden = runner.invoke(args=["verify", batch["units"][0], "--offline", "--trust-list", str(trust)])
    assert hidden.exit_code != 0 and "signature does not verify" in hidden.output


def test_a_trust_list_without_recalls_still_loads(registry, session, world):
    """Lists signed before they carried recalls: read as knowing none."""
    from keys.signing import sign
    from verification.offline import TrustListLookup

    body = registry.trust_list()
    body.pop("sig")
    body.pop("recalls")
    lookup = TrustListLookup.from_document(sign(body, registry.authority))
    assert lookup.recall_reason(GTIN, "LOT-1") is None and lookup.key(world.kid) is not None


def test_offline_knows_revocations_in_the_list(runner, batch, tmp_path, registry, world, session):
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    session.commit()
    trust = tmp_path / "trust.json"
    runner.invoke(args=["trust-list", "-o", str(trust)])
    body = json.loads(runner.invoke(args=["verify", batch["units"][0], "--json", "--offline", "--trust-list",
                                          str(trust)]).output)
    assert body["verdict"] == "suspect" and _codes(body) == ["KEY_REVOKED"]


def test_offline_a_key_certified_after_the_list_is_unverifiable_not_counterfeit(runner, client, batch, tmp_path,
                                                                                 registry, world, session):
    """A trust list predates every key certified after it (a new producer, a key rotation): offline
    such a key is unknown, not forged. The goods are 'unverifiable' with the list's time and the advice
    to refresh it; online the same code is genuine. It had answered 'counterfeit KEY_UNKNOWN'."""
    trust = tmp_path / "trust.json"
    assert runner.invoke(args=["trust-list", "-o", str(trust)]).exit_code == 0
    issued_at = json.loads(trust.read_text())["issued_at"]
    rotated = registry.certify_key(SYSTEM, world.producer_id)
    code = build_url(BASE_URL, gtin=GTIN, lot="LOT-1",
                     s=sign_code(registry.keystore.load(rotated.kid), gtin=GTIN, lot="LOT-1"))
    session.commit()
    assert _verify(client, code)["verdict"] == "genuine"
    out = runner.invoke(args=["verify", code, "--json", "--offline", "--trust-list", str(trust)])
    body = json.loads(out.output)
    assert body["verdict"] == "unverifiable" and _codes(body) == ["UNSIGNED_CODE"], body
    detail = body["reasons"][0]["detail"]
    assert rotated.kid in detail and issued_at in detail and "refresh" in detail
    assert body["reasons"][0]["message"]["en"].startswith("Checked offline: the key that signed this code is not in")
    assert "danh sách tin cậy" in body["reasons"][0]["message"]["vi"]
    text = runner.invoke(args=["verify", code, "--offline", "--trust-list", str(trust)]).output
    assert "key revocations" in text.splitlines()[-1]  # the closing note: what a list cannot know
    # A stranger's key is no more known offline than a new one: unverifiable too, never genuine.
    stranger = build_url(BASE_URL, gtin=GTIN, lot="LOT-1", s=sign_code(Signer.generate(), gtin=GTIN, lot="LOT-1"))
    out = runner.invoke(args=["verify", stranger, "--json", "--offline", "--trust-list", str(trust)])
    assert json.loads(out.output)["verdict"] == "unverifiable"
    assert _verify(client, stranger)["verdict"] == "counterfeit"  # online the registry knows every key


def test_cli_verifies_a_photo_online(runner, batch, tmp_path):
    photo = tmp_path / "label.jpg"
    photo.write_bytes(_jpeg(_label_png(batch["units"][0])))
    out = runner.invoke(args=["verify", str(photo), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["codes"][0]["verdict"] == "genuine"
    human = runner.invoke(args=["verify", str(photo)])
    assert "overall: genuine" in human.output


def test_a_code_that_leads_to_another_website_says_so_without_changing_the_verdict(client, batch):
    """A counterfeiter prints a genuine code's text under a lookalike site, which tells every phone
    camera "genuine" whatever it is stuck on. The host is not signed, so the code still verifies
    here; the answer says where the code leads, so the shopper trusts this verdict, not that site."""
    genuine = batch["units"][0]
    assert genuine.startswith(BASE_URL + "/")
    own = _verify(client, genuine)
    assert own["verdict"] == "genuine" and own["notes"] == []
    for elsewhere, host in ((genuine.replace(BASE_URL, "https://xac-thuc-hang.vn"), "xac-thuc-hang.vn"),
                            (genuine.replace(BASE_URL, "http://verify.example.vn:8080"), "verify.example.vn:8080")):
        body = _verify(client, elsewhere)
        assert body["verdict"] == "genuine" and body["reasons"] == []
        assert [(n["code"], n["detail"]) for n in body["notes"]] == [("OTHER_HOST", host)]
        assert body["notes"][0]["message"]["en"].startswith("This code leads to another website")
        assert body["notes"][0]["message"]["vi"].startswith("Mã này dẫn tới một trang web khác")
    # the scheme, its default port and capitals do not make another host
    for same in (genuine.replace("https://", "http://"), genuine.replace(BASE_URL, BASE_URL + ":443"),
                 genuine.replace(BASE_URL, BASE_URL.upper())):
        assert "OTHER_HOST" not in [n["code"] for n in _verify(client, same)["notes"]], same
    # a forged code under a lookalike site: counterfeit, and where it leads
    forged = _verify(client, _swap_signature_char(genuine).replace(BASE_URL, "https://xac-thuc-hang.vn"))
    assert forged["verdict"] == "counterfeit" and [n["code"] for n in forged["notes"]] == ["OTHER_HOST"]
    # element strings name no website
    assert _verify(client, f"(01){GTIN}(10)LOT-1")["notes"] == []


def test_the_verdict_page_warns_of_the_website_a_code_leads_to(client, batch):
    genuine = batch["units"][1]
    page = client.get("/check", query_string={"code": genuine.replace(BASE_URL, "https://xac-thuc-hang.vn")},
                      headers={"Accept-Language": "vi"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-verdict="genuine"' in html
    assert 'id="other-host"' in html and "Trang web trong mã: xac-thuc-hang.vn" in html
    plain = client.get("/check", query_string={"code": genuine}, headers={"Accept-Language": "vi"})
    assert plain.status_code == 200 and 'id="other-host"' not in plain.get_data(as_text=True)
