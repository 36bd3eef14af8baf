"""What text may come in (app.text_input, app.responses.OrjsonProvider): no NUL (U+0000) in a
JSON body, a form, a path or a query, refused with 422 ``NUL_CHARACTER`` naming the field and
nothing stored (PostgreSQL had answered 500, SQLite had stored it and signed it into records), and
no JSON body that is not UTF-8 (webargs had taken it for an empty body: 200, the body ignored)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from registry.models import AuditEvent, Batch, Inspection, Producer, Report

from tests.app.portal_support import client_login, csrf_of, make_user
from tests.conftest import GTIN, batch_data


def _count(session, model) -> int:
    session.rollback()  # a fresh transaction: see what the request committed
    try:
        return session.scalar(select(func.count()).select_from(model))
    finally:
        session.rollback()  # end the read: SQLite's writer would wait for it


def _refused(response, field: str | None) -> dict:
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["code"] == "NUL_CHARACTER" and "NUL" in error["message"], error
    assert error.get("field") == field, error
    return error


# -- JSON bodies -------------------------------------------------------------------------------

def test_a_nul_in_a_json_body_is_refused_naming_its_field_and_nothing_is_stored(client, session, world):
    producer, authority = world.auth("producer"), world.auth("authority")
    batches, producers, events = _count(session, Batch), _count(session, Producer), _count(session, AuditEvent)
    body = batch_data(lot="NUL-1", product={"name": "a\u0000b"})
    _refused(client.post("/api/v1/batches", json=body, headers=producer), "product.name")
    body = batch_data(lot="NUL-2", certifications=[{"scheme": "VietGAP", "id": "VG\u0000"}])
    _refused(client.post("/api/v1/batches", json=body, headers=producer), "certifications.0.id")
    _refused(client.post("/api/v1/batches", json={**batch_data(lot="NUL-3"), "x\u0000": 1}, headers=producer),
             "x\\u0000")
    _refused(client.post("/api/v1/producers", json={"name": "Trà\u0000", "tax_code": "0399999999",
                                                    "gs1_prefixes": ["893600009"], "country": "VN"},
                         headers=authority), "name")
    _refused(client.post("/api/v1/tokens", json={"role": "producer", "label": "ci\u0000"}, headers=producer), "label")
    _refused(client.post("/api/v1/inspections", json={"place": "Chợ\u0000"}, headers=world.auth("inspector")),
             "place")
    assert client.get(f"/api/v1/batches/{GTIN}/NUL-1").status_code == 404
    assert (_count(session, Batch), _count(session, Producer), _count(session, Inspection)) == (batches, producers, 0)
    assert _count(session, AuditEvent) == events  # no token, no inspection made either


def test_a_nul_in_a_recall_reason_leaves_the_batch_active(client, session, world):
    producer = world.auth("producer")
    assert client.post("/api/v1/batches", json=batch_data(), headers=producer).status_code == 201
    _refused(client.post(f"/api/v1/batches/{GTIN}/LOT-1/recall", json={"reason": "mould\u0000"}, headers=producer),
             "reason")
    assert client.get(f"/api/v1/batches/{GTIN}/LOT-1").get_json()["status"] == "active"


def test_an_escaped_backslash_before_u0000_is_no_nul(client, world):
    r = client.post("/api/v1/inspections", data='{"place": "C:\\\\u0000"}', content_type="application/json",
                    headers=world.auth("inspector"))
    assert r.status_code == 201 and r.get_json()["place"] == "C:\\u0000"


# -- forms, paths and queries ------------------------------------------------------------------

def test_a_nul_in_a_report_form_field_is_refused_and_nothing_is_stored(client, session):
    data = {"code": GTIN, "where_kind": "shop", "where_text": "a\x00b", "seller": "Bà Tư"}
    _refused(client.post("/api/v1/reports", data=data, content_type="multipart/form-data"), "where_text")
    assert _count(session, Report) == 0


def test_a_form_part_without_a_name_is_ignored_not_a_500(client, session):
    """A multipart part with no ``name`` (no browser sends one; found by fuzzing the API from its
    OpenAPI document) had failed the NUL check with a TypeError: 500. It carries no field, so it
    is left out, and the rest of the form is read as usual."""
    body = ("--b\r\nContent-Disposition: form-data\r\n\r\nstray\r\n"
            "--b\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\n" + GTIN + "\r\n"
            "--b\r\nContent-Disposition: form-data; name=\"where_kind\"\r\n\r\nshop\r\n"
            "--b\r\nContent-Disposition: form-data; name=\"where_text\"\r\n\r\nChợ Bến Thành\r\n--b--\r\n")
    answer = client.post("/api/v1/reports", data=body.encode(), content_type="multipart/form-data; boundary=b")
    assert answer.status_code == 201, answer.get_data(as_text=True)[:300]
    assert _count(session, Report) == 1


@pytest.mark.parametrize("path,field", [
    (f"/api/v1/batches/{GTIN}/CF%00", "lot"),  # no token needed: anyone reads a batch
    ("/api/v1/audit-events?actor=%00", "actor"),
    ("/api/v1/cases/VN%00", "case_number"),
    ("/api/v1/producers/prd%00/batches", "producer_id"),
    ("/api/v1/warnings?q=tr%00", "q"),
])
def test_a_nul_in_a_path_or_a_query_is_refused(client, world, path, field):
    _refused(client.get(path, headers=world.auth("authority")), field)


def test_a_nul_in_a_username_to_unlock_is_refused(client, world):
    _refused(client.post("/api/v1/users/a%00/unlock", headers=world.auth("authority")), "username")


# -- pages and portals -------------------------------------------------------------------------

def test_the_report_form_marks_the_field_with_a_nul_and_keeps_the_rest(client, session):
    html = client.get("/report").get_data(as_text=True)
    data = {"csrf_token": csrf_of(html), "code": GTIN, "where_kind": "market", "where_text": "Chợ\x00 Lớn",
            "seller": "Bà Tư", "description": "Mùi lạ"}
    response = client.post("/report", data=data, content_type="multipart/form-data", headers={"Accept": "text/html"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert re.search(r'<p class="field-error" id="where_text-error">Nội dung có ký tự NUL', page), page
    assert "Bà Tư" in page and "Mùi lạ" in page and "Chợ Lớn" in page and "\x00" not in page
    assert _count(session, Report) == 0


def test_the_report_form_with_a_nul_in_its_address_and_in_a_field_keeps_the_rest(client, session):
    """The address's NUL is refused first; reading the form again to keep what was typed met the
    field's NUL as well and had answered 500."""
    html = client.get("/report").get_data(as_text=True)
    data = {"csrf_token": csrf_of(html), "code": GTIN, "where_kind": "market", "where_text": "Chợ\x00 Lớn",
            "seller": "Bà Tư"}
    response = client.post("/report?src=%00", data=data, content_type="multipart/form-data",
                           headers={"Accept": "text/html"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and response.mimetype == "text/html", page[:300]
    assert "Nội dung có ký tự NUL" in page
    assert "Bà Tư" in page and "Chợ Lớn" in page and "\x00" not in page
    assert _count(session, Report) == 0


def test_a_page_address_with_a_nul_is_an_error_page(client):
    response = client.get("/warnings?q=tr%00", headers={"Accept": "text/html", "Accept-Language": "en"})
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert "This holds a NUL character, which no text may hold." in response.get_data(as_text=True)


def test_the_portal_batch_form_refuses_a_nul_on_its_problem_page(client, session, world):
    make_user(session, "producer1", "producer", world.producer_id)
    client_login(client, "producer1")
    token = csrf_of(client.get("/portal/producer/batches/new").get_data(as_text=True))
    response = client.post("/portal/producer/batches/new", data={
        "csrf_token": token, "gtin": GTIN, "lot": "L1", "product.name": "Trà\x00", "facility.name": "Xưởng",
        "production_date": "2026-01-01"})
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert "Nội dung có ký tự NUL" in response.get_data(as_text=True)
    assert _count(session, Batch) == 0


# -- the command line --------------------------------------------------------------------------

def test_the_cli_refuses_a_nul_in_a_batch_file(runner, session, world, tmp_path):
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch_data(product={"name": "a\u0000b"})), encoding="utf-8")  # had been a traceback
    assert "\\u0000" in path.read_text(encoding="utf-8")
    for args in (["batch", "register", world.producer_id, str(path)], ["import-batches", world.producer_id, str(path)]):
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
        assert "Traceback" not in result.output
        assert re.search(r"^Error: NUL_CHARACTER: .*product\.name holds a NUL character", result.output, re.M), \
            result.output
    assert _count(session, Batch) == 0


