"""The authority's audit trail page, without a browser: who may open it, what it lists (in the
reader's language), its filters and their errors, escaping, and paging by position."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from html import unescape

import pytest

from app.messages import ACTION_TEXT
from registry.audit import ACTIONS, audit
from registry.inspections import InspectionService
from registry.models import Serial
from registry.services import Actor, Role, TokenService

from tests.app.portal_support import client_login, make_user
from tests.conftest import batch_data

URL = "/portal/authority/audit"


@pytest.fixture
def people(session, world):
    for name, role in (("boss", "authority"), ("thanh", "inspector"), ("farm", "producer"), ("ngoc", "partner")):
        make_user(session, name, role, producer_id=world.producer_id if role == "producer" else None)


def _login(app, name: str):
    client = app.test_client()
    assert client_login(client, name).status_code == 303
    return client


def _rows(html: str) -> list[str]:
    """The actions of the listed events, top to bottom."""
    return re.findall(r'<tr data-event="\d+" data-action="([^"]+)"', html)


@pytest.mark.parametrize("name", ["thanh", "farm", "ngoc"])
def test_other_roles_get_the_forbidden_page(app, people, name):
    response = _login(app, name).get(URL)
    assert response.status_code == 403
    assert 'id="audit-events"' not in response.get_data(as_text=True)


def test_nobody_logged_in_is_sent_to_the_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/portal/login" in response.headers["Location"]


def test_the_authority_reads_who_did_what_in_its_language(app, people, world):
    """The demo world's changes and the logins are there, newest first; the menu leads to the page."""
    client = _login(app, "boss")
    _login(app, "thanh")
    html = client.get(URL).get_data(as_text=True)
    actions = _rows(html)
    assert actions[:2] == ["user.login", "user.login"]
    assert {"producer.admit", "key.certify", "user.create"} <= set(actions)
    assert "Nhật ký hoạt động" in html and 'href="/portal/authority/audit"' in html
    assert "Đăng nhập" in html and "Tiếp nhận nhà sản xuất" in html  # action names in Vietnamese
    assert ">user:thanh</a>" in html and ">user:boss</a>" in html
    english = client.get(URL, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Logged in" in english and "Producer admitted" in english


def test_filters_by_who_what_and_on_what(app, people, world, session):
    client = _login(app, "boss")
    _login(app, "thanh")
    by_thanh = client.get(URL + "?actor=user:thanh").get_data(as_text=True)
    assert _rows(by_thanh) == ["user.login"]
    creations = client.get(URL + "?action=user.create").get_data(as_text=True)
    assert _rows(creations) == ["user.create"] * 4
    on_thanh = client.get(URL + "?target=user:thanh").get_data(as_text=True)
    assert sorted(_rows(on_thanh)) == ["user.create", "user.login"]
    # the select keeps the chosen action; the link clears the filters
    assert '<option value="user.create" selected>' in creations and f'href="{URL}">' in creations


def test_days_are_read_in_vietnam_time_both_included(app, people, session):
    late = datetime(2026, 11, 30, 17, 30, tzinfo=timezone.utc)  # 1 December, 00:30 in Vietnam
    audit(session, late, "user:boss", "batch.recall", "08936000010012/L1", reason="x")
    audit(session, late - timedelta(hours=1), "user:boss", "batch.recall", "08936000010012/L0", reason="y")
    session.commit()
    client = _login(app, "boss")
    html = client.get(URL + "?action=batch.recall&from=2026-12-01&until=2026-12-01").get_data(as_text=True)
    assert _rows(html) == ["batch.recall"] and "08936000010012/L1" in html and "/L0<" not in html
    earlier = client.get(URL + "?action=batch.recall&until=2026-11-30").get_data(as_text=True)
    assert "08936000010012/L0" in earlier and "08936000010012/L1<" not in earlier


@pytest.mark.parametrize("query,field,message", [
    ("from=2026-13-01", "from", "Không phải ngày"),
    ("until=yesterday", "until", "Không phải ngày"),
    ("from=2026-12-05&until=2026-12-01", "until", "Ngày cuối ở trước ngày đầu"),
    ("action=batch.delete", "action", "Không phải thao tác"),
    ("target=" + "x" * 201, "target", "Nội dung quá dài"),
])
def test_a_filter_that_cannot_be_used_is_marked_and_the_others_still_apply(app, people, query, field, message):
    client = _login(app, "boss")
    response = client.get(f"{URL}?actor=user:boss&{query}")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'id="f-{field}-error"' in html and message in html
    assert _rows(html) == ["user.login"]  # who acted still filters


def test_details_are_shown_and_escaped(app, people, session, world, registry):
    """What people write (a clearance's note) reaches the page as text, never as markup."""
    gtin, lot = _a_batch(registry, world)
    registry.issue_serials(Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="token:1"), gtin, lot, 1)
    session.commit()
    unit = session.query(Serial).one()
    unit.flagged = "SERIAL_CLONED"
    session.commit()
    InspectionService(session).clear_flag(Actor(role=Role.INSPECTOR, name="user:thanh"), gtin, lot,
                                          unit.serial, note='<script>alert("x")</script> shop display unit')
    session.commit()
    html = _login(app, "boss").get(URL + "?action=serial.flag_clear").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; shop display unit" in html
    assert "<dt>Lý do</dt><dd>SERIAL_CLONED</dd>" in html and "Gỡ cờ nghi sao chép" in html


