"""The registry API end to end, checked by an outside client that knows only the wire formats."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from datetime import date, datetime, timezone

import pytest
from cryptography.exceptions import InvalidSignature

from keys.encoding import b64url_encode
from keys.signing import Signer
from registry.services import SYSTEM

from tests.app import outside_client as oc
from tests.conftest import GTIN, batch_data


def _register(client, world, **kw):
    return client.post("/api/v1/batches", json=batch_data(**kw), headers=world.auth("producer"))


def test_outside_client_verifies_everything(client, world):
    first_cp = client.get("/api/v1/log/checkpoint").get_json()
    created = _register(client, world)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    trust = client.get("/api/v1/trust-list").get_json()
    authority = trust["authority"]["public_key"]
    oc.check_signed(trust, authority)
    # the certificate under the authority key, fetched from the log
    key = trust["producers"][0]["keys"][0]
    cert = None
    for index in range(body["log"]["index"]):
        leaf = client.get(f"/api/v1/log/inclusion?index={index}").get_json()["leaf"]
        if leaf["t"] == "producer-key" and leaf["kid"] == key["kid"]:
            cert = leaf
    assert cert is not None
    oc.check_signed(cert, authority)
    assert cert["public_key"] == key["public_key"] and cert["gs1_prefixes"] == ["893600001"]
    # the origin record under the producer key
    oc.check_signed(body["record"], cert["public_key"])
    # the batch code and every unit code
    oc.check_code_url(body["url"], cert["public_key"])
    serials = client.post(f"/api/v1/batches/{GTIN}/LOT-1/serials", json={"count": 20},
                          headers=world.auth("producer")).get_json()["serials"]
    for item in serials:
        payload = oc.check_code_url(item["url"], cert["public_key"])
        assert payload["serial"] == item["serial"]
    # inclusion of the record against a signed checkpoint
    view = client.get(f"/api/v1/batches/{GTIN}/LOT-1").get_json()
    checkpoint = view["log"]["checkpoint"]
    oc.check_signed(checkpoint, authority)
    oc.check_inclusion(view["record"], view["log"]["index"], checkpoint["size"], view["log"]["path"],
                       checkpoint["root"])
    # consistency between the checkpoint before and after
    proof = client.get(f"/api/v1/log/consistency?first={first_cp['size']}&second={checkpoint['size']}").get_json()
    oc.check_consistency(first_cp["size"], checkpoint["size"], first_cp["root"], checkpoint["root"], proof["path"])
    # and a forged record fails the outside check
    forged = dict(body["record"], lot="LOT-2")
    with pytest.raises(InvalidSignature):
        oc.check_signed(forged, cert["public_key"])


def test_a_batch_is_named_by_its_gtin_as_printed_and_a_malformed_gtin_is_said_to_be_one(client, world):
    """The GTIN in a batch's path may be the 13 digits printed under the barcode; one that is not a
    GTIN at all is refused as such (422), not answered as an unregistered batch (404)."""
    assert _register(client, world).status_code == 201
    gtin13 = GTIN.lstrip("0")
    assert len(gtin13) == 13
    assert client.get(f"/api/v1/batches/{gtin13}/LOT-1").get_json() == client.get(f"/api/v1/batches/{GTIN}/LOT-1").get_json()
    for gtin, code in (("not-a-gtin", "BAD_GTIN"), ("08936000100", "BAD_GTIN"),
                       (GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10), "BAD_CHECK_DIGIT")):
        r = client.get(f"/api/v1/batches/{gtin}/LOT-1")
        assert r.status_code == 422 and r.get_json()["error"]["code"] == code, (gtin, r.get_json())
        r = client.post(f"/api/v1/batches/{gtin}/LOT-1/recall", json={"reason": "x"}, headers=world.auth("producer"))
        assert r.status_code == 422 and r.get_json()["error"]["code"] == code, (gtin, r.get_json())
    assert client.get(f"/api/v1/batches/{GTIN}/NO-SUCH-LOT").status_code == 404
    recalled = client.post(f"/api/v1/batches/{gtin13}/LOT-1/recall", json={"reason": "mislabelled"},
                           headers=world.auth("producer"))
    assert recalled.status_code == 200 and recalled.get_json()["gtin"] == GTIN
    assert client.get(f"/api/v1/batches/{GTIN}/LOT-1").get_json()["status"] == "recalled"


def test_no_token_is_401_and_wrong_role_is_403(client, world):
    assert client.post("/api/v1/batches", json=batch_data()).status_code == 401
    bad = client.post("/api/v1/batches", json=batch_data(), headers={"Authorization": "Bearer pov_nope"})
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "TOKEN_INVALID"
    for role in ("inspector", "partner"):
        r = client.post("/api/v1/batches", json=batch_data(), headers=world.auth(role))
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "ROLE_FORBIDDEN"
    r = client.post("/api/v1/producers", json={"name": "x", "tax_code": "1", "gs1_prefixes": ["8936"],
                                               "country": "VN"}, headers=world.auth("producer"))
    assert r.status_code == 403


def test_a_producer_naming_another_producer_for_its_batch_is_403(client, world, registry):
    """producer_id is the authority's to give: a producer's own is accepted, another's refused (it
    had been ignored silently, the batch registered as the sender's)."""
    other = registry.admit_producer(SYSTEM, name="Khác", tax_code="0377777752", gs1_prefixes=["893700009"],
                                    country="VN")
    registry.session.commit()
    refused = _register(client, world, lot="FOR-OTHER", producer_id=other.id)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "NOT_YOUR_PRODUCER"
    assert client.get(f"/api/v1/batches/{GTIN}/FOR-OTHER").status_code == 404
    assert _register(client, world, lot="OWN", producer_id=world.producer_id).status_code == 201


