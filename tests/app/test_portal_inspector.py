"""The inspector portal without a browser: who may open what, the form posts that work without
JavaScript (start, check by code and by photos, offline sync, close, evidence), flagged serials,
and cases worked from new to published."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from registry.models import AuditEvent, Inspection, Publication, Recall, Report, ReportPhoto, ScanEvent, Serial

from tests.app.outside_client import check_signed
from tests.app.portal_support import client_login, csrf_of, make_user, stored_checks
from tests.app.verdict_codes import make_codes

JSON = {"Accept": "application/json"}


def _png(colour: str = "white") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def make_user_fixed(session, world):
    def make(name, role):
        make_user(session, name, role, producer_id=world.producer_id if role == "producer" else None)
    return make


def _login(app, name: str):
    client = app.test_client()
    response = client_login(client, name)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return client


def _token(client, url: str) -> str:
    return csrf_of(client.get(url).get_data(as_text=True))


def _open(client, place: str = "Chợ Bến Thành") -> int:
    token = _token(client, "/portal/inspector/")
    response = client.post("/portal/inspector/inspections", data={"csrf_token": token, "place": place,
                                                                  "lat": "10.7721", "lon": "106.6983"})
    assert response.status_code == 303
    return int(re.search(r"/inspections/(\d+)$", response.headers["Location"]).group(1))


def _inspecting(app):
    """Inspector thanh logged in with an inspection open: the client, its number, its page and the
    page's CSRF token."""
    thanh = _login(app, "thanh")
    number = _open(thanh)
    page_url = f"/portal/inspector/inspections/{number}"
    return thanh, number, page_url, _token(thanh, page_url)


def _begun_at(app, number: int, started_at: datetime) -> None:
    """The inspection as if begun at ``started_at``: checks made offline since then are taken."""
    with app.extensions["session_factory"]() as other:
        other.execute(update(Inspection).where(Inspection.id == number).values(started_at=started_at))
        other.commit()


def _synced(client, number: int, token: str, code: str, at: datetime) -> dict:
    """A check the browser made offline at ``at`` and judged genuine, sent now: the check as stored."""
    answer = client.post(f"/portal/inspector/inspections/{number}/checks", headers={**JSON, "X-CSRFToken": token},
                         json={"offline": True, "code": code, "checked_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "result": {"verdict": "genuine", "reasons": [],
                                          "notes": [{"code": "OFFLINE_NO_RECALLS"}], "offline": True}})
    assert answer.status_code == 201, answer.get_json()
    (check,) = answer.get_json()["checks"]
    return check


@pytest.fixture
def accounts(session, world, make_user_fixed):
    for name, role in (("thanh", "inspector"), ("hoa", "inspector"), ("boss", "authority"), ("farm", "producer"),
                       ("agency", "partner")):
        make_user_fixed(name, role)


# -- roles ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/portal/inspector/", "/portal/inspector/flagged", "/portal/cases"])
def test_pages_are_for_inspectors_and_the_authority(app, accounts, url):
    assert app.test_client().get(url).status_code == 302  # to the login page
    for name, status in (("thanh", 200), ("boss", 200), ("farm", 403), ("agency", 403)):
        assert _login(app, name).get(url).status_code == status, name


@pytest.mark.parametrize("lat, lon", [("91", "106.7"), ("nan", "106.7"), ("10.77", ""), ("", "106.7"),
                                      ("10,77", "106,70")])
def test_an_inspection_starts_without_a_position_that_is_not_one(app, accounts, session, lat, lon):
    """A bad position from the phone is left out, as the page says, and the inspection starts; it had
    stopped the start and kept the bad value for the next try, which failed the same way."""
    thanh = _login(app, "thanh")
    token = _token(thanh, "/portal/inspector/")
    response = thanh.post("/portal/inspector/inspections", data={"csrf_token": token, "place": "Chợ Đà Lạt",
                                                                 "lat": lat, "lon": lon})
    assert response.status_code == 303
    number = int(re.search(r"/inspections/(\d+)$", response.headers["Location"]).group(1))
    page = thanh.get(response.headers["Location"]).get_data(as_text=True)
    assert "Vị trí do điện thoại cung cấp không hợp lệ nên đã được bỏ qua." in page
    inspection = session.get(Inspection, number)
    assert (inspection.place, inspection.lat, inspection.lon) == ("Chợ Đà Lạt", None, None)
    session.close()  # release SQLite for the app's next write
    # A place too long is still refused, and the form comes back without the position's hidden values.
    response = thanh.post("/portal/inspector/inspections", data={"csrf_token": token, "place": "x" * 301,
                                                                 "lat": lat, "lon": lon})
    assert response.status_code == 422 and "300" in response.get_data(as_text=True)


def test_an_inspector_cannot_open_anothers_inspection(app, accounts):
    thanh = _login(app, "thanh")
    number = _open(thanh)
    hoa = _login(app, "hoa")
    assert hoa.get(f"/portal/inspector/inspections/{number}").status_code == 403
    token = _token(hoa, "/portal/inspector/")
    response = hoa.post(f"/portal/inspector/inspections/{number}/checks", data={"csrf_token": token, "code": "x"})
    assert response.status_code == 403
    assert hoa.get(f"/portal/inspector/inspections/{number}/evidence.json").status_code == 403
    assert _login(app, "boss").get(f"/portal/inspector/inspections/{number}").status_code == 200