def test_details_are_named_in_the_pages_language_with_times_in_vietnam_time(app, people, session):
    """The details' names and the values the registry writes as codes are the page's words; a time
    is Vietnam's, as the list's own; a signed record is folded (they had been raw keys, UTC and a
    whole JSON record)."""
    at = datetime(2026, 12, 6, 13, 50, tzinfo=timezone.utc)
    audit(session, at, "user:farm", "user.login_failed", "user:farm", failures=5, locked_until="2026-12-06T14:05:00Z")
    audit(session, at, "user:farm", "user.login_refused", "user:farm", reason="locked")
    audit(session, at, "user:boss", "token.create", "token:9", role="partner", expires_at="2027-01-01T00:00:00Z")
    audit(session, at, "user:boss", "publication.withdraw", "publication:3",
          record={"t": "publication-withdrawal", "id": 3, "reason": "decision annulled", "sig": {"kid": "k" * 43}})
    session.commit()
    html = _login(app, "boss").get(URL).get_data(as_text=True)
    assert "<dt>Số lần đăng nhập sai</dt><dd>5</dd>" in html
    assert re.search(r"<dt>Bị khóa đến</dt><dd><time[^>]*>06/12/2026 21:05</time>", html)
    assert "<dt>Lý do</dt><dd>tài khoản đã bị khóa</dd>" in html
    assert "<dt>Vai trò</dt><dd>" in html and "locked_until" not in html.split('id="audit-events"')[1]
    assert re.search(r"<dt>Bản ghi đã ký</dt><dd><details><summary>[^<]+</summary><pre", html)
    english = _login(app, "boss").get(URL, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "<dt>Failed attempts</dt><dd>5</dd>" in english and "<dt>Reason</dt><dd>the account was locked</dd>" in english


def test_verdicts_in_the_details_are_the_verdicts_words(app, people, session):
    """An inspection check's verdicts had shown as codes ('unknown', 'genuine') under an untranslated
    'offline_verdict'."""
    at = datetime(2026, 12, 6, 13, 50, tzinfo=timezone.utc)
    audit(session, at, "user:lan", "inspection.check", "inspection:4", check=9, verdict="recalled", offline=True,
          offline_verdict="genuine")
    session.commit()
    html = _login(app, "boss").get(URL).get_data(as_text=True)
    assert "<dt>Kết quả</dt><dd>Đã bị thu hồi</dd>" in html or "<dd>Đã bị thu hồi</dd>" in html
    assert "<dt>Kết quả trên điện thoại, ngoại tuyến</dt><dd>Hàng thật</dd>" in html
    english = _login(app, "boss").get(URL, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "<dt>Verdict on the phone, offline</dt><dd>Genuine</dd>" in english and "<dd>Recalled</dd>" in english


def test_a_token_actor_shows_its_label_escaped(app, people, session):
    _, token = TokenService(session).create(role=Role.PARTNER, label="Đồng bộ <b>ERP</b>")
    audit(session, datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc), f"token:{token.id}", "user.unlock", "user:binh")
    session.commit()
    html = _login(app, "boss").get(URL + f"?actor=token:{token.id}").get_data(as_text=True)
    assert f'>token:{token.id}</a> <span class="small actor-label">Đồng bộ &lt;b&gt;ERP&lt;/b&gt;</span>' in html


def _a_batch(registry, world) -> tuple[str, str]:
    batch = registry.register_batch(Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="token:1"),
                                    batch_data(lot="AUDIT-1"))
    return batch.gtin, batch.lot