def test_gtin_outside_prefix_is_403(client, world):
    r = _register(client, world, gtin="08937000010017")
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "PREFIX_NOT_LICENSED"


@pytest.mark.parametrize("change,code", [({"gtin": "08936000010012"}, "BAD_CHECK_DIGIT"),
                                         ({"lot": "bad lot with spaces"}, "BAD_LOT"),
                                         ({"lot": "L" * 21}, "BAD_LOT")])
def test_bad_fields_are_422_with_a_clear_message(client, world, change, code):
    r = _register(client, world, **change)
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == code and error["field"] in ("gtin", "lot") and len(error["message"]) > 20


def test_an_expiry_date_is_accepted_only_if_its_code_reads_it_back(client, world):
    """A code carries the expiry date as YYMMDD, read by GS1's sliding century window: 50 years
    ahead is the last date its two digits give back; 9999-12-31 had been registered and every
    unit then verified as expired (1999-12-31) with a data mismatch."""
    far = _register(client, world, lot="FAR", expiry_date="9999-12-31")
    assert far.status_code == 422
    assert (far.get_json()["error"]["code"], far.get_json()["error"]["field"]) == ("DATE_OUT_OF_RANGE", "expiry_date")
    last = date(date.today().year + 50, 12, 31)
    ok = _register(client, world, lot="LAST", expiry_date=last.isoformat())
    assert ok.status_code == 201
    checked = client.get("/api/v1/verify", query_string={"code": ok.get_json()["url"]}).get_json()
    assert checked["verdict"] == "genuine" and checked["code"]["expiry"] == last.isoformat()


def test_several_bad_fields_are_all_listed(client, world):
    r = _register(client, world, gtin="08936000010012", lot="L" * 21)
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert (error["code"], error["field"]) == ("BAD_CHECK_DIGIT", "gtin")  # the first, as for one error
    assert [(p["field"], p["code"]) for p in error["problems"]] == [("gtin", "BAD_CHECK_DIGIT"), ("lot", "BAD_LOT")]
    assert all(len(p["message"]) > 20 for p in error["problems"])


def test_schema_violations_are_422_and_malformed_json_400(client, world):
    r = client.post("/api/v1/batches", json={"gtin": GTIN}, headers=world.auth("producer"))
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "VALIDATION_FAILED"
    r = client.post("/api/v1/batches", data="{not json", content_type="application/json",
                    headers=world.auth("producer"))
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "MALFORMED_JSON"
    r = client.post(f"/api/v1/batches/{GTIN}/LOT-1/serials", json={"count": "ten"}, headers=world.auth("producer"))
    assert r.status_code == 422


def test_duplicate_is_409(client, world):
    assert _register(client, world).status_code == 201
    r = _register(client, world)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "BATCH_EXISTS"


def test_sixteen_racing_registrations_one_wins_and_log_grows_by_one(app, live_server, world):
    import json
    import urllib.request

    before = app.test_client().get("/api/v1/log/checkpoint").get_json()["size"]
    statuses: list[int] = []
    barrier = threading.Barrier(16)

    def race():
        req = urllib.request.Request(f"{live_server}/api/v1/batches", data=json.dumps(batch_data(lot="RACE")).encode(),
                                     headers={**world.auth("producer"), "Content-Type": "application/json"})
        barrier.wait()
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                statuses.append(resp.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)

    threads = [threading.Thread(target=race) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] + [409] * 15
    after = app.test_client().get("/api/v1/log/checkpoint").get_json()["size"]
    assert after == before + 1


def test_missing_things_are_404_json(client):
    r = client.get("/api/v1/batches/08936000010010/NOPE")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "BATCH_UNKNOWN"
    r = client.get("/api/v1/no-such-endpoint")
    assert r.status_code == 404 and "error" in r.get_json()


def test_key_lifecycle_over_http(client, world):
    r = client.post("/api/v1/producers", json={"name": "Trà Tân Cương", "tax_code": "4600123459",
                                               "gs1_prefixes": ["893600002"], "country": "VN"},
                    headers=world.auth("authority"))
    assert r.status_code == 201
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r.get_json()["created_at"])  # the design's wire format
    producer_id = r.get_json()["id"]
    r = client.post(f"/api/v1/producers/{producer_id}/keys", json={}, headers=world.auth("authority"))
    assert r.status_code == 201
    key = r.get_json()
    assert key["custodial"] is True and key["certificate"]["t"] == "producer-key"
    r = client.post(f"/api/v1/keys/{key['kid']}/revoke", json={"compromised_at": "2026-01-02T03:04:05Z"},
                    headers=world.auth("authority"))
    assert r.status_code == 200 and r.get_json()["compromised_at"] == "2026-01-02T03:04:05Z"
    r = client.post(f"/api/v1/producers/{producer_id}/keys", json={"public_key": "too-short"},
                    headers=world.auth("authority"))
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "BAD_PUBLIC_KEY"
    # 32 bytes, but small-order points: no private key behind them, anyone could "sign" with them
    identity = b64url_encode(bytes([1]) + bytes(31))
    for weak in ("A" * 43, identity):
        r = client.post(f"/api/v1/producers/{producer_id}/keys", json={"public_key": weak},
                        headers=world.auth("authority"))
        assert r.status_code == 422 and r.get_json()["error"]["code"] == "BAD_PUBLIC_KEY", weak
    kept = b64url_encode(Signer.generate().public_raw)  # a real key the producer keeps is certified
    r = client.post(f"/api/v1/producers/{producer_id}/keys", json={"public_key": kept},
                    headers=world.auth("authority"))
    assert r.status_code == 201 and r.get_json()["custodial"] is False