# -- JSON that is not UTF-8 --------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=latin-1"])
def test_a_json_body_that_is_not_utf8_is_malformed_not_empty(client, world, content_type):
    authority = world.auth("authority")
    body = b'{"compromised_at": "2026-01-01T00:00:00Z", "note": "caf\xe9"}'
    r = client.post(f"/api/v1/keys/{world.kid}/revoke", data=body, content_type=content_type, headers=authority)
    assert r.status_code == 400, r.get_json()
    error = r.get_json()["error"]
    assert error["code"] == "MALFORMED_JSON" and "not UTF-8 JSON" in error["message"], error
    assert "0xe9" in error["message"]
    keys = client.get(f"/api/v1/producers/{world.producer_id}/keys", headers=authority).get_json()
    assert [k["status"] for k in keys["items"] if k["kid"] == world.kid] == ["active"], keys

    own_key = '{"public_key": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}'.encode() + b"\xff"
    r = client.post(f"/api/v1/producers/{world.producer_id}/keys", data=own_key, content_type=content_type,
                    headers=authority)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "MALFORMED_JSON", r.get_json()
    keys = client.get(f"/api/v1/producers/{world.producer_id}/keys", headers=authority).get_json()
    assert [k["kid"] for k in keys["items"]] == [world.kid]  # no custodial key made instead


def test_an_empty_body_is_still_an_empty_body(client, world):
    r = client.post(f"/api/v1/producers/{world.producer_id}/keys", headers=world.auth("authority"))
    assert r.status_code == 201, r.get_json()