def test_pages_of_fifty_by_position_keep_the_filters(app, people, session):
    start = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)
    for i in range(60):
        audit(session, start + timedelta(minutes=i), "user:boss", "case.note", f"VN-2026-{i:06d}", note=i)
    session.commit()
    client = _login(app, "boss")
    first = client.get(URL + "?action=case.note").get_data(as_text=True)
    assert len(_rows(first)) == 50 and "VN-2026-000059" in first and "VN-2026-000010<" in first and "VN-2026-000009<" not in first
    older = unescape(re.search(r'<a href="([^"]+)" rel="next">', first).group(1))
    assert "action=case.note" in older and "before=" in older
    audit(session, start + timedelta(hours=2), "user:boss", "case.note", "VN-2026-000999", note=999)
    session.commit()  # written while the reader looks at the first page: the second does not shift
    second = client.get(older).get_data(as_text=True)
    targets = re.findall(r"VN-2026-(\d{6})</a>", second)
    assert targets == [f"{i:06d}" for i in range(9, -1, -1)]
    assert 'rel="next"' not in second and f'href="{URL}?action=case.note">' in second  # back to the newest
    assert client.get(URL + "?before=x").status_code == 200  # a cursor that is no id: the newest page
    assert client.get(URL + "?before=99999999999999999999").status_code == 200


def test_the_filter_form_needs_no_csrf_token_and_changes_nothing(app, people, session):
    """A GET form: reading the trail writes nothing to it (beyond the login)."""
    client = _login(app, "boss")
    before = len(_rows(client.get(URL + "?actor=user:boss").get_data(as_text=True)))
    client.get(URL + "?actor=user:boss&action=user.login")
    after = len(_rows(client.get(URL + "?actor=user:boss").get_data(as_text=True)))
    assert before == after == 1


def test_every_action_has_its_name_in_the_catalogue():
    assert list(ACTION_TEXT) == list(ACTIONS)


def test_a_cases_statuses_and_a_publications_kind_are_in_the_pages_words(app, people, session):
    """The Vietnamese trail had read "Từ trạng thái confirmed / Sang trạng thái dismissed" and
    "Loại violator": the registry's words, not the page's."""
    at = datetime(2026, 12, 6, 13, 50, tzinfo=timezone.utc)
    audit(session, at, "user:lan", "case.transition", "VN-2026-000001", status_from="confirmed",
          status_to="dismissed")
    audit(session, at, "user:boss", "publication.publish", "7", kind="warning", log_index=12)
    audit(session, at, "user:lan", "serials.issue", "08936000010010/LOT-1", count=20000)
    session.commit()
    html = _login(app, "boss").get(URL).get_data(as_text=True)
    assert "<dt>Từ trạng thái</dt><dd>Đã xác nhận hàng giả</dd>" in html
    assert "<dd>Đã bác bỏ</dd>" in html and "<dd>Cảnh báo người tiêu dùng</dd>" in html
    assert ">confirmed<" not in html and ">warning<" not in html
    assert "<dt>Số lượng</dt><dd>20.000</dd>" in html  # a count, grouped
    english = _login(app, "boss").get(URL, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "<dt>From status</dt><dd>Confirmed counterfeit</dd>" in english and "<dd>Consumer warning</dd>" in english