def test_a_key_for_no_prefix_is_422_and_an_omitted_list_means_all(client, world, session):
    """``"gs1_prefixes": []`` had certified the key for every prefix of the producer, as if omitted."""
    url = f"/api/v1/producers/{world.producer_id}/keys"
    r = client.post(url, json={"gs1_prefixes": []}, headers=world.auth("authority"))
    assert r.status_code == 422
    assert (r.get_json()["error"]["code"], r.get_json()["error"]["field"]) == ("PREFIX_REQUIRED", "gs1_prefixes")
    keys = client.get(url, headers=world.auth("authority")).get_json()["items"]
    assert [k["kid"] for k in keys] == [world.kid]  # nothing certified
    r = client.post(url, json={}, headers=world.auth("authority"))
    assert r.status_code == 201 and r.get_json()["certificate"]["gs1_prefixes"] == ["893600001"]


@pytest.mark.parametrize("tax_code", ["abc", "123456789", "0312345673-1"])
def test_a_tax_code_that_is_no_vietnamese_tax_code_is_422(client, world, tax_code):
    r = client.post("/api/v1/producers", json={"name": "Trà", "tax_code": tax_code, "gs1_prefixes": ["893600002"],
                                               "country": "VN"}, headers=world.auth("authority"))
    assert r.status_code == 422
    assert (r.get_json()["error"]["code"], r.get_json()["error"]["field"]) == ("BAD_TAX_CODE", "tax_code")


def test_dates_to_come_are_refused_as_such(client, world):
    """A production date or a time of compromise in the future: DATE_IN_FUTURE, not a bad date."""
    later = date.fromordinal(date.today().toordinal() + 5)
    r = _register(client, world, production_date=later.isoformat(), expiry_date=None)
    assert r.status_code == 422
    assert (r.get_json()["error"]["code"], r.get_json()["error"]["field"]) == ("DATE_IN_FUTURE", "production_date")
    r = client.post(f"/api/v1/keys/{world.kid}/revoke", json={"compromised_at": f"{later.isoformat()}T00:00:00Z"},
                    headers=world.auth("authority"))
    assert r.status_code == 422
    assert (r.get_json()["error"]["code"], r.get_json()["error"]["field"]) == ("DATE_IN_FUTURE", "compromised_at")
    keys = client.get(f"/api/v1/producers/{world.producer_id}/keys", headers=world.auth("authority")).get_json()
    assert [k["status"] for k in keys["items"]] == ["active"]


def test_a_presigned_record_with_a_certification_without_its_number_is_422(client, registry, session, world):
    """The API's schema refuses an empty certification number in a form body; a record signed by the
    producer's own key is checked by the registry, which now says the same."""
    from keys.encoding import rfc3339, utcnow
    from keys.signing import sign
    from registry.services import SYSTEM

    own = Signer.generate()
    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    session.commit()
    record = {"t": "origin-record", "gtin": GTIN, "lot": "OWN-1", "kid": own.kid, "producer_id": world.producer_id,
              "product": {"name": "Trà"}, "facility": {"name": "Xưởng"}, "production_date": date.today().isoformat(),
              "certifications": [{"scheme": "VietGAP", "id": ""}], "issued_at": rfc3339(utcnow())}
    r = client.post("/api/v1/batches", json={"record": sign(record, own)}, headers=world.auth("producer"))
    assert r.status_code == 422
    assert (r.get_json()["error"]["code"], r.get_json()["error"]["field"]) == ("FIELD_REQUIRED", "certifications.0.id")


def test_a_producer_keeping_its_own_key_registers_the_unit_codes_it_signed(client, registry, session, world):
    """DESIGN: a producer may keep its own key and submit what it signs. Its records could be
    registered, its serials not: POST .../serials answered KEY_NOT_CUSTODIAL, and the labels and
    codes.csv handed out unsigned codes that verified as unverifiable."""
    from keys.encoding import rfc3339, utcnow
    from keys.signing import sign, sign_code
    from registry.services import SYSTEM

    own = Signer.generate()
    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    session.commit()
    expiry = date(2031, 5, 31)
    record = {"t": "origin-record", "gtin": GTIN, "lot": "OWN-2", "kid": own.kid, "producer_id": world.producer_id,
              "product": {"name": "Trà"}, "facility": {"name": "Xưởng"}, "production_date": date.today().isoformat(),
              "expiry_date": expiry.isoformat(), "certifications": [], "issued_at": rfc3339(utcnow())}
    registered = client.post("/api/v1/batches", json={"record": sign(record, own)}, headers=world.auth("producer"))
    assert registered.status_code == 201, registered.get_json()
    url = f"/api/v1/batches/{GTIN}/OWN-2/serials"
    refused = client.post(url, json={"count": 2}, headers=world.auth("producer"))
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "KEY_NOT_CUSTODIAL")
    label = client.get(f"/api/v1/batches/{GTIN}/OWN-2/labels?format=svg", headers=world.auth("producer"))
    assert label.status_code == 409 and label.get_json()["error"]["code"] == "KEY_NOT_CUSTODIAL"  # not an unsigned code

    codes = [{"serial": serial, "s": sign_code(own, gtin=GTIN, lot="OWN-2", serial=serial, exp="310531")}
             for serial in ("A1", "A2")]
    other = Signer.generate()
    for bad, code, field in (
            ([codes[0], {"serial": "A3", "s": sign_code(own, gtin=GTIN, lot="OWN-2", serial="A3")}],  # no expiry
             "SIGNATURE_INVALID", "codes.1.s"),
            ([{"serial": "A4", "s": sign_code(other, gtin=GTIN, lot="OWN-2", serial="A4", exp="310531")}],
             "KEY_UNKNOWN", None),
            ([codes[0], codes[0]], "SERIAL_REPEATED", "codes.1.serial"),
            ([codes[0], {"serial": "Á1", "s": codes[0]["s"]}], "BAD_SERIAL", "codes.1.serial"),
            ({"count": 1, "codes": codes}, "VALIDATION_FAILED", None)):
        r = client.post(url, json=bad if isinstance(bad, dict) else {"codes": bad}, headers=world.auth("producer"))
        assert r.status_code in (403, 422) and r.get_json()["error"]["code"] == code, r.get_json()
        if field:
            assert r.get_json()["error"]["field"] == field
    done = client.post(url, json={"codes": codes}, headers=world.auth("producer"))
    assert done.status_code == 201, done.get_json()
    urls = [item["url"] for item in done.get_json()["serials"]]
    new = {"serial": "A5", "s": sign_code(own, gtin=GTIN, lot="OWN-2", serial="A5", exp="310531")}
    again = client.post(url, json={"codes": [new, codes[1]]}, headers=world.auth("producer"))
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "SERIAL_EXISTS")
    assert again.get_json()["error"]["field"] == "codes.1.serial"  # which one, among up to 100,000
    assert again.get_json()["error"]["message"] == "the batch already has serial A2"
    for unit in urls:
        verdict = client.get("/api/v1/verify", query_string={"code": unit}).get_json()
        assert verdict["verdict"] == "genuine", verdict["reasons"]
        oc.check_code_url(unit, b64url_encode(own.public_raw))
    forged = urls[0].replace("/21/A1", "/21/A9")  # a serial never registered, under A1's signature
    assert client.get("/api/v1/verify", query_string={"code": forged}).get_json()["verdict"] == "counterfeit"
    listed = client.get(f"/api/v1/batches/{GTIN}/OWN-2/codes.csv", headers=world.auth("producer")).get_data(as_text=True)
    assert all(unit in listed for unit in urls)