def test_the_authority_reads_an_inspectors_inspection_but_cannot_write_it(app, accounts, registry, session, world):
    """The evidence file credits every check to the inspection's inspector, so only they add checks
    to it or close it: the authority reads it and downloads its evidence (oversight), but its check
    (JSON from the page's script, a form, photos, an offline sync) and its close are refused, before
    anything is verified. The authority's "My inspections" are its own, which it fills and closes."""
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    authority_key = registry.trust_list()["authority"]["public_key"]
    session.close()
    thanh, number, page_url, thanh_token = _inspecting(app)
    kept = thanh.post(f"{page_url}/checks", json={"code": codes["genuine"]},
                      headers={**JSON, "X-CSRFToken": thanh_token})
    assert kept.status_code == 201

    boss = _login(app, "boss")
    read = boss.get(page_url, headers={"Accept-Language": "en"})
    assert read.status_code == 200
    html = read.get_data(as_text=True)  # no forms it would be refused, and whose inspection it is
    assert 'id="code-form"' not in html and 'id="close-form"' not in html and 'data-open="false"' in html
    assert "Inspection by user:thanh: you can read it" in html and 'id="evidence"' in html
    own = thanh.get(page_url).get_data(as_text=True)
    assert 'id="code-form"' in own and 'id="close-form"' in own and 'id="not-mine"' not in own
    token = _token(boss, page_url)
    made = (datetime.now(timezone.utc) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for kwargs in ({"json": {"code": codes["counterfeit"]}, "headers": {**JSON, "X-CSRFToken": token}},
                   {"json": {"offline": True, "id": "q1", "code": codes["genuine"], "checked_at": made,
                             "result": {"verdict": "genuine"}}, "headers": {**JSON, "X-CSRFToken": token}},
                   {"data": {"csrf_token": token, "code": codes["counterfeit"]}},
                   {"data": {"csrf_token": token, "image": (io.BytesIO(_png()), "a.png")},
                    "content_type": "multipart/form-data"}):
        assert boss.post(f"{page_url}/checks", **kwargs).status_code == 403, kwargs
    assert boss.post(f"{page_url}/close", data={"csrf_token": token}).status_code == 403
    assert [c.verdict for c in stored_checks(session, number)] == ["genuine"]
    assert session.get(Inspection, number).closed_at is None
    assert not session.execute(select(AuditEvent.action).where(
        AuditEvent.actor == "user:boss", AuditEvent.action.in_(["inspection.check", "inspection.close"]))).all()
    session.close()  # release SQLite for the scan writer
    app.extensions["scan_writer"].flush()  # the inspector's check was counted; none refused was
    assert session.scalar(select(func.count()).select_from(ScanEvent).where(ScanEvent.channel == "inspection")) == 1
    session.close()  # release SQLite for the app's next write

    evidence = boss.get(f"{page_url}/evidence.json")
    assert evidence.status_code == 200
    evidence = json.loads(evidence.data)
    check_signed(evidence, authority_key)
    assert evidence["inspection"]["inspector"] == "user:thanh"
    assert [c["verdict"] for c in evidence["checks"]] == ["genuine"]

    # "My inspections" names no one: the authority's lists its own, not the inspector's.
    assert page_url not in boss.get("/portal/inspector/").get_data(as_text=True)
    own = _open(boss, place="Kho C")
    home = boss.get("/portal/inspector/").get_data(as_text=True)
    assert f"/portal/inspector/inspections/{own}" in home and page_url not in home
    own_url = f"/portal/inspector/inspections/{own}"
    assert boss.post(f"{own_url}/checks", json={"code": codes["genuine"]},
                     headers={**JSON, "X-CSRFToken": token}).status_code == 201
    assert boss.post(f"{own_url}/close", data={"csrf_token": token}).status_code == 303
    assert thanh.get(own_url).status_code == 403
    # The inspector still fills and closes their own.
    assert thanh.post(f"{page_url}/checks", json={"code": codes["counterfeit"]},
                      headers={**JSON, "X-CSRFToken": thanh_token}).status_code == 201
    assert thanh.post(f"{page_url}/close", data={"csrf_token": thanh_token}).status_code == 303


@pytest.mark.parametrize("body", ['"str"', "[1]", "5", "null", "true", '{"code": ', '{"code": NaN}'])
def test_a_check_whose_json_body_is_not_an_object_is_malformed(app, accounts, session, body):
    """A JSON body that is not an object (or not JSON) is 400 ``MALFORMED_JSON``, as the API answers
    it: it had been a 500 (a string has no ``get``), or "nothing to check"."""
    thanh, number, page_url, token = _inspecting(app)
    for accept in (JSON, {}):
        answer = thanh.post(f"{page_url}/checks", data=body, content_type="application/json",
                            headers={**accept, "X-CSRFToken": token})
        assert answer.status_code == 400 and answer.mimetype == "application/json", answer.get_data(as_text=True)[:300]
        assert answer.get_json()["error"]["code"] == "MALFORMED_JSON"
    assert stored_checks(session, number) == []


def test_posts_need_the_csrf_token(app, accounts):
    thanh = _login(app, "thanh")
    number = _open(thanh)
    assert thanh.post("/portal/inspector/inspections", data={"place": "x"}).status_code == 400
    assert thanh.post(f"/portal/inspector/inspections/{number}/checks", json={"code": "x"},
                      headers=JSON).status_code == 400


# -- on-site checks without JavaScript ---------------------------------------------------------------

def test_checks_by_form_then_close_and_evidence(app, accounts, registry, session, world):
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    authority_key = registry.trust_list()["authority"]["public_key"]
    session.close()
    thanh, number, page_url, token = _inspecting(app)
    response = thanh.post(f"{page_url}/checks", data={"csrf_token": token, "code": codes["genuine"]})
    assert response.status_code == 303 and response.headers["Location"].endswith(page_url)
    response = thanh.post(f"{page_url}/checks", data={"csrf_token": token, "code": codes["counterfeit"]})
    # Two photos in one post: each becomes a check (a blank picture is "unreadable", and kept).
    response = thanh.post(f"{page_url}/checks", content_type="multipart/form-data", data={
        "csrf_token": token, "image": [(io.BytesIO(_png()), "a.png"), (io.BytesIO(_png("grey")), "b.png")]})
    assert response.status_code == 303
    html = thanh.get(page_url).get_data(as_text=True)
    verdicts = re.findall(r'<li class="check v-\w+" data-verdict="(\w+)"', html)
    assert verdicts == ["unreadable", "unreadable", "counterfeit", "genuine"]  # newest first
    listed = html[html.index('<ol class="checks"'):html.index("</ol>")]
    assert "SIGNATURE_INVALID" not in listed and "<li>" in listed  # reason texts, not codes

    # A file that is not a photo is refused with a message, and nothing is kept.
    response = thanh.post(f"{page_url}/checks", content_type="multipart/form-data", headers=JSON,
                          data={"csrf_token": token, "image": (io.BytesIO(b"%PDF-1.4 not a photo"), "x.pdf")})
    assert response.status_code == 415 and response.get_json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    # So is a photo that is an empty file (it had been dropped, the post answered "nothing to check"),
    # while a file field left empty is no photo at all.
    response = thanh.post(f"{page_url}/checks", content_type="multipart/form-data", headers=JSON,
                          data={"csrf_token": token, "image": (io.BytesIO(b""), "IMG_0001.jpg")})
    assert response.status_code == 400 and response.get_json()["error"] == {
        "code": "IMAGE_EMPTY", "message": "Ảnh này là tệp rỗng."}
    response = thanh.post(f"{page_url}/checks", content_type="multipart/form-data", headers=JSON,
                          data={"csrf_token": token, "image": (io.BytesIO(b""), "")})
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "NOTHING_TO_CHECK"

    assert thanh.post(f"{page_url}/close", data={"csrf_token": token}).status_code == 303
    response = thanh.post(f"{page_url}/checks", json={"code": codes["genuine"]}, headers={**JSON, "X-CSRFToken": token})
    assert response.status_code == 409
    closed = thanh.get(page_url).get_data(as_text=True)
    assert 'id="checker"' not in closed

    response = thanh.get(f"{page_url}/evidence.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    evidence = json.loads(response.data)
    check_signed(evidence, authority_key)
    assert evidence["t"] == "inspection-evidence" and len(evidence["checks"]) == 4
    assert evidence["inspection"]["place"] == "Chợ Bến Thành" and evidence["inspection"]["closed_at"]
    assert evidence["checkpoint"]["t"] == "checkpoint"
    photos = [c for c in evidence["checks"] if c["photo_sha256"]]
    assert {c["photo_sha256"] for c in photos} == {hashlib.sha256(_png()).hexdigest(),
                                                   hashlib.sha256(_png("grey")).hexdigest()}
    check_id = photos[0]["id"]
    photo = thanh.get(f"{page_url}/checks/{check_id}/photo")
    assert photo.status_code == 200 and photo.mimetype.startswith("image/")


class _CheckLinks(HTMLParser):
    """Each check in the page's list (its id) with the links it holds, and their labels."""

    def __init__(self):
        super().__init__()
        self.checks: dict[int, list[tuple[str, str]]] = {}
        self._check = self._href = None
        self._depth = 0  # of <li> inside the check: its reasons are a list of their own

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "li" and "data-check-id" in attrs:
            self._check, self._depth = int(attrs["data-check-id"]), 0
            self.checks[self._check] = []
        if tag == "li" and self._check is not None:
            self._depth += 1
        elif tag == "a" and self._check is not None:
            self._href = attrs["href"]
            self.checks[self._check].append((self._href, attrs.get("rel", ""), ""))

    def handle_data(self, data):
        if self._href is not None:
            href, rel, text = self.checks[self._check][-1]
            self.checks[self._check][-1] = (href, rel, text + data)

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None
        elif tag == "li" and self._check is not None:
            self._depth -= 1
            if not self._depth:
                self._check = None


def test_each_kept_photo_is_linked_from_the_page(app, accounts, registry, session, world):
    """A check whose photo was kept links to the photo as the portal serves it (the same bytes); a
    check by typed code has no photo and no link. The page had said "photo kept" with no way to
    look at it."""
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    session.close()
    thanh, number, page_url, token = _inspecting(app)
    thanh.post(f"{page_url}/checks", data={"csrf_token": token, "code": codes["genuine"]})
    sent = {"a.png": _png(), "b.png": _png("grey")}
    thanh.post(f"{page_url}/checks", content_type="multipart/form-data", data={
        "csrf_token": token, "image": [(io.BytesIO(data), name) for name, data in sent.items()]})
    rows = stored_checks(session, number)
    by_code, *by_photo = [r.id for r in rows]
    session.close()

    page = _CheckLinks()
    page.feed(thanh.get(page_url).get_data(as_text=True))
    assert sorted(page.checks) == sorted([by_code, *by_photo])
    assert page.checks[by_code] == []
    for check_id, data in zip(by_photo, sent.values()):
        ((href, rel, text),) = page.checks[check_id]
        assert href == f"{page_url}/checks/{check_id}/photo"
        assert rel == "noopener" and text == "Xem ảnh đã lưu"
        photo = thanh.get(href)
        assert photo.status_code == 200 and photo.mimetype == "image/png" and photo.data == data
    # The link is the inspection's own: another inspector is refused the photo.
    assert _login(app, "hoa").get(f"{page_url}/checks/{by_photo[0]}/photo").status_code == 403


def test_json_answers_and_offline_sync(app, accounts, registry, session, world):
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    # The recall was made before the offline check below (a recall after it does not count for it).
    session.execute(update(Recall).values(at=datetime.now(timezone.utc) - timedelta(hours=1)))
    session.commit()
    session.close()
    thanh = _login(app, "thanh")
    number = _open(thanh)
    url = f"/portal/inspector/inspections/{number}/checks"
    headers = {**JSON, "X-CSRFToken": _token(thanh, f"/portal/inspector/inspections/{number}")}
    answer = thanh.post(url, json={"code": codes["recalled"]}, headers=headers)
    assert answer.status_code == 201
    (check,) = answer.get_json()["checks"]
    assert check["verdict"] == "recalled" and check["reasons"] == ["BATCH_RECALLED"] and not check["offline"]
    assert check["code"]["lot"] == "LOT-R"

    # What the browser decided offline is kept beside the server's verdict, which wins.
    made = (datetime.now(timezone.utc) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = thanh.post(url, headers=headers, json={
        "offline": True, "code": codes["recalled"], "checked_at": made,
        "result": {"verdict": "genuine", "reasons": [], "notes": [{"code": "OFFLINE_NO_RECALLS"}], "offline": True}})
    assert answer.status_code == 201
    (synced,) = answer.get_json()["checks"]
    assert synced["offline"] and synced["offline_verdict"] == "genuine" and synced["verdict"] == "recalled"
    assert synced["at"] == made
    # A made-up verdict, a missing time, an empty post: refused.
    bad = thanh.post(url, headers=headers, json={"offline": True, "code": "x", "checked_at": made,
                                                 "result": {"verdict": "fine"}})
    assert bad.status_code == 422
    assert thanh.post(url, headers=headers, json={"offline": True, "code": "x", "result": {"verdict": "genuine"}}
                      ).status_code == 422
    assert thanh.post(url, headers=headers, json={}).status_code == 422
    # A camera frame without a code is not a check.
    frame = thanh.post(url, headers=headers, content_type="multipart/form-data",
                       data={"frame": (io.BytesIO(_png()), "frame.jpg")})
    assert frame.status_code == 200 and frame.get_json() == {"checks": []}
    rows = stored_checks(session, number)
    assert [(r.verdict, r.offline) for r in rows] == [("recalled", False), ("recalled", True)]


def test_an_offline_check_is_judged_as_of_when_it_was_made(app, accounts, registry, session, world):
    """The server verifies a synced offline check again as of the check's time, on that moment's date
    in Vietnam (expiry dates are local dates): goods that expired, or a batch recalled, after the
    check do not make it 'expired' or 'recalled'. It had been judged on the day of the sync, and the
    signed evidence then said that expired goods were on sale."""
    from registry.services import SYSTEM
    from tests.conftest import GTIN, batch_data

    now = datetime.now(timezone.utc)
    today = (now + timedelta(hours=7)).date()  # in Vietnam
    yesterday = (now - timedelta(days=1)).date()  # in UTC: 16:30Z is 23:30 in Vietnam, 18:30Z 01:30 the next day
    late, early = (datetime(yesterday.year, yesterday.month, yesterday.day, hour, 30, tzinfo=timezone.utc)
                   for hour in (18, 16))

    def unit(lot, expiry):
        batch = registry.register_batch(SYSTEM, batch_data(lot=lot, expiry=expiry, production_date=(
            expiry - timedelta(days=400)).isoformat()), producer_id=world.producer_id)
        (serial, s), = registry.issue_serials(SYSTEM, GTIN, lot, 1)
        return registry.serial_url(batch, serial, s)

    expired_since = unit("LOT-EXP", today - timedelta(days=2))
    last_day = unit("LOT-DAY", yesterday)  # its last day is yesterday's date in UTC
    recalled_since = unit("LOT-REC", today + timedelta(days=300))
    registry.recall(SYSTEM, GTIN, "LOT-REC", reason="after the check")
    session.commit()
    session.close()
    thanh, number, _, token = _inspecting(app)
    _begun_at(app, number, now - timedelta(days=6))  # a week-long inspection, synced today

    def synced(code, at):
        check = _synced(thanh, number, token, code, at)
        notes.append(check["notes"])
        return check["verdict"], check["reasons"]

    notes: list[list[str]] = []
    assert synced(expired_since, now - timedelta(days=5)) == ("genuine", [])  # still in date then
    assert synced(expired_since, now - timedelta(minutes=5))[0] == "expired"  # not any more
    assert synced(recalled_since, now - timedelta(hours=1)) == ("genuine", [])  # recalled after the check
    assert notes == [[], [], ["RECALLED_SINCE"]]  # ... and the check says so, so the goods come off sale
    page = thanh.get(f"/portal/inspector/inspections/{number}").get_data(as_text=True)
    assert "Lô hàng này đã bị thu hồi sau lần kiểm tra này: hãy ngừng bán hàng." in page
    # A fixed instant either side of midnight in Vietnam: 23:30 on its last day, then 01:30 the day after.
    assert synced(last_day, early) == ("genuine", [])
    assert synced(last_day, late) == ("expired", ["EXPIRED"])
    rows = stored_checks(session, number)
    assert [r.verdict for r in rows] == ["genuine", "expired", "genuine", "genuine", "expired"]
    assert rows[0].result["server"]["verdict"] == "genuine" and rows[0].result["offline"]["verdict"] == "genuine"
    (note,) = rows[2].result["server"]["notes"]  # what the signed evidence file carries
    assert note["code"] == "RECALLED_SINCE" and note["detail"].endswith(", after this check: after the check")
    assert note["message"]["en"] == "This batch has been recalled since this check: take the goods off sale."


def test_an_offline_check_made_before_its_key_was_compromised_stays_genuine(app, accounts, registry, session,
                                                                            world):
    """A key revoked after an offline check, compromised after it too, signed nothing false before:
    the check synced later is genuine. Compromised before the check, the code may be forged: suspect."""
    from registry.services import SYSTEM
    from tests.conftest import GTIN, batch_data

    now = datetime.now(timezone.utc)
    batch = registry.register_batch(SYSTEM, batch_data(lot="LOT-KEY"), producer_id=world.producer_id)
    (serial, s), = registry.issue_serials(SYSTEM, GTIN, "LOT-KEY", 1)
    code = registry.serial_url(batch, serial, s)
    registry.revoke_key(SYSTEM, world.kid, compromised_at=now - timedelta(minutes=30))
    session.commit()
    session.close()
    thanh, number, _, token = _inspecting(app)
    _begun_at(app, number, now - timedelta(hours=2))
    checks = [_synced(thanh, number, token, code, at) for at in (now - timedelta(hours=1), now - timedelta(minutes=10))]
    verdicts = [(check["verdict"], check["reasons"]) for check in checks]
    assert verdicts == [("genuine", []), ("suspect", ["KEY_REVOKED"])]


@pytest.fixture
def flagged_unit(registry, session, world):
    """The genuine unit of ``make_codes``, flagged as a likely clone: (its codes, its row id)."""
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    serial = session.execute(select(Serial).where(Serial.serial == codes.genuine_serial)).scalar_one()
    serial.flagged = "SERIAL_CLONED"
    session.commit()
    serial_id = serial.id
    session.close()  # SQLite: every transaction takes the write lock
    return codes, serial_id


def test_flagged_serials_page(app, accounts, flagged_unit, session):
    codes, _ = flagged_unit
    page = _login(app, "thanh").get("/portal/inspector/flagged").get_data(as_text=True)
    assert codes.genuine_serial in page and "08936000010010" in page
    assert "SERIAL_CLONED" not in page
    # each count in its own words: "by 1 different clients" had been said of one client
    assert re.search(r"<dd>\d+ lượt kiểm tra từ \d+ thiết bị</dd>", page)
    english = _login(app, "thanh").get("/portal/inspector/flagged?lang=en").get_data(as_text=True)
    assert re.search(r"<dd>\d+ checks? by (1 client|\d+ different clients)</dd>", english)
    assert "Báo cáo của người mua" not in page  # no report about it yet
    session.add(Report(case_number="VN-2026-000042", gtin="08936000010010", lot="LOT-1", serial=codes.genuine_serial,
                       where_kind="shop", where_text="Chợ Lớn", status="investigating",
                       created_at=datetime.now(timezone.utc)))
    session.commit()
    session.close()
    page = _login(app, "thanh").get("/portal/inspector/flagged").get_data(as_text=True)
    assert "Báo cáo của người mua" in page
    assert '<a href="/portal/cases/VN-2026-000042" class="mono">VN-2026-000042</a> · Đang xác minh' in page


@pytest.mark.parametrize("page", ["99999999999999999999", "-3", "x", "²"])
def test_list_pages_past_the_last_or_not_numbers_show_the_first(app, accounts, flagged_unit, page):
    """A page number the database cannot take as an offset had answered 500."""
    codes, _ = flagged_unit
    inspector = _login(app, "thanh")
    flagged = inspector.get(f"/portal/inspector/flagged?page={page}")
    assert flagged.status_code == 200 and codes.genuine_serial in flagged.get_data(as_text=True)
    assert inspector.get(f"/portal/cases?page={page}").status_code == 200
    producer = _login(app, "farm")
    assert producer.get(f"/portal/producer/?page={page}").status_code == 200


def test_an_inspector_clears_a_flag_from_the_page(app, accounts, session, flagged_unit):
    codes, serial_id = flagged_unit
    inspector = _login(app, "thanh")
    form = {"gtin": "08936000010010", "lot": "LOT-1", "serial": codes.genuine_serial}
    token = _token(inspector, "/portal/inspector/flagged")
    refused = inspector.post("/portal/inspector/flagged/clear", data={**form, "note": "x"})
    assert refused.status_code == 400 and "csrf" in refused.get_data(as_text=True).lower()  # no CSRF token
    empty = inspector.post("/portal/inspector/flagged/clear",
                           data={**form, "note": "  ", "csrf_token": token, "page": "²"})  # a digit int() refuses
    assert empty.status_code == 422
    assert "Vui lòng điền" in empty.get_data(as_text=True)  # the note is required, said in Vietnamese
    cleared = inspector.post("/portal/inspector/flagged/clear",
                             data={**form, "note": "Hàng trưng bày ở quầy <b>12</b>", "csrf_token": token})
    assert cleared.status_code == 303 and cleared.headers["Location"].endswith("/portal/inspector/flagged")
    page = inspector.get("/portal/inspector/flagged").get_data(as_text=True)
    assert codes.genuine_serial in page and "Không có số sê-ri nào bị gắn cờ" in page  # the flash, the empty list
    assert session.get(Serial, serial_id).flagged is None
    session.close()
    again = inspector.post("/portal/inspector/flagged/clear",
                           data={**form, "note": "again", "csrf_token": token})
    assert again.status_code == 303  # someone cleared it meanwhile: said, nothing changes
    assert "không còn bị gắn cờ" in inspector.get("/portal/inspector/flagged").get_data(as_text=True)
    edited = inspector.post("/portal/inspector/flagged/clear",  # a unit the list never named: said on the list
                            data={**form, "gtin": "0893600001001X", "note": "x", "csrf_token": token})
    assert edited.status_code == 303 and edited.headers["Location"].endswith("/portal/inspector/flagged")
    assert "Không có số sê-ri này trong lô" in inspector.get("/portal/inspector/flagged").get_data(as_text=True)
    producer = _login(app, "farm")
    assert producer.post("/portal/inspector/flagged/clear", data={**form, "note": "x"}).status_code in (400, 403)
    # Flagged again by a new crowd: the list says who cleared it before and why (escaped).
    session.execute(update(Serial).where(Serial.id == serial_id).values(flagged="SERIAL_CLONED"))
    session.commit()
    session.close()
    page = inspector.get("/portal/inspector/flagged").get_data(as_text=True)
    assert "Gỡ bởi thanh: “Hàng trưng bày ở quầy &lt;b&gt;12&lt;/b&gt;”" in page


# -- cases ------------------------------------------------------------------------------------------

@pytest.fixture
def report(session, world):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    case = Report(case_number="VN-2026-000042", code="https://x/01/08936000010010/10/LOT-1", gtin="08936000010010",
                  lot="LOT-1", producer_id=world.producer_id, verdict="counterfeit", where_kind="market",
                  where_text="Chợ Lớn, quầy 12", seller="Cửa hàng Phát Đạt", contact="0909 123 456",
                  description="Bao bì in mờ", status="new", created_at=now)
    session.add(case)
    session.flush()
    photo = _png("red")
    session.add(ReportPhoto(report_id=case.id, media_type="image/png", sha256=hashlib.sha256(photo).hexdigest(),
                            data=photo))
    number = case.case_number
    session.commit()
    session.close()  # release SQLite's write lock for the app
    return number, hashlib.sha256(photo).hexdigest()


def test_a_case_from_new_to_published(app, accounts, report, session):
    number, photo_sha = report
    thanh = _login(app, "thanh")
    listing = thanh.get("/portal/cases").get_data(as_text=True)
    assert number in listing
    assert number not in thanh.get("/portal/cases?status=confirmed").get_data(as_text=True)
    url = f"/portal/cases/{number}"
    page = thanh.get(url).get_data(as_text=True)
    assert "Chợ Lớn, quầy 12" in page and "0909 123 456" in page and photo_sha in page
    assert thanh.get(f"{url}/photos/{photo_sha}").status_code == 200
    token = csrf_of(page)

    # A username with no inspector or authority account is refused on the page, typed value kept.
    typo = thanh.post(f"{url}/assign", data={"csrf_token": token, "assignee": "hoaa"})
    assert typo.status_code == 422
    assert ("Không có tài khoản thanh tra viên hay cơ quan quản lý nào đang hoạt động với tên đăng nhập này."
            in typo.get_data(as_text=True))
    assert 'value="hoaa"' in typo.get_data(as_text=True)
    assert "phân công cho" not in thanh.get(url).get_data(as_text=True)  # "assigned to"
    assigned = thanh.post(f"{url}/assign", data={"csrf_token": token, "assignee": "hoa"}, follow_redirects=True)
    assert "phân công cho hoa" in assigned.get_data(as_text=True)
    # The note says so in the reader's language: the system writes no English into a case.
    assert '<p class="note-event">Đã phân công cho hoa.</p>' in assigned.get_data(as_text=True)
    assert "assigned to" not in assigned.get_data(as_text=True)
    english = thanh.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<p class="note-event">Assigned to hoa.</p>' in english
    assert thanh.post(f"{url}/assign", data={"csrf_token": token, "assignee": ""}).status_code == 303  # to me
    assert "phân công cho thanh" in thanh.get(url).get_data(as_text=True)
    assert thanh.post(f"{url}/transition", data={"csrf_token": token, "to": "investigating"}).status_code == 303
    # Confirming needs a reason: the page says so, nothing changes.
    refused = thanh.post(f"{url}/transition", data={"csrf_token": token, "to": "confirmed", "text": ""})
    assert refused.status_code == 422 and 'role="alert"' in refused.get_data(as_text=True)
    pdf = b"%PDF-1.4\n% test report\n"
    noted = thanh.post(f"{url}/notes", content_type="multipart/form-data", data={
        "csrf_token": token, "text": "Mua mẫu thử tại quầy", "attachment": (io.BytesIO(pdf), "bien-ban.pdf")})
    assert noted.status_code == 303
    bad = thanh.post(f"{url}/notes", content_type="multipart/form-data", data={
        "csrf_token": token, "text": "x", "attachment": (io.BytesIO(b"MZ\x90\x00binary"), "virus.exe")})
    assert bad.status_code == 415
    assert thanh.post(f"{url}/transition", data={"csrf_token": token, "to": "confirmed",
                                                 "text": "Kết quả giám định: hàng giả"}).status_code == 303
    page = thanh.get(url).get_data(as_text=True)
    assert 'data-status="confirmed"' in page and "bien-ban.pdf" in page
    note_id = re.search(r'/notes/(\d+)/attachment', page).group(1)
    download = thanh.get(f"{url}/notes/{note_id}/attachment")
    assert download.data == pdf and "attachment" in download.headers["Content-Disposition"]
    named = thanh.post(f"{url}/notes", content_type="multipart/form-data", data={
        "csrf_token": token, "text": "Biên bản", "attachment": (io.BytesIO(b"ok\n"), "Biên bản kiểm tra.txt")})
    assert named.status_code == 303
    named_id = re.findall(r'/notes/(\d+)/attachment', thanh.get(url).get_data(as_text=True))
    disposition = thanh.get(f"{url}/notes/{max(map(int, named_id))}/attachment").headers["Content-Disposition"]
    assert "filename*=UTF-8''Bi%C3%AAn%20b%E1%BA%A3n%20ki%E1%BB%83m%20tra.txt" in disposition, disposition
    # Inspectors do not publish; the authority does, once.
    assert 'id="publish-form"' not in page
    assert thanh.post(f"{url}/publish", data={"csrf_token": token, "name": "X"}).status_code == 403
    boss = _login(app, "boss")
    page = boss.get(url).get_data(as_text=True)
    assert 'id="publish-form"' in page
    undecided = boss.post(f"{url}/publish", data={"csrf_token": csrf_of(page), "name": "Cửa hàng Phát Đạt"})
    assert undecided.status_code == 422  # a name made public for good rests on a decision
    assert re.search(r'name="decision_ref"[^>]*>\s*<p class="field-error"[^>]*>[^<]+</p>', undecided.get_data(as_text=True))
    mistyped = boss.post(f"{url}/publish", data={"csrf_token": csrf_of(page), "name": "Cửa hàng Phát Đạt",
                                                 "tax_code": "0312345678", "decision_ref": ""})
    assert mistyped.status_code == 422  # each field's problem beside it (the tax code's had shown nowhere)
    assert re.search(r'name="tax_code"[^>]*><p class="field-error"[^>]*>Mã số thuế Việt Nam', mistyped.get_data(as_text=True))
    assert re.search(r'name="decision_ref"[^>]*><p class="field-error"', mistyped.get_data(as_text=True))
    published = boss.post(f"{url}/publish", data={"csrf_token": csrf_of(page), "name": "Cửa hàng Phát Đạt",
                                                  "tax_code": "0312345673", "decision_ref": "QĐ-12/2026"})
    assert published.status_code == 303
    published_page = boss.get(url).get_data(as_text=True)
    publication_note = re.search(r'<p class="note-event">Đã công bố là đối tượng vi phạm \(công bố số (\d+)\)\.</p>',
                                 published_page)
    again = boss.post(f"{url}/publish", data={"csrf_token": csrf_of(page), "name": "X"})
    assert again.status_code == 409
    row = session.execute(select(Publication).where(Publication.kind == "violator")).scalar_one()
    assert row.name == "Cửa hàng Phát Đạt" and row.tax_code == "0312345673"
    assert publication_note and int(publication_note.group(1)) == row.id
    actions = session.execute(select(AuditEvent.action).where(AuditEvent.target == number)).scalars().all()
    assert {"case.assign", "case.transition", "case.note", "case.publish"} <= set(actions)
    # On the public list, the case offers no move; a page opened before the publication is refused
    # on the case page, saying why (a dismissal had left the list naming the seller of a dismissed case).
    session.rollback()  # SQLite: the test's reads hold the write lock
    page = thanh.get(url).get_data(as_text=True)
    assert 'id="move-form"' not in page and "rút lại công bố trước" in page
    assert 'id="work"' not in page  # nothing to work: no empty card
    stale = thanh.post(f"{url}/transition", data={"csrf_token": token, "to": "dismissed", "from": "confirmed",
                                                  "text": "Nhầm lẫn"})
    assert stale.status_code == 409 and "đang có trong danh sách công khai" in stale.get_data(as_text=True)
    assert '<blockquote class="typed">Nhầm lẫn</blockquote>' in stale.get_data(as_text=True)  # not lost
    assert session.execute(select(Report.status).where(Report.case_number == number)).scalar_one() == "confirmed"


def test_a_case_changed_meanwhile_in_another_tab_is_said_in_the_pages_language(app, accounts, report):
    """Pages opened before someone else closed or published the case: the refusal is said in the
    page's language (the page had shown the registry's English words alone)."""
    number, _ = report
    url = f"/portal/cases/{number}"
    hoa, thanh, boss = _login(app, "hoa"), _login(app, "thanh"), _login(app, "boss")
    token = _token(hoa, url)
    for to, text in (("investigating", ""), ("confirmed", "Kết quả giám định: hàng giả")):
        assert hoa.post(f"{url}/transition", data={"csrf_token": token, "to": to, "text": text}).status_code == 303
    thanh_token, boss_token = _token(thanh, url), _token(boss, url)  # both pages open
    assert hoa.post(f"{url}/transition", data={"csrf_token": token, "to": "dismissed",
                                               "text": "Nhầm lẫn"}).status_code == 303

    assigned = thanh.post(f"{url}/assign", data={"csrf_token": thanh_token, "assignee": ""})
    page = assigned.get_data(as_text=True)
    assert assigned.status_code == 409
    assert "<strong>Vụ việc này đã đóng (đã xác nhận hàng giả hoặc đã bác bỏ)" in page, page
    published = boss.post(f"{url}/publish", data={"csrf_token": boss_token, "name": "Cửa hàng Phát Đạt",
                                                  "decision_ref": "QĐ-12/2026"})
    page = published.get_data(as_text=True)
    assert published.status_code == 409
    assert "<strong>Chỉ vụ việc đã xác nhận hàng giả mới được công bố" in page, page

    for to, text in (("investigating", ""), ("confirmed", "Giám định lại: hàng giả")):
        assert hoa.post(f"{url}/transition", data={"csrf_token": token, "to": to, "text": text}).status_code == 303
    form = {"csrf_token": boss_token, "name": "Cửa hàng Phát Đạt", "decision_ref": "QĐ-12/2026"}
    assert boss.post(f"{url}/publish", data=form).status_code == 303
    again = boss.post(f"{url}/publish", data=form)  # the same form, sent again from another tab
    page = again.get_data(as_text=True)
    assert again.status_code == 409 and "<strong>Vụ việc này đã được công bố.</strong>" in page, page
    english = boss.post(f"{url}/publish", data=form, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "<strong>This case is already published.</strong>" in english


def test_a_case_about_a_flagged_unit_shows_its_flag_then_its_clearance(app, accounts, session, flagged_unit):
    """The inspector working a shopper's report about a unit sees what clone detection holds of it."""
    codes, _ = flagged_unit
    session.add(Report(case_number="VN-2026-000051", code=codes["genuine"], gtin="08936000010010", lot="LOT-1",
                       serial=codes.genuine_serial, where_kind="shop", where_text="Chợ Lớn", status="new",
                       created_at=datetime.now(timezone.utc)))
    session.add(Report(case_number="VN-2026-000052", code="08936000010010", gtin="08936000010010",
                       where_kind="shop", where_text="Chợ Lớn", status="new", created_at=datetime.now(timezone.utc)))
    session.commit()
    session.close()
    inspector = _login(app, "thanh")
    page = inspector.get("/portal/cases/VN-2026-000051").get_data(as_text=True)
    assert 'id="unit-checks" data-flagged="yes"' in page
    assert '<a class="badge badge-revoked" href="/portal/inspector/flagged">có thể bị sao chép</a>' in page
    token = _token(inspector, "/portal/inspector/flagged")
    assert inspector.post("/portal/inspector/flagged/clear", data={
        "gtin": "08936000010010", "lot": "LOT-1", "serial": codes.genuine_serial, "csrf_token": token,
        "note": "Hàng trưng bày <b>quầy 12</b>"}).status_code == 303
    flagged = inspector.get("/portal/inspector/flagged").get_data(as_text=True)
    assert "Ghi chú của bạn đã được thêm vào các hồ sơ đang mở về sản phẩm này: VN-2026-000051." in flagged
    page = inspector.get("/portal/cases/VN-2026-000051").get_data(as_text=True)
    assert 'data-flagged="no"' in page and "Đã từng gỡ cờ" in page
    assert "Gỡ bởi thanh: “Hàng trưng bày &lt;b&gt;quầy 12&lt;/b&gt;”" in page
    # the case's history has it too, written as the clearance's note (escaped)
    notes = page[page.index('id="notes"'):]
    assert f"Đã gỡ cờ nghi sao chép của số sê-ri {codes.genuine_serial}. Những gì đã kiểm tra:" in notes
    assert '<p class="prewrap">Hàng trưng bày &lt;b&gt;quầy 12&lt;/b&gt;</p>' in notes
    assert 'id="unit-checks"' not in inspector.get("/portal/cases/VN-2026-000052").get_data(as_text=True)  # no serial


def test_the_flagged_serials_page_says_what_flags_a_serial(app, accounts, flagged_unit):
    """Too many clients from too many networks flag a serial; places too far apart for the time
    between make only that one answer suspect (``verification.verdicts``): the page had said they
    flag it too."""
    client = _login(app, "thanh")
    english = client.get("/portal/inspector/flagged", headers={"Accept-Language": "en"}).get_data(as_text=True)
    lead = re.search(r'<p class="lead">(.*?)</p>', english, re.S).group(1)
    assert "too many different devices from too many different networks" in lead
    assert "makes only that answer suspicious and flags nothing" in lead
    assert "places too far apart for the time between." not in lead
    vietnamese = client.get("/portal/inspector/flagged").get_data(as_text=True)
    lead = re.search(r'<p class="lead">(.*?)</p>', vietnamese, re.S).group(1)
    assert "quá nhiều thiết bị khác nhau, từ quá nhiều mạng khác nhau" in lead
    assert "không gắn cờ số sê-ri" in lead


def test_a_refused_check_is_answered_as_json_in_the_pages_language(app, accounts, registry, session, world):
    """A closed inspection, an offline check too old or unreadable: the page's script gets the
    JSON problem it reads (a code and a translated text), not the portal's HTML error page."""
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    session.close()
    thanh, number, page_url, token = _inspecting(app)
    headers = {**JSON, "X-CSRFToken": token}
    old = (datetime.now(timezone.utc) - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%SZ")
    too_old = thanh.post(f"{page_url}/checks", headers=headers, json={
        "offline": True, "code": codes["genuine"], "checked_at": old, "result": {"verdict": "genuine"}})
    assert too_old.status_code == 422 and too_old.mimetype == "application/json"
    assert too_old.get_json()["error"] == {
        "code": "BAD_DATE", "message": "Lượt kiểm tra ngoại tuyến này mang thời điểm trước khi cuộc kiểm tra "
        "bắt đầu, hoặc trong tương lai: lượt này không được lưu."}
    recent = (datetime.now(timezone.utc) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    unreadable = thanh.post(f"{page_url}/checks", headers=headers, json={
        "offline": True, "code": "x", "checked_at": recent, "result": "genuine"})
    assert unreadable.status_code == 422 and unreadable.get_json()["error"]["code"] == "BAD_RESULT"
    assert unreadable.get_json()["error"]["message"] != "result must be the offline verification JSON"
    assert thanh.post(f"{page_url}/close", data={"csrf_token": token}).status_code == 303
    closed = thanh.post(f"{page_url}/checks", json={"code": codes["genuine"]}, headers=headers)
    assert closed.status_code == 409 and closed.mimetype == "application/json"
    error = closed.get_json()["error"]
    assert error["code"] == "INSPECTION_CLOSED" and error["message"].startswith("Cuộc kiểm tra này đã kết thúc")
    # Without the script, a form post goes back to the page, which says why.
    form = thanh.post(f"{page_url}/checks", data={"csrf_token": token, "code": codes["genuine"]})
    assert form.status_code == 303 and form.headers["Location"].endswith(page_url)
    assert "Cuộc kiểm tra này đã kết thúc" in thanh.get(page_url).get_data(as_text=True)


def test_a_check_made_offline_before_the_close_and_sent_after_it_is_marked_so(app, accounts, registry, session,
                                                                                world):
    """Closed on the web while a check made in the basement still waited on the phone: it is taken
    (it was made during the inspection), and the page says it came after the close, as the
    evidence file does."""
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    session.close()
    thanh, number, page_url, token = _inspecting(app)
    _begun_at(app, number, datetime.now(timezone.utc) - timedelta(hours=1))
    made = (datetime.now(timezone.utc) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert thanh.post(f"{page_url}/close", data={"csrf_token": token}).status_code == 303
    late = thanh.post(f"{page_url}/checks", headers={**JSON, "X-CSRFToken": token}, json={
        "offline": True, "code": codes["genuine"], "checked_at": made, "result": {"verdict": "genuine"}})
    assert late.status_code == 201
    page = thanh.get(page_url).get_data(as_text=True)
    assert page.count("nhận sau khi kết thúc") == 1


def test_an_offline_check_sent_by_two_tabs_is_stored_once(app, accounts, registry, session, world):
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    session.close()
    thanh = _login(app, "thanh")
    number = _open(thanh)
    url = f"/portal/inspector/inspections/{number}/checks"
    headers = {**JSON, "X-CSRFToken": _token(thanh, f"/portal/inspector/inspections/{number}")}
    made = (datetime.now(timezone.utc) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    waiting = {"offline": True, "id": "0a1b2c3d4e5f6071", "code": codes["genuine"], "checked_at": made,
               "result": {"verdict": "genuine", "reasons": [], "notes": [], "offline": True}}
    first = thanh.post(url, headers=headers, json=waiting)
    second = thanh.post(url, headers=headers, json=waiting)
    assert first.status_code == 201 and second.status_code in (200, 201)
    assert second.get_json()["checks"][0]["id"] == first.get_json()["checks"][0]["id"]
    rows = stored_checks(session, number)
    assert len(rows) == 1 and rows[0].client_id == "0a1b2c3d4e5f6071"
    session.close()
    evidence = thanh.get(f"/portal/inspector/inspections/{number}/evidence.json")
    assert evidence.status_code == 200, evidence.get_data(as_text=True)[:300]
    assert len(json.loads(evidence.data)["checks"]) == 1


def test_a_case_moved_on_meanwhile_is_said_in_the_pages_language(app, accounts, session):
    """A case page left open: its buttons offer moves the case can no longer make (someone else
    confirmed it); the answer says so in Vietnamese, not the domain's English."""
    session.add(Report(case_number="VN-2026-000091", gtin="08936000010010", lot="LOT-1", serial="S1",
                       where_kind="shop", where_text="Chợ Lớn", status="confirmed",
                       created_at=datetime.now(timezone.utc)))
    session.commit()
    session.close()
    thanh = _login(app, "thanh")
    url = "/portal/cases/VN-2026-000091"
    token = _token(thanh, url)
    moved = thanh.post(f"{url}/transition", data={"csrf_token": token, "to": "investigating"})
    assert moved.status_code == 409
    html = moved.get_data(as_text=True)
    assert "Vụ việc này đã được chuyển sang trạng thái khác" in html, html[:2000]


def test_a_flagged_units_history_names_its_channels_in_the_pages_language(app, accounts, flagged_unit):
    codes, _ = flagged_unit
    client = app.test_client()
    client.get("/api/v1/verify", query_string={"code": codes["genuine"], "client_id": "phone-a"})
    client.get("/verify", query_string={"code": codes["genuine"]})
    app.extensions["scan_writer"].flush()
    page = _login(app, "thanh").get("/portal/inspector/flagged").get_data(as_text=True)
    channels = re.findall(r'<td data-label="Kênh">([^<]*)</td>', page)
    assert channels and "Ứng dụng khác (API)" in channels, channels
    assert not {"api", "link", "web"} & set(channels), channels


def test_a_check_says_what_the_shoppers_page_says_beside_its_verdict(app, accounts, registry, session, world):
    """Whose goods, until when, when and why recalled, how often checked: the list had shown the
    reasons alone, and an inspector at a stall needs the recall's day and reason to act on it."""

    from verification.localtime import vietnam_date

    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    session.close()
    thanh, number, page_url, token = _inspecting(app)
    answer = thanh.post(f"{page_url}/checks", json={"code": codes["recalled"]},
                        headers={**JSON, "X-CSRFToken": token})
    assert answer.status_code == 201
    facts = answer.get_json()["checks"][0]["facts"]
    day = vietnam_date()
    today = f"{day.day} tháng {day.month} năm {day.year}"  # as Vietnamese write it (app.i18n.VIETNAMESE_DATE)
    assert facts[0] == "Nhà sản xuất: HTX Highland" and facts[1].startswith("Hạn sử dụng: ")
    assert f"Thu hồi ngày {today}." in facts and any("contamination" in f for f in facts)
    html = thanh.get(page_url).get_data(as_text=True)
    assert '<ul class="check-facts"><li>Nhà sản xuất: HTX Highland</li>' in html
    assert f"<li>Thu hồi ngày {today}.</li>" in html


def test_an_inspector_finds_a_case_by_number_seller_place_or_gtin(app, accounts, session):
    """A shopper on the phone gives a case number, a colleague names a shop: the cases page had only
    tabs of pages of 20 to look through."""
    from keys.encoding import utcnow

    for number, seller, place, status in ((1, "Shop Mỹ phẩm Hồng", "Chợ Lớn", "new"),
                                          (2, "Tạp hóa 100%", "Chợ Bến Thành", "confirmed"),
                                          (3, "Cô Lan", "Chợ Lớn, sạp 4", "dismissed")):
        session.add(Report(case_number=f"VN-2026-00010{number}", code="", gtin="08936000010010", lot=f"LOT-{number}",
                           seller=seller, where_kind="market", where_text=place, status=status, created_at=utcnow()))
    session.commit()
    thanh = _login(app, "thanh")

    def found(q: str) -> list[str]:
        return re.findall(r'data-case="([^"]+)"', thanh.get("/portal/cases", query_string={"q": q}).get_data(
            as_text=True))

    assert found("chợ lớn") == ["VN-2026-000103", "VN-2026-000101"]  # every status, newest first
    # as typed on a keyboard without Vietnamese (accents and case aside), words in any field, any order
    assert found("CHO LON") == ["VN-2026-000103", "VN-2026-000101"]
    assert found("my pham hong") == ["VN-2026-000101"] and found("lan sap 4") == ["VN-2026-000103"]
    assert found("lot-2") == ["VN-2026-000102"]
    # written by a server of the version before the folded text, during a rolling upgrade: found as
    # that version found it (case aside), not lost to the search
    session.execute(update(Report).where(Report.case_number == "VN-2026-000102").values(search_text=""))
    session.commit()
    assert found("tạp hóa") == ["VN-2026-000102"] and found("lot-2") == ["VN-2026-000102"]
    assert found("100%") == ["VN-2026-000102"]  # '%' is typed, not a wildcard
    assert found("8936000010010") == ["VN-2026-000103", "VN-2026-000102", "VN-2026-000101"]
    exact = thanh.get("/portal/cases", query_string={"q": "vn-2026-000102"})
    assert exact.status_code == 303 and exact.headers["Location"].endswith("/portal/cases/VN-2026-000102")
    assert "Không có vụ việc nào khớp" in thanh.get("/portal/cases", query_string={"q": "zzz"}).get_data(as_text=True)


def test_older_inspections_are_a_page_away(app, accounts, session):
    """The list had stopped at the latest 100 inspections, with no way to older ones."""
    from keys.encoding import utcnow

    start = utcnow() - timedelta(days=200)
    for day in range(120):
        session.add(Inspection(inspector="user:thanh", place=f"Chợ số {day}", started_at=start + timedelta(days=day),
                               closed_at=start + timedelta(days=day, hours=2)))
    session.commit()
    thanh = _login(app, "thanh")
    places = lambda html: re.findall(r"<strong>Chợ số (\d+)</strong>", html)  # noqa: E731
    first = thanh.get("/portal/inspector/").get_data(as_text=True)
    assert places(first) == [str(d) for d in range(119, 69, -1)] and "page=2" in first
    third = thanh.get("/portal/inspector/", query_string={"page": 3}).get_data(as_text=True)
    assert places(third) == [str(d) for d in range(19, -1, -1)] and "page=4" not in third and "page=2" in third


def test_an_inspection_started_offline_is_opened_once_and_a_refused_one_says_why(app, accounts, session):
    """The page's script sends an inspection the phone started with no network: 201 with its
    address, the same one when sent again; one too old, or not an object, is refused as JSON."""
    from datetime import datetime, timedelta, timezone

    thanh = _login(app, "thanh")
    token = _token(thanh, "/portal/inspector/")
    began = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"offline": True, "id": "0a1b2c3d4e5f6071", "place": "Chợ Lớn", "lat": "", "lon": "", "started_at": began}
    first = thanh.post("/portal/inspector/inspections", json=body, headers={**JSON, "X-CSRFToken": token})
    again = thanh.post("/portal/inspector/inspections", json=body, headers={**JSON, "X-CSRFToken": token})
    assert first.status_code == again.status_code == 201 and first.get_json() == again.get_json()
    assert first.get_json()["url"] == f"/portal/inspector/inspections/{first.get_json()['id']}"
    old = (datetime.now(timezone.utc) - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    refused = thanh.post("/portal/inspector/inspections", json={**body, "id": "other", "started_at": old},
                         headers={**JSON, "X-CSRFToken": token})
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "BAD_DATE"
    assert refused.get_json()["error"]["field"] == "started_at"
    not_object = thanh.post("/portal/inspector/inspections", data="[1]", content_type="application/json",
                            headers={**JSON, "X-CSRFToken": token})
    assert not_object.status_code == 400 and not_object.get_json()["error"]["code"] == "MALFORMED_JSON"


def test_an_inspection_started_offline_is_sent_only_by_whoever_the_phone_was_logged_in_as(app, accounts, session):
    """A phone passed on: the next inspector's page had sent the first one's waiting inspection, and
    its checks, as the next one's. The phone says whom it was started by; no one else may send it."""
    from datetime import datetime, timedelta, timezone

    from registry.models import Inspection

    began = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"offline": True, "id": "5a5a5a5a5a5a5a5a", "place": "Kho A", "started_at": began, "by": "user:thanh"}
    hoa = _login(app, "hoa")
    refused = hoa.post("/portal/inspector/inspections", json=body,
                       headers={**JSON, "X-CSRFToken": _token(hoa, "/portal/inspector/")})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "OTHER_INSPECTOR"
    assert "user:thanh" in refused.get_json()["error"]["message"]
    assert session.execute(select(Inspection).where(Inspection.client_id == body["id"])).first() is None
    session.rollback()  # SQLite: the app writes next
    thanh = _login(app, "thanh")
    sent = thanh.post("/portal/inspector/inspections", json=body,
                      headers={**JSON, "X-CSRFToken": _token(thanh, "/portal/inspector/")})
    assert sent.status_code == 201
    # the pages say whom the phone is logged in as, for the script to mark what it keeps
    assert 'data-user="user:thanh"' in thanh.get("/portal/inspector/").get_data(as_text=True)
    assert '"user": "user:thanh"' in thanh.get("/portal/inspector/offline").get_data(as_text=True)
    kept = session.execute(select(Inspection).where(Inspection.client_id == body["id"])).scalar_one()
    assert kept.inspector == "user:thanh" and kept.place == "Kho A"


def test_a_case_form_left_open_does_not_undo_what_another_decided_meanwhile(app, accounts, report, world):
    """An inspector's page, opened while the case was being investigated, had dismissed it after
    another had confirmed it (and reopened a dismissed one). The form says which status it saw; once
    the case has moved on, the move is refused on the case page as it stands, the reason typed kept."""
    number, _ = report
    url = f"/portal/cases/{number}"
    hoa, thanh = _login(app, "hoa"), _login(app, "thanh")
    token = _token(hoa, url)
    assert hoa.post(f"{url}/transition", data={"csrf_token": token, "to": "investigating", "from": "new"}
                    ).status_code == 303
    seen = thanh.get(url).get_data(as_text=True)
    assert '<input type="hidden" name="from" value="investigating">' in seen
    assert hoa.post(f"{url}/transition", data={"csrf_token": token, "to": "confirmed", "from": "investigating",
                                               "text": "Giám định: hàng giả"}).status_code == 303
    stale = thanh.post(f"{url}/transition", data={"csrf_token": csrf_of(seen), "to": "dismissed",
                                                  "from": "investigating", "text": "Người bán có hóa đơn"})
    page = stale.get_data(as_text=True)
    assert stale.status_code == 409 and 'data-status="confirmed"' in page
    assert "Vụ việc này đã được chuyển sang trạng thái khác trong lúc đó" in page and "Đã xác nhận" in page
    assert "Người bán có hóa đơn</textarea>" in page  # what was typed is still there
    # the API says the same to a client that says what it saw
    refused = app.test_client().post(f"/api/v1/cases/{number}/transition", headers=world.auth("authority"),
                                     json={"to": "dismissed", "from": "investigating", "text": "x"})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "BAD_TRANSITION"
    assert "confirmed now" in refused.get_json()["error"]["message"]