def test_the_api_holds_a_records_text_to_the_registrys_lengths_its_document_says_them(
        client, registry, session, world):
    """The lengths the API's schema always had, said by its OpenAPI document, are the registry's
    own now: a body one character over is refused as before, and a record signed by the producer's
    own key, whose inside the schema never saw, is refused by the registry at the same length."""
    from keys.encoding import rfc3339, utcnow
    from keys.signing import sign

    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    said = {f"{part.lower()}.{name}": schemas[part]["properties"][name].get("maxLength")
            for part in ("Product", "Facility", "Certification") for name in schemas[part]["properties"]}
    assert said == {"product.name": 200, "product.brand": 200, "product.category": 200, "facility.name": 200,
                    "facility.address": 500, "facility.gln": None, "facility.country": None,
                    "certification.scheme": 100, "certification.id": 100}
    r = _register(client, world, product={"name": "A" * 201})
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "VALIDATION_FAILED"
    assert _register(client, world, product={"name": "A" * 200}, facility={"name": "F", "address": "a" * 500},
                     certifications=[{"scheme": "s" * 100, "id": "i" * 100}]).status_code == 201

    own = Signer.generate()
    registry.certify_key(SYSTEM, world.producer_id, public_key=b64url_encode(own.public_raw))
    session.commit()
    record = {"t": "origin-record", "gtin": GTIN, "lot": "OWN-1", "kid": own.kid, "producer_id": world.producer_id,
              "product": {"name": "A" * 400_000}, "facility": {"name": "Xưởng"},
              "production_date": date.today().isoformat(), "certifications": [], "issued_at": rfc3339(utcnow())}
    r = client.post("/api/v1/batches", json={"record": sign(record, own)}, headers=world.auth("producer"))
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert (error["code"], error["field"]) == ("TOO_LONG", "product.name") and len(error["message"]) < 100
    assert client.get(f"/api/v1/batches/{GTIN}/OWN-1").status_code == 404


def test_recall_over_http(client, world):
    _register(client, world)
    # a reason that shows nothing (a zero-width space, a direction mark) had been signed into the log
    for invisible in ("\u200b", " \u200b\u200e ", "\u2060"):
        refused = client.post(f"/api/v1/batches/{GTIN}/LOT-1/recall", json={"reason": invisible},
                              headers=world.auth("producer"))
        assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "FIELD_REQUIRED", invisible
    r = client.post(f"/api/v1/batches/{GTIN}/LOT-1/recall", json={"reason": "mislabelled"},
                    headers=world.auth("producer"))
    assert r.status_code == 200 and r.get_json()["record"]["t"] == "recall"
    assert client.get(f"/api/v1/batches/{GTIN}/LOT-1").get_json()["status"] == "recalled"


def test_a_batch_past_its_expiry_is_expired_in_every_answer_that_names_its_status(client, world, registry, session):
    """The verdict said "expired" beside "batch": {"status": "active"}; the batch and the list said
    active, batches.csv expired. One vocabulary now, the verdicts'."""
    from datetime import timedelta

    old = batch_data(lot="OLD-1", production_date=(date.today() - timedelta(days=400)).isoformat(),
                     expiry=date.today() - timedelta(days=3))
    url = registry.batch_url(registry.register_batch(SYSTEM, old, producer_id=world.producer_id))
    registry.register_batch(SYSTEM, batch_data(lot="NEW-1"), producer_id=world.producer_id)
    session.commit()
    verdict = client.get("/api/v1/verify", query_string={"code": url}).get_json()
    assert (verdict["verdict"], verdict["batch"]["status"]) == ("expired", "expired")
    assert client.get(f"/api/v1/batches/{GTIN}/OLD-1").get_json()["status"] == "expired"
    assert client.get(f"/api/v1/batches/{GTIN}/NEW-1").get_json()["status"] == "active"
    listed = client.get(f"/api/v1/producers/{world.producer_id}/batches", headers=world.auth("partner")).get_json()
    assert {b["lot"]: b["status"] for b in listed["items"]} == {"OLD-1": "expired", "NEW-1": "active"}
    exported = client.get("/api/v1/exports/batches.csv", headers=world.auth("partner")).get_data(as_text=True)
    assert ",expired," in next(line for line in exported.splitlines() if ",OLD-1," in line)
    # a recall outranks the date, as in the verdict
    client.post(f"/api/v1/batches/{GTIN}/OLD-1/recall", json={"reason": "mould"}, headers=world.auth("producer"))
    assert client.get(f"/api/v1/batches/{GTIN}/OLD-1").get_json()["status"] == "recalled"


def test_a_listing_says_while_more_follow_where_the_next_page_is(client, world, registry, session):
    """A short page had been the only sign of a listing's end; now a full page that is not the last
    carries Link rel="next" (as the EPCIS export), with the query it was asked with."""
    for lot in ("P1", "P2", "P3"):
        registry.register_batch(SYSTEM, batch_data(lot=lot), producer_id=world.producer_id)
    session.commit()
    url = f"/api/v1/producers/{world.producer_id}/batches"
    seen, query = [], {"limit": "2", "q": "P"}
    while True:
        page = client.get(url, query_string=query, headers=world.auth("partner"))
        assert page.status_code == 200
        seen += [b["lot"] for b in page.get_json()["items"]]
        link = page.headers.get("Link")
        if link is None:
            break
        target = re.fullmatch(r'<(http[^>]+)>; rel="next"', link).group(1)
        assert target.startswith("https://verify.example.vn/api/v1/producers/") and "q=P" in target
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query))
    assert seen == ["P3", "P2", "P1"]  # newest first, each once, and the last page says nothing more
    exact = client.get(url, query_string={"limit": "3"}, headers=world.auth("partner"))
    assert len(exact.get_json()["items"]) == 3 and "Link" not in exact.headers  # a full last page: no next
    warnings = client.get("/api/v1/warnings", query_string={"limit": "1"})
    assert warnings.status_code == 200 and "Link" not in warnings.headers  # none published: nothing follows


def test_a_correction_over_http_checked_by_an_outside_client(client, world):
    """The corrected record is signed by the producer key, logged, and names the log entry of the
    version it replaces by index and hash; the batch's page keeps the old version; verification at
    once shows the correction though the server had cached the batch."""
    created = _register(client, world).get_json()
    serial = client.post(f"/api/v1/batches/{GTIN}/LOT-1/serials", json={"count": 1},
                         headers=world.auth("producer")).get_json()["serials"][0]
    before = client.get("/api/v1/verify", query_string={"code": serial["url"]}).get_json()
    assert before["verdict"] == "genuine" and before["product"]["name"] == "Cà phê rang xay"  # cached now

    fix = {k: v for k, v in batch_data().items() if k not in ("gtin", "lot")}
    fix["product"] = {"name": "Cà phê hạt Robusta", "brand": "Highland"}
    r = client.post(f"/api/v1/batches/{GTIN}/LOT-1/corrections", json={**fix, "reason": "sai tên"},
                    headers=world.auth("producer"))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    record = body["record"]
    assert body["version"] == record["version"] == 2 and record["reason"] == "sai tên"
    trust = client.get("/api/v1/trust-list").get_json()
    oc.check_signed(record, trust["producers"][0]["keys"][0]["public_key"])
    replaced = client.get(f"/api/v1/log/inclusion?index={created['log']['index']}").get_json()["leaf"]
    assert replaced == created["record"]
    assert record["supersedes"] == {"index": created["log"]["index"], "sha256": oc.entry_sha256(replaced)}
    view = client.get(f"/api/v1/batches/{GTIN}/LOT-1").get_json()
    assert view["record"] == record and view["version"] == 2 and view["log"]["index"] == body["log"]["index"]
    assert [(v["version"], v["record"], v["log"]["index"]) for v in view["versions"]] == [
        (1, created["record"], created["log"]["index"])]
    checkpoint = view["log"]["checkpoint"]
    oc.check_inclusion(record, view["log"]["index"], checkpoint["size"], view["log"]["path"], checkpoint["root"])

    after = client.get("/api/v1/verify", query_string={"code": serial["url"]}).get_json()
    assert after["verdict"] == "genuine" and after["product"]["name"] == "Cà phê hạt Robusta"
    assert after["batch"]["version"] == 2 and after["batch"]["corrected_at"] == record["issued_at"]
    assert before["batch"]["version"] == 1 and before["batch"]["corrected_at"] is None


def test_corrections_refused_over_http_say_why(client, world):
    _register(client, world)
    url = f"/api/v1/batches/{GTIN}/LOT-1/corrections"
    fix = {k: v for k, v in batch_data().items() if k not in ("gtin", "lot")}
    r = client.post(url, json=fix, headers=world.auth("producer"))  # no reason: the schema
    assert r.status_code == 422 and "reason" in r.get_json()["error"]["fields"]["json"]
    r = client.post(url, json={**fix, "expiry_date": "2030-01-01", "reason": "x"}, headers=world.auth("producer"))
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "EXPIRY_FIXED"
    r = client.post(url, json={**fix, "reason": "x"}, headers=world.auth("producer"))
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "NOTHING_CHANGED"
    r = client.post(url, json={"record": {"t": "origin-record"}, "reason": "x"}, headers=world.auth("producer"))
    assert r.status_code == 422 and "reason" in r.get_json()["error"]["fields"]["json"]
    r = client.post(f"/api/v1/batches/{GTIN}/NO-LOT/corrections", json={**fix, "quantity": 5, "reason": "x"},
                    headers=world.auth("producer"))
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "BATCH_UNKNOWN"
    r = client.post(url, json={**fix, "quantity": 5, "reason": "x"}, headers=world.auth("inspector"))
    assert r.status_code == 403
    assert client.get(f"/api/v1/batches/{GTIN}/LOT-1").get_json()["version"] == 1  # nothing written


def test_log_parameters_are_checked(client, world):
    _register(client, world)
    assert client.get("/api/v1/log/inclusion?index=99").status_code == 422
    assert client.get("/api/v1/log/inclusion").status_code == 422
    too_far = client.get("/api/v1/log/consistency?first=1&second=99")
    assert too_far.status_code == 422 and too_far.get_json()["error"]["field"] == "second"  # the parameter sent
    assert client.get("/api/v1/log/inclusion?index=0&size=99").get_json()["error"]["field"] == "size"


def test_an_address_or_method_the_api_lacks_is_said_in_its_own_words(client, world):
    """Werkzeug's "If you entered the URL manually please check your spelling" had answered an id
    that no route takes, and a 405 came without the Allow header RFC 9110 asks for."""
    missing = client.delete("/api/v1/tokens/abc", headers=world.auth("producer"))
    assert missing.status_code == 404 and missing.get_json()["error"] == {
        "code": "NOT_FOUND", "message": "no such address: /api/v1/tokens/abc (the API's are listed in "
                                        "/api/v1/openapi.json)"}
    page = client.get("/no/such/page")  # no Accept: JSON, saying no more than the address
    assert page.status_code == 404 and page.get_json()["error"]["message"] == "no such address: /no/such/page"
    wrong = client.delete("/api/v1/verify")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert wrong.get_json()["error"]["message"] == "/api/v1/verify does not take DELETE; it takes GET, HEAD, OPTIONS"


def test_openapi_document_lists_the_contract(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/producers", "/api/v1/batches", "/api/v1/batches/{gtin}/{lot}/serials",
                 "/api/v1/verify", "/api/v1/verify/image", "/api/v1/trust-list", "/api/v1/log/inclusion"):
        assert path in spec["paths"], path
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    # a photo goes as multipart: the document had also offered an urlencoded body, which cannot carry one
    assert list(spec["paths"]["/api/v1/verify/image"]["post"]["requestBody"]["content"]) == ["multipart/form-data"]


def test_the_epcis_export_pages_with_a_next_link(client, world, registry, session):
    """A partner pulls every event page by page, following Link rel="next" (EPCIS 2.0's
    nextPageToken); a token it did not get is a 422."""
    import json
    import re
    from urllib.parse import urlsplit

    from registry.services import Actor, Role

    producer = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p")
    registry.register_batch(producer, batch_data())
    url = next(registry.labels(producer, GTIN, "LOT-1")).url
    session.commit()  # the scan writer needs the write lock (SQLite)
    for n in range(5):
        assert client.get("/api/v1/verify", query_string={"code": url, "client_id": f"c{n}"}).status_code == 200
    client.application.extensions["scan_writer"].flush()
    seen, target, pages = [], "/api/v1/exports/epcis?limit=2&events=scans", 0
    while target:
        r = client.get(target, headers=world.auth("partner"))
        assert r.status_code == 200, r.get_data(as_text=True)
        seen += [e["eventID"] for e in json.loads(r.data)["epcisBody"]["eventList"]]
        pages += 1
        link = r.headers.get("Link")
        if link:
            assert r.headers["GS1-Next-Page-Token"] in link and "limit=2" in link and "events=scans" in link
            parts = urlsplit(re.fullmatch(r'<(.+)>; rel="next"', link).group(1))
            target = f"{parts.path}?{parts.query}"
        else:
            target = None
    assert pages == 3 and len(seen) == len(set(seen)) == 5
    bad = client.get("/api/v1/exports/epcis?nextPageToken=forged", headers=world.auth("partner"))
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "BAD_PAGE_TOKEN"
    r = client.get("/api/v1/exports/epcis?events=registrations", headers=world.auth("partner"))
    registered, = json.loads(r.data)["epcisBody"]["eventList"]
    assert registered["bizStep"] == "commissioning" and registered["ilmd"]["cbvmda:lotNumber"] == "LOT-1"
    everything = json.loads(client.get("/api/v1/exports/epcis", headers=world.auth("partner")).data)
    assert len(everything["epcisBody"]["eventList"]) == 6  # the registration and the 5 scans
    for value in ("commissioning", "scans,recalls", ""):
        bad = client.get(f"/api/v1/exports/epcis?events={value}", headers=world.auth("partner"))
        assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "VALIDATION_FAILED", value
        assert "registrations" in json.dumps(bad.get_json()["error"]), bad.get_json()


def test_numbers_and_nesting_json_or_a_signature_cannot_carry_are_refused_not_500(client, world):
    """NaN, Infinity, integers beyond what RFC 8785 signs exactly and absurd nesting: a clear 4xx,
    and nothing stored that would make a later read fail."""
    producer, inspector = world.auth("producer"), world.auth("inspector")

    def raw(url, text, headers):
        return client.post(url, data=text, content_type="application/json", headers=headers)

    body = json.dumps(batch_data(lot="BIG"))
    assert '"quantity": 100' in body  # what the cases below replace
    for text in (body.replace('"quantity": 100', '"quantity": NaN'), "[" * 100_000 + "]" * 100_000,
                 body.replace('"quantity": 100', '"quantity": Infinity')):
        r = raw("/api/v1/batches", text, producer)
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "MALFORMED_JSON", text[:40]
    for quantity in (2**60, 10**23, 10**12 + 1):
        r = raw("/api/v1/batches", body.replace('"quantity": 100', f'"quantity": {quantity}'), producer)
        assert r.status_code == 422 and r.get_json()["error"]["code"] == "VALIDATION_FAILED", quantity
    assert client.get(f"/api/v1/batches/{GTIN}/BIG", headers=producer).status_code == 404
    # a member named twice: one reader takes the first, another the last (orjson had kept the last,
    # the lot registered being whichever the sender's own code did not show)
    twice = body.replace('"lot": "BIG"', '"lot": "BIG", "lot": "OTHER"')
    r = raw("/api/v1/batches", twice, producer)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "MALFORMED_JSON"
    assert "'lot' is given more than once" in r.get_json()["error"]["message"]
    assert client.get(f"/api/v1/batches/{GTIN}/OTHER", headers=producer).status_code == 404
    # saved by a Windows editor with a byte order mark: said so, not a bare "not valid JSON"
    r = client.post("/api/v1/batches", data=b"\xef\xbb\xbf" + body.encode(), content_type="application/json",
                    headers=producer)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "MALFORMED_JSON"
    assert "byte order mark (EF BB BF)" in r.get_json()["error"]["message"]

    inspection = client.post("/api/v1/inspections", json={"place": "Chợ Lớn"}, headers=inspector).get_json()["id"]
    url = f"/api/v1/inspections/{inspection}/checks"
    made = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    check = {"offline": True, "code": "https://verify.example.vn/01/x", "checked_at": made,
             "result": {"verdict": "genuine", "n": 2**60}}
    r = client.post(url, json=check, headers=inspector)
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "BAD_RESULT"
    r = raw(url, json.dumps(check).replace(str(2**60), "NaN"), inspector)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "MALFORMED_JSON"
    r = client.post(url, data={**{k: str(v) for k, v in check.items() if k != "result"}, "offline": "true",
                               "result": '{"verdict": "genuine", "n": NaN}'}, headers=inspector,
                    content_type="multipart/form-data")
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "VALIDATION_FAILED"
    assert client.get(f"/api/v1/inspections/{inspection}", headers=inspector).status_code == 200
    assert client.get(f"/api/v1/inspections/{inspection}/evidence", headers=inspector).status_code == 200


def test_an_offline_check_sent_again_through_the_api_is_kept_once(client, world):
    """A client that lost the answer sends the same offline check again with its queue_id: one check
    in the inspection (and in its signed evidence), answered both times; a malformed id is refused."""
    inspector = world.auth("inspector")
    inspection = client.post("/api/v1/inspections", json={"place": "Chợ Lớn"}, headers=inspector).get_json()["id"]
    url = f"/api/v1/inspections/{inspection}/checks"
    made = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    check = {"offline": True, "code": "https://verify.example.vn/01/x", "checked_at": made,
             "result": {"verdict": "genuine"}, "queue_id": "q-7f3a"}
    first, again = (client.post(url, json=check, headers=inspector) for _ in range(2))
    assert first.status_code == again.status_code == 201, (first.get_json(), again.get_json())
    assert first.get_json()["id"] == again.get_json()["id"]
    evidence = client.get(f"/api/v1/inspections/{inspection}/evidence", headers=inspector).get_json()
    assert len(evidence["checks"]) == 1
    r = client.post(url, json={**check, "queue_id": "not a queue id!"}, headers=inspector)
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "BAD_CLIENT_ID"


def test_ids_offsets_and_times_beyond_what_the_database_holds_are_4xx(client, world):
    """2^63 in a path or an offset, times UTC cannot hold, a page token out of range: never a 500."""
    authority, inspector = world.auth("authority"), world.auth("inspector")
    assert client.get("/api/v1/inspections/9223372036854775808", headers=inspector).status_code == 404
    assert client.delete("/api/v1/tokens/9223372036854775808", headers=authority).status_code == 404
    for url in ("/api/v1/cases?offset=9223372036854775808", "/api/v1/warnings?offset=9223372036854775808",
                "/api/v1/flagged-serials?offset=1000000001"):
        r = client.get(url, headers=inspector)
        assert r.status_code == 422 and r.get_json()["error"]["code"] == "VALIDATION_FAILED", url
    for query in ("since=0001-01-01T00:00:00%2B14:00", "until=9999-12-31T23:59:59-14:00"):
        r = client.get(f"/api/v1/exports/epcis?{query}", headers=authority)
        assert r.status_code == 422 and r.get_json()["error"]["code"] == "VALIDATION_FAILED", query
    for position in (["0001-01-01T00:00:00+14:00", 1, 1], ["2026-11-23T05:58:59+00:00", 1, 10**20]):
        token = b64url_encode(json.dumps(position).encode())
        r = client.get(f"/api/v1/exports/epcis?nextPageToken={token}", headers=authority)
        assert r.status_code == 422 and r.get_json()["error"]["code"] == "BAD_PAGE_TOKEN", position
    r = client.post(f"/api/v1/keys/{world.kid}/revoke", json={"compromised_at": "0001-01-01T00:00:00+14:00"},
                    headers=authority)
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "VALIDATION_FAILED"
    r = client.post(f"/api/v1/producers/{world.producer_id}/keys", json={"not_after": "9999-12-31T23:59:59-14:00"},
                    headers=authority)
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "VALIDATION_FAILED"
    keys = client.get(f"/api/v1/producers/{world.producer_id}/keys", headers=authority)
    assert keys.status_code == 200 and [k["status"] for k in keys.get_json()["items"]] == ["active"]  # nothing changed


def test_a_json_body_sent_as_another_type_is_415(client, world):
    body = json.dumps(batch_data(lot="PLAIN"))
    r = client.post("/api/v1/batches", data=body, content_type="text/plain", headers=world.auth("producer"))
    assert r.status_code == 415 and r.get_json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "application/json" in r.get_json()["error"]["message"]
    r = client.post("/api/v1/batches", data=body, content_type="application/json", headers=world.auth("producer"))
    assert r.status_code == 201


def test_a_producer_whose_keys_the_authority_revoked_cannot_certify_itself_a_new_one(client, world, session, registry):
    """Revocation cuts a producer off until the authority certifies it again: the producer's own
    rotation had certified a new key at once, for all its prefixes. Nor can a producer widen
    its keys past what the authority certified; the authority still can."""
    from registry.models import ProducerKey
    from registry.services import Role, TokenService

    url, producer, authority = (f"/api/v1/producers/{world.producer_id}/keys/rotate", world.auth("producer"),
                                world.auth("authority"))
    wider = registry.admit_producer(SYSTEM, name="Công ty Hai Mã", tax_code="0322222222",
                                    gs1_prefixes=["893600002", "893600003"], country="VN")
    narrow = registry.certify_key(SYSTEM, wider.id, gs1_prefixes=["893600002"])
    wider_token = TokenService(session).create(role=Role.PRODUCER, producer_id=wider.id)[0]
    session.commit()
    widened = client.post(f"/api/v1/producers/{wider.id}/keys/rotate", json={"gs1_prefixes": ["893600002", "893600003"]},
                          headers={"Authorization": f"Bearer {wider_token}"})
    assert widened.status_code == 403 and widened.get_json()["error"]["code"] == "PREFIX_NOT_LICENSED"
    assert "893600003" in widened.get_json()["error"]["message"]
    same = client.post(f"/api/v1/producers/{wider.id}/keys/rotate", headers={"Authorization": f"Bearer {wider_token}"})
    assert same.status_code == 201 and same.get_json()["gs1_prefixes"] == narrow.gs1_prefixes

    revoked = client.post(f"/api/v1/keys/{world.kid}/revoke", json={}, headers=authority)
    assert revoked.status_code == 200, revoked.get_json()
    refused = client.post(url, headers=producer)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "NO_ACTIVE_KEY"
    session.rollback()
    active = session.query(ProducerKey).filter_by(producer_id=world.producer_id, status="active").count()
    assert active == 0  # nothing certified by the refused rotation
    session.rollback()
    assert client.post(url, headers=authority).status_code == 201  # the authority certifies again


def test_a_key_rotation_takes_the_prefixes_asked_for_and_refuses_what_it_cannot_honour(client, world, session):
    """POST /producers/{id}/keys/rotate: without a body the new key covers its predecessor's prefixes;
    ``gs1_prefixes`` chooses among the producer's; anything else in the body is refused, not ignored."""
    from registry.models import AuditEvent

    url, producer = f"/api/v1/producers/{world.producer_id}/keys/rotate", world.auth("producer")
    first = client.post(url, headers=producer)
    assert first.status_code == 201, first.get_json()
    rotated = first.get_json()
    assert rotated["kid"] != world.kid and rotated["gs1_prefixes"] == ["893600001"] and rotated["status"] == "active"
    second = client.post(url, json={"gs1_prefixes": ["893600001"]}, headers=producer)
    assert second.status_code == 201 and second.get_json()["kid"] not in (world.kid, rotated["kid"])
    events = session.query(AuditEvent).filter(AuditEvent.action == "key.rotate").order_by(AuditEvent.id).all()
    assert [(e.target, e.detail["previous"]) for e in events] == [(rotated["kid"], world.kid),
                                                                (second.get_json()["kid"], rotated["kid"])]
    session.rollback()  # an SQLite read transaction here holds the lock the next requests need
    keys = [k["kid"] for k in client.get(f"/api/v1/producers/{world.producer_id}/keys", headers=producer)
            .get_json()["items"]]
    for body, code, field in (({"gs1_prefixes": []}, "PREFIX_REQUIRED", "gs1_prefixes"),
                              ({"gs1_prefixes": ["8934567"]}, None, "gs1_prefixes"),
                              ({"valid_days": 30}, "VALIDATION_FAILED", "valid_days"),
                              ({"gs1_prefixes": "893600001"}, "VALIDATION_FAILED", "gs1_prefixes")):
        r = client.post(url, json=body, headers=producer)
        error = r.get_json()["error"]
        assert r.status_code == 422 and (code is None or error["code"] == code), (body, error)
        assert field in json.dumps(error), (body, error)
    assert [k["kid"] for k in client.get(f"/api/v1/producers/{world.producer_id}/keys", headers=producer)
            .get_json()["items"]] == keys  # nothing certified by a refused rotation


def test_batches_and_cases_are_found_through_the_api_as_on_the_portal(client, world, registry, session):
    from keys.encoding import utcnow
    from registry.models import Report

    for lot in ("LOT-A%", "LOT-B"):
        assert client.post("/api/v1/batches", json=batch_data(lot=lot), headers=world.auth("producer")).status_code == 201
    session.add(Report(case_number="VN-2026-000777", code="", gtin=GTIN, lot="LOT-B", seller="Shop Hồng",
                       status="new", created_at=utcnow()))
    session.commit()
    url = f"/api/v1/producers/{world.producer_id}/batches"
    found = client.get(url, query_string={"q": "a%"}, headers=world.auth("producer")).get_json()["items"]
    assert [b["lot"] for b in found] == ["LOT-A%"]
    assert client.get(url, query_string={"q": "x" * 101}, headers=world.auth("producer")).status_code == 422
    cases = client.get("/api/v1/cases", query_string={"q": "shop hồng"}, headers=world.auth("inspector")).get_json()
    assert [c["case_number"] for c in cases["items"]] == ["VN-2026-000777"]
    # letters with diacritics in any case too: SQLite's own lower() knew ASCII alone
    for query in ("SHOP HỒNG", "shop hồng", "Shop Hồng"):
        cases = client.get("/api/v1/cases", query_string={"q": query}, headers=world.auth("inspector")).get_json()
        assert [c["case_number"] for c in cases["items"]] == ["VN-2026-000777"], query
    assert client.post("/api/v1/batches", json=batch_data(lot="CD-1", product={"name": "Cà phê Cầu Đất"}),
                       headers=world.auth("producer")).status_code == 201
    for query in ("CẦU ĐẤT", "cầu đất"):
        named = client.get(url, query_string={"q": query}, headers=world.auth("producer")).get_json()["items"]
        assert [b["lot"] for b in named] == ["CD-1"], query
