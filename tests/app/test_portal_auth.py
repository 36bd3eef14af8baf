"""Portal accounts and authorisation, through the Flask test client with CSRF on (as in production)."""

from __future__ import annotations

import re

import pytest

from app import create_app
from app.cli import init_instance
from registry.accounts import AccountService
from registry.models import AuditEvent, Batch, ProducerKey, User
from registry.services import SYSTEM

from tests.app.portal_support import PASSWORD, client_login, csrf_of, make_user
from tests.conftest import TEST_PASSPHRASE, batch_data

OTHER_GTIN = "08936000020019"  # company part starts with 893600002


@pytest.fixture
def people(session, world):
    make_user(session, "producer1", "producer", world.producer_id)
    make_user(session, "boss", "authority")
    make_user(session, "inspector1", "inspector")
    make_user(session, "partner1", "partner")
    return world


@pytest.fixture
def other_batch(registry, session, people):
    """A second producer with a batch of its own."""
    other = registry.admit_producer(SYSTEM, name="HTX Khác", tax_code="0399999999", gs1_prefixes=["893600002"],
                                    country="VN")
    registry.certify_key(SYSTEM, other.id)
    registry.register_batch(SYSTEM, batch_data(gtin=OTHER_GTIN, lot="THEIRS-1"), producer_id=other.id)
    session.commit()
    return other.id


def _post(client, path, data=None, page=None):
    """POST a portal form with the CSRF token of ``page`` (default: the path itself)."""
    token = csrf_of(client.get(page or "/portal/account").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **(data or {})})


# -- login, logout, sessions -----------------------------------------------------------------------

def test_anonymous_is_sent_to_the_login_page(client):
    response = client.get("/portal/producer/")
    assert response.status_code == 302
    assert response.location.startswith("/portal/login?next=/portal/producer/")


def test_login_sends_each_role_home_and_logout_ends_the_session(client, people):
    homes = {"producer1": "/portal/producer/", "boss": "/portal/authority/", "partner1": "/portal/partner/"}
    for username, home in homes.items():
        response = client_login(client, username)
        assert response.status_code == 303
        assert client.get(response.location).location in (home, None)
        assert client.get(home).status_code == 200
        page = client.get(home).get_data(as_text=True)
        assert f">{username}<" in page  # who is logged in
        logout = client.post("/portal/logout", data={"csrf_token": csrf_of(page)})
        assert logout.status_code == 303
        assert client.get(home).status_code == 302


def test_login_goes_back_to_a_batch_whose_lot_holds_an_encoded_question_mark(client, people, registry, session):
    """A lot may hold '?', '/' and '%' (GS1's character set 82), encoded in its page's address: the
    login had sent the producer to the decoded address, another page ("not found")."""
    from tests.conftest import GTIN

    producer_id = session.query(User).filter_by(username="producer1").one().producer_id
    registry.register_batch(SYSTEM, batch_data(lot="A?B%2"), producer_id=producer_id)
    session.commit()
    page = f"/portal/producer/batches/{GTIN}/A%3FB%252"
    asked = client.get(page)
    assert asked.status_code == 302 and "next=" in asked.location
    form = client.get(asked.location).get_data(as_text=True)
    kept = re.search(r'name="next" value="([^"]*)"', form).group(1)
    done = client.post("/portal/login", data={"csrf_token": csrf_of(form), "username": "producer1",
                                              "password": PASSWORD, "next": kept})
    assert done.status_code == 303 and done.location == page
    assert client.get(done.location).status_code == 200


def test_login_goes_back_to_the_page_asked_for_but_never_elsewhere(client, people):
    token = csrf_of(client.get("/portal/login").get_data(as_text=True))
    ok = client.post("/portal/login", data={"csrf_token": token, "username": "producer1", "password": PASSWORD,
                                            "next": "/portal/producer/import"})
    assert ok.location == "/portal/producer/import"
    client.post("/portal/logout", data={"csrf_token": csrf_of(client.get("/portal/account").get_data(as_text=True))})
    token = csrf_of(client.get("/portal/login").get_data(as_text=True))
    evil = client.post("/portal/login", data={"csrf_token": token, "username": "producer1", "password": PASSWORD,
                                              "next": "https://evil.example/portal"})
    assert evil.location == "/portal/producer/"
    client.post("/portal/logout", data={"csrf_token": csrf_of(client.get("/portal/account").get_data(as_text=True))})
    token = csrf_of(client.get("/portal/login").get_data(as_text=True))
    split = client.post("/portal/login", data={"csrf_token": token, "username": "producer1", "password": PASSWORD,
                                               "next": "/portal/producer/\r\nSet-Cookie: x=1"})
    assert split.status_code == 303 and split.location == "/portal/producer/"


def test_the_session_cookie_is_httponly_and_lax_and_the_session_is_fresh(client, people):
    before = client.get("/portal/login")
    response = client_login(client, "producer1")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert before.status_code == 200
    with client.session_transaction() as sess:
        assert isinstance(sess["portal_uid"], int) and len(sess["portal_nonce"]) >= 16
        first_nonce = sess["portal_nonce"]
    client_login(client, "producer1")
    with client.session_transaction() as sess:
        assert sess["portal_nonce"] != first_nonce  # a new nonce on every login


def test_wrong_password_is_refused_and_counted(client, people, session):
    response = client_login(client, "producer1", "not the password", **{"Accept-Language": "en"})
    assert response.status_code == 401
    assert "The username or the password is wrong." in response.get_data(as_text=True)
    session.expire_all()
    assert session.query(User).filter_by(username="producer1").one().failed_logins == 1
    assert session.query(AuditEvent).filter_by(action="user.login_failed").count() == 1
    session.rollback()


def test_five_failures_lock_the_account(client, people, session):
    for _ in range(5):
        assert client_login(client, "producer1", "wrong password!").status_code == 401
    locked = client_login(client, "producer1", PASSWORD, **{"Accept-Language": "en"})
    assert locked.status_code == 401
    assert "locked" in locked.get_data(as_text=True)
    session.expire_all()
    assert session.query(User).filter_by(username="producer1").one().locked_until is not None
    session.rollback()  # end the read: on SQLite every transaction holds the write lock
    assert client.get("/portal/producer/").status_code == 302  # still not logged in
    # the authority unlocks it from the portal
    other = client.application.test_client()
    client_login(other, "boss")
    users = other.get("/portal/authority/users").get_data(as_text=True)
    assert 'action="/portal/authority/users/producer1/unlock"' in users
    assert other.post("/portal/authority/users/producer1/unlock",
                      data={"csrf_token": csrf_of(users)}).status_code == 303
    assert client_login(client, "producer1").status_code == 303


def test_the_authority_sets_a_new_password_for_an_account_whose_owner_forgot_it(client, people, session):
    """There had been no way to: the portal, the API and the command line could only unlock. The
    owner's open sessions end, a lock-out is lifted, the new password logs in, the old one does not;
    a too-short one is refused and changes nothing; the authority's own row offers no reset (its
    own is changed with the current password)."""
    for _ in range(5):
        client_login(client, "producer1", "wrong password!")
    owner_elsewhere = client.application.test_client()
    boss = client.application.test_client()
    client_login(boss, "boss")
    users = boss.get("/portal/authority/users", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'action="/portal/authority/users/producer1/password"' in users
    assert 'action="/portal/authority/users/boss/password"' not in users
    short = boss.post("/portal/authority/users/producer1/password",
                      data={"csrf_token": csrf_of(users), "password": "short"}, headers={"Accept-Language": "en"})
    assert short.status_code == 303
    said = boss.get("/portal/authority/users", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "producer1: A password needs at least 10 characters." in said
    assert client_login(owner_elsewhere, "producer1", PASSWORD).status_code == 401  # still locked, unchanged
    done = boss.post("/portal/authority/users/producer1/password",
                     data={"csrf_token": csrf_of(users), "password": "a fresh secret 2026"})
    assert done.status_code == 303
    assert "mật khẩu mới" in boss.get("/portal/authority/users").get_data(as_text=True)
    assert client_login(client, "producer1", PASSWORD).status_code == 401
    assert client_login(client, "producer1", "a fresh secret 2026").status_code == 303
    assert client.get("/portal/producer/").status_code == 200
    own = boss.post("/portal/authority/users/boss/password", data={"csrf_token": csrf_of(users),
                                                                   "password": "another secret 2026"})
    assert own.status_code == 303 and client_login(client.application.test_client(), "boss").status_code == 303
    session.expire_all()
    assert session.query(AuditEvent).filter_by(action="user.password_reset", target="user:producer1").count() == 1
    session.rollback()


def _the_authority_posts(client, path: str, **form) -> None:
    """The authority, in a browser of its own, sends an accounts page's form."""
    boss = client.application.test_client()
    client_login(boss, "boss")
    page = boss.get("/portal/authority/users").get_data(as_text=True)
    assert boss.post(path, data={"csrf_token": csrf_of(page), **form}).status_code == 303


def test_a_password_reset_logs_the_owners_open_session_out(client, people):
    client_login(client, "producer1")
    assert client.get("/portal/producer/").status_code == 200
    _the_authority_posts(client, "/portal/authority/users/producer1/password", password="a fresh secret 2026")
    assert client.get("/portal/producer/").status_code == 302


def test_a_deactivated_account_is_logged_out_at_its_next_click(client, people):
    client_login(client, "producer1")
    assert client.get("/portal/producer/").status_code == 200
    _the_authority_posts(client, "/portal/authority/users/producer1/deactivate")
    response = client.get("/portal/producer/")
    assert response.status_code == 302 and "notice=inactive" in response.location
    assert client_login(client, "producer1").status_code == 401


def test_changing_the_password_ends_the_users_other_sessions_but_not_this_one(client, people):
    """Someone who fears a session left open elsewhere (a shared computer, a stolen phone)
    changes the password: that other session is logged out at its next click."""
    client_login(client, "producer1")
    elsewhere = client.application.test_client()
    client_login(elsewhere, "producer1")
    assert elsewhere.get("/portal/producer/").status_code == 200
    changed = _post(client, "/portal/account", {"old_password": PASSWORD, "new_password": "a brand new secret",
                                                "new_password_again": "a brand new secret"})
    # to the page by GET, which says so: reloading the answer to the post had sent the old password
    # again, a failed attempt counting towards the lock-out
    assert changed.status_code == 303 and changed.location.endswith("/portal/account")
    assert "Mật khẩu của bạn đã được đổi." in client.get("/portal/account").get_data(as_text=True)
    assert client.get("/portal/producer/").status_code == 200  # the session that changed it goes on
    response = elsewhere.get("/portal/producer/")
    assert response.status_code == 302 and "notice=password" in response.location
    page = elsewhere.get(response.location).get_data(as_text=True)
    assert "Mật khẩu của tài khoản này đã được thay đổi" in page
    assert client_login(elsewhere, "producer1", "a brand new secret").status_code == 303


def test_a_copy_of_the_session_cookie_is_worth_nothing_after_logout(app, client, people, session):
    """Logging out must end the session on the server: the cookie is signed, not stored, so a copy
    taken before (a shared computer, a stolen cookie) would otherwise keep every right."""
    client_login(client, "producer1")
    keys_page = client.get("/portal/producer/keys").get_data(as_text=True)
    copied = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/portal/producer/").status_code == 200
    assert client.post("/portal/logout", data={"csrf_token": csrf_of(keys_page)}).status_code == 303
    replayed = thief.get("/portal/producer/")
    assert replayed.status_code == 302 and "notice=logged_out" in replayed.location
    assert "mọi phiên đăng nhập của nó trên mọi thiết bị" in thief.get(replayed.location).get_data(as_text=True)
    keys_before = session.query(ProducerKey).filter_by(producer_id=people.producer_id).count()
    session.rollback()
    thief.set_cookie("session", copied)
    rotate = thief.post("/portal/producer/keys/rotate", data={"csrf_token": csrf_of(keys_page)})
    assert rotate.status_code == 302 and rotate.location.startswith("/portal/login")
    assert session.query(ProducerKey).filter_by(producer_id=people.producer_id).count() == keys_before
    session.rollback()
    assert client_login(client, "producer1").status_code == 303  # a new login is a new session
    assert client.get("/portal/producer/").status_code == 200


def test_a_session_ends_twelve_hours_after_its_login_however_busy(client, people):
    client_login(client, "producer1")
    assert client.get("/portal/producer/").status_code == 200
    with client.session_transaction() as sess:  # the clock moves on: the login was 12 hours ago
        sess["portal_since"] -= 12 * 3600 - 60
    assert client.get("/portal/producer/").status_code == 200
    with client.session_transaction() as sess:
        sess["portal_since"] -= 120
    response = client.get("/portal/producer/")
    assert response.status_code == 302 and "notice=expired" in response.location
    assert "Phiên đăng nhập của bạn đã hết hạn" in client.get(response.location).get_data(as_text=True)
    assert client.get("/portal/producer/").status_code == 302


def test_wrong_current_passwords_on_the_account_page_lock_the_account_and_end_the_session(client, people, session):
    """A session holder must not guess the password on the change form more often than at login;
    the guess that locks the account also ends its sessions, this one included."""
    client_login(client, "producer1")
    other_device = client.application.test_client()
    client_login(other_device, "producer1")
    change = {"new_password": "a brand new secret", "new_password_again": "a brand new secret"}
    for _ in range(4):
        wrong = _post(client, "/portal/account", {"old_password": "a wrong guess", **change})
        assert wrong.status_code == 422 and "Mật khẩu hiện tại không đúng" in wrong.get_data(as_text=True)
    locking = _post(client, "/portal/account", {"old_password": "a wrong guess", **change})
    assert locking.status_code == 303 and "notice=locked" in locking.location
    assert "tài khoản bị khóa 15 phút và các phiên đăng nhập đã kết thúc" in client.get(
        locking.location).get_data(as_text=True)
    for browser in (client, other_device):
        ended = browser.get("/portal/account")
        assert ended.status_code == 302 and "/portal/login" in ended.location
    user = session.query(User).filter_by(username="producer1").one()
    assert user.locked_until is not None and AccountService(session)._verify(user.password_hash, PASSWORD)
    assert [e.detail["failures"] for e in session.query(AuditEvent).filter_by(action="user.login_failed")
            .order_by(AuditEvent.id)] == [1, 2, 3, 4, 5]
    session.rollback()
    elsewhere = client.application.test_client()
    locked = client_login(elsewhere, "producer1", PASSWORD)
    assert locked.status_code == 401 and "tài khoản bị khóa" in locked.get_data(as_text=True)
    assert elsewhere.get("/portal/producer/").status_code == 302


def test_a_token_cannot_mint_a_longer_lived_token_nor_survive_its_revocation(client, people):
    authority = people.auth("authority")
    day = client.post("/api/v1/tokens", json={"role": "producer", "producer_id": people.producer_id, "days": 1},
                      headers=authority).get_json()
    minted = client.post("/api/v1/tokens", json={"role": "producer", "days": 730},
                         headers={"Authorization": f"Bearer {day['token']}"})
    assert minted.status_code == 201
    assert minted.get_json()["expires_at"] == day["expires_at"]  # cut short to its maker's, as the answer says
    by_minted = {"Authorization": f"Bearer {minted.get_json()['token']}"}
    assert client.get("/api/v1/tokens", headers=by_minted).status_code == 200
    assert client.delete(f"/api/v1/tokens/{day['id']}", headers=authority).status_code == 200
    refused = client.get("/api/v1/tokens", headers=by_minted)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "TOKEN_INVALID"
    listed = {t["id"]: t for t in client.get("/api/v1/tokens", headers=authority).get_json()["items"]}
    assert listed[minted.get_json()["id"]]["revoked_at"] is not None


def test_deactivating_a_person_revokes_the_api_tokens_they_created(client, people):
    client_login(client, "producer1")
    page = client.get("/portal/producer/tokens").get_data(as_text=True)
    created = client.post("/portal/producer/tokens", data={"csrf_token": csrf_of(page), "label": "erp", "days": "30"},
                          follow_redirects=True)
    token = re.search(r'id="token-value">([^<]+)<', created.get_data(as_text=True)).group(1)
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/tokens", headers=bearer).status_code == 200
    boss = client.application.test_client()
    client_login(boss, "boss")
    users = boss.get("/portal/authority/users").get_data(as_text=True)
    assert boss.post("/portal/authority/users/producer1/deactivate",
                     data={"csrf_token": csrf_of(users)}).status_code == 303
    assert client.get("/api/v1/tokens", headers=bearer).status_code == 401
    assert client.get("/api/v1/tokens", headers=people.auth("producer")).status_code == 200  # not theirs: kept


def test_a_password_reset_by_the_registry_ends_the_users_sessions(client, people, session):
    client_login(client, "inspector1")
    assert client.get("/portal/inspector/").status_code == 200
    AccountService(session).change_password(SYSTEM, "inspector1", old_password=None,
                                            new_password="reset by the registry")
    session.commit()
    response = client.get("/portal/inspector/")
    assert response.status_code == 302 and "notice=password" in response.location


def test_the_batch_form_marks_every_bad_field(client, people):
    client_login(client, "producer1")
    form = {"gtin": "12345", "lot": "LOT~1", "product.name": "", "facility.name": "Xưởng",
            "production_date": "2026-01-05", "expiry_date": "2025-01-05", "quantity": "3"}
    response = _post(client, "/portal/producer/batches/new", form, page="/portal/producer/batches/new")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    marked = set(re.findall(r'id="f-([\w-]+)"[^>]*aria-invalid="true"', html))
    assert marked == {"gtin", "lot", "product-name", "expiry_date"}, marked


def test_login_posts_are_rate_limited(tmp_path):
    application = create_app({"INSTANCE_DIR": str(tmp_path), "KEY_PASSPHRASE": TEST_PASSPHRASE,
                              "SECRET_KEY": "t" * 32, "SCAN_SALT": "s", "RATE_LIMITS": "on",
                              "DATABASE_URL": f"sqlite:///{tmp_path}/r.db"})
    init_instance(application)
    application.config["LOGIN_RATE_LIMIT"] = "3/minute"
    client = application.test_client()
    statuses = [client_login(client, "nobody", "wrong password").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert client.get("/portal/login").status_code == 200  # only the POSTs are limited
    application.extensions["engine"].dispose()


# -- CSRF ------------------------------------------------------------------------------------------

def test_every_portal_form_needs_the_csrf_token(app, client, people):
    assert app.config["TESTING"] and app.config.get("WTF_CSRF_ENABLED", True)
    no_token = client.post("/portal/login", data={"username": "producer1", "password": PASSWORD})
    # refused: back to the login form (the page left open too long), nobody logged in
    assert no_token.status_code == 302 and no_token.location.startswith("/portal/login?")
    with client.session_transaction() as sess:
        assert "portal_uid" not in sess
    client_login(client, "producer1")
    for path, data in (("/portal/producer/batches/new", batch_data() | {"product.name": "x"}),
                       ("/portal/producer/tokens", {"label": "x", "days": "5"}),
                       ("/portal/producer/keys/rotate", {}),
                       ("/portal/logout", {})):
        response = client.post(path, data=data, headers={"Accept": "text/html"})
        assert response.status_code == 400, path
    bad = client.post("/portal/producer/tokens", data={"csrf_token": "forged", "label": "x", "days": "5"})
    assert bad.status_code == 400
    assert client.get("/portal/producer/").status_code == 200  # still logged in: logout was refused too


# -- roles and owners -----------------------------------------------------------------------------

@pytest.mark.parametrize("username, path", [
    ("producer1", "/portal/authority/"),
    ("producer1", "/portal/authority/users"),
    ("producer1", "/portal/authority/keys"),
    ("producer1", "/portal/partner/"),
    ("producer1", "/portal/exports/batches.csv"),
    ("partner1", "/portal/producer/"),
    ("partner1", "/portal/producer/import"),
    ("partner1", "/portal/authority/publications"),
    ("inspector1", "/portal/authority/users"),
    ("inspector1", "/portal/producer/tokens"),
])
def test_wrong_role_gets_the_403_page(client, people, username, path):
    client_login(client, username)
    response = client.get(path, headers={"Accept-Language": "en"})
    assert response.status_code == 403
    assert "Not allowed" in response.get_data(as_text=True)


def test_the_authority_admits_a_producer_choosing_its_country_by_name(client, people, session):
    """As on the batch form: a two-letter field took "Vi" (the US Virgin Islands) for Việt Nam."""
    import re

    from registry.models import Producer

    client_login(client, "boss")
    page = client.get("/portal/authority/").get_data(as_text=True)
    select = re.search(r'<select id="f-country" name="country".*?</select>', page, re.S).group(0)
    options = re.findall(r'<option value="(\w*)"( selected)?>([^<]*)</option>', select)
    assert options[0] == ("VN", " selected", "Việt Nam") and len(options) == 249  # required: no empty choice
    assert ("VI", "", "Quần đảo Virgin thuộc Hoa Kỳ") in options
    response = _post(client, "/portal/authority/", {"name": "Kyoto Tea", "tax_code": "0399999998",
                                                    "gs1_prefixes": "893600009", "country": "JP"}, page="/portal/authority/")
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    assert session.query(Producer).filter(Producer.tax_code == "0399999998").one().country == "JP"


def test_a_key_with_every_prefix_unticked_is_refused_not_certified_for_all(client, people, session):
    """Unticked boxes send nothing: the key had been certified for all the producer's prefixes."""
    client_login(client, "boss")
    page = f"/portal/authority/producers/{people.producer_id}"
    keys = session.query(ProducerKey).count()
    session.rollback()  # SQLite: the app writes next
    response = _post(client, f"{page}/keys", {"public_key": "", "not_after": ""}, page=page)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<p class="field-error">Chọn ít nhất một mã doanh nghiệp GS1 cho khóa.</p>' in html
    assert re.search(r'<input type="checkbox" name="gs1_prefixes" value="893600001"\s*>', html)  # left unticked
    session.expire_all()
    assert session.query(ProducerKey).count() == keys
    session.rollback()
    done = _post(client, f"{page}/keys", {"gs1_prefixes": "893600001"}, page=page)
    assert done.status_code == 303
    session.expire_all()
    assert session.query(ProducerKey).count() == keys + 1


def test_a_tax_code_that_is_no_vietnamese_tax_code_is_marked_beside_its_field(client, people, session):
    from registry.models import Producer

    client_login(client, "boss")
    response = _post(client, "/portal/authority/", {"name": "Trà", "tax_code": "abc", "gs1_prefixes": "893600009",
                                                    "country": "VN"}, page="/portal/authority/")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'aria-describedby="f-tax_code-error"' in html and "Mã số thuế Việt Nam gồm 10 chữ số" in html
    session.expire_all()
    assert session.query(Producer).filter(Producer.name == "Trà").count() == 0


def test_the_admission_form_sent_empty_marks_every_field(client, people):
    """Name, tax code and prefixes all missing: each is marked at once (only the name had been)."""
    client_login(client, "boss")
    response = _post(client, "/portal/authority/", {"name": "", "tax_code": "", "gs1_prefixes": "",
                                                    "country": "VN"}, page="/portal/authority/")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for field in ("name", "tax_code"):
        assert f'aria-describedby="f-{field}-error"' in html, field
    # the prefixes' field is described by its error, then by its hint (the form's own example)
    assert 'aria-describedby="f-gs1_prefixes-error f-gs1_prefixes-hint"' in html and 'id="f-gs1_prefixes-hint"' in html
    bad = _post(client, "/portal/authority/", {"name": "Trà", "tax_code": "abc", "gs1_prefixes": "89",
                                               "country": "VN"}, page="/portal/authority/").get_data(as_text=True)
    assert 'aria-describedby="f-tax_code-error"' in bad
    assert 'aria-describedby="f-gs1_prefixes-error f-gs1_prefixes-hint"' in bad


def test_the_publication_and_account_forms_mark_every_field_at_fault(client, people, session):
    """A violator with no title, no name and no decision; an account with a bad username and a short
    password: each field is marked at once (only the first had been)."""
    from registry.models import Publication, User

    client_login(client, "boss")
    page = "/portal/authority/publications"
    published = _post(client, page, {"kind": "violator", "title": "", "name": "", "decision_ref": ""}, page=page)
    html = published.get_data(as_text=True)
    assert published.status_code == 422
    for field in ("title", "name", "decision_ref"):
        assert f'aria-describedby="f-{field}-error"' in html, field
    page = "/portal/authority/users"
    created = _post(client, page, {"username": "new prod!", "password": "abc", "role": "inspector",
                                   "display_name": "", "producer_id": ""}, page=page)
    html = created.get_data(as_text=True)
    assert created.status_code == 422
    for field in ("username", "password"):
        assert f'aria-describedby="f-{field}-error"' in html, field
    session.expire_all()
    assert session.query(Publication).count() == 0 and session.query(User).filter_by(username="new prod!").count() == 0


def test_revoking_a_key_from_a_time_to_come_says_the_date_cannot_be_in_the_future(client, people, session):
    client_login(client, "boss")
    response = _post(client, f"/portal/authority/keys/{people.kid}/revoke", {"compromised_at": "2999-01-01T00:00"},
                     page="/portal/authority/keys")
    assert response.status_code == 303
    keys_page = client.get("/portal/authority/keys").get_data(as_text=True)
    assert f"{people.kid}: Ngày không thể ở trong tương lai." in keys_page
    session.expire_all()
    assert session.get(ProducerKey, people.kid).status == "active"


def test_wrong_role_cannot_write_either(client, people, session):
    client_login(client, "producer1")
    response = _post(client, "/portal/authority/", {"name": "Sneaky", "tax_code": "1", "gs1_prefixes": "893600009",
                                                    "country": "VN"})
    assert response.status_code == 403
    response = _post(client, f"/portal/authority/keys/{people.kid}/revoke", {})
    assert response.status_code == 403
    session.expire_all()
    assert session.query(AuditEvent).filter(AuditEvent.actor == "user:producer1",
                                            AuditEvent.action.in_(["producer.admit", "key.revoke"])).count() == 0


def test_a_producer_cannot_see_another_producers_batches(client, people, other_batch):
    client_login(client, "producer1")
    for path in (f"/portal/producer/batches/{OTHER_GTIN}/THEIRS-1",
                 f"/portal/producer/batches/{OTHER_GTIN}/THEIRS-1/labels.pdf",
                 f"/portal/producer/batches/{OTHER_GTIN}/THEIRS-1/label.png",
                 f"/portal/producer/?producer={other_batch}",
                 f"/portal/producer/keys?producer={other_batch}",
                 f"/portal/producer/tokens?producer={other_batch}"):
        assert client.get(path).status_code == 403, path
    own = client.get("/portal/producer/").get_data(as_text=True)
    assert "THEIRS-1" not in own


def test_a_producer_cannot_change_another_producers_batch(client, people, other_batch, session):
    client_login(client, "producer1")
    base = f"/portal/producer/batches/{OTHER_GTIN}/THEIRS-1"
    assert _post(client, base + "/serials", {"count": "5"}).status_code == 403
    assert _post(client, base + "/recall", {"reason": "sabotage"}).status_code == 403
    assert _post(client, f"/portal/producer/keys/rotate?producer={other_batch}").status_code == 403
    assert _post(client, f"/portal/producer/batches/new?producer={other_batch}",
                 {"gtin": OTHER_GTIN, "lot": "MINE"}).status_code == 403
    session.expire_all()
    batch = session.query(Batch).filter_by(lot="THEIRS-1").one()
    assert batch.serial_count == 0 and batch.status == "active"
    assert session.query(Batch).filter_by(lot="MINE").count() == 0


def test_the_authority_may_open_any_producers_pages(client, people, other_batch):
    client_login(client, "boss")
    assert client.get(f"/portal/producer/?producer={other_batch}").status_code == 200
    page = client.get(f"/portal/producer/batches/{OTHER_GTIN}/THEIRS-1")
    assert page.status_code == 200 and "THEIRS-1" in page.get_data(as_text=True)


def test_nav_shows_only_the_roles_links(client, people):
    client_login(client, "producer1")
    nav = re.search(r'<nav class="portal-nav".*?</nav>', client.get("/portal/producer/").get_data(as_text=True),
                    re.S).group(0)
    assert "/portal/producer/import" in nav and "/portal/authority" not in nav
    client_login(client, "partner1")
    nav = re.search(r'<nav class="portal-nav".*?</nav>', client.get("/portal/partner/").get_data(as_text=True),
                    re.S).group(0)
    assert "/portal/exports" not in nav and "/portal/partner/" in nav and "/portal/producer" not in nav


def test_the_partner_page_says_how_many_events_a_download_holds(client, people):
    client_login(client, "partner1")
    page = client.get("/portal/partner/").get_data(as_text=True)
    assert "tối đa 100.000 sự kiện" in page  # Vietnamese first, with its own number format
    english = client.get("/portal/partner/?lang=en").get_data(as_text=True)
    assert "at most 100,000 events" in english


def test_a_partners_download_opens_in_a_spreadsheet_with_its_vietnamese(client, people, registry, session):
    """The portal's CSV starts with a BOM (Excel reads UTF-8 without one as Windows-1252), the same
    rows as the API's copy, which programs read and which has none."""
    import csv
    import io

    registry.register_batch(SYSTEM, batch_data(product={"name": "Cà phê Cầu Đất"}), producer_id=people.producer_id)
    session.commit()
    client_login(client, "partner1")
    download = client.get("/portal/exports/batches.csv")
    assert download.status_code == 200 and download.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(download.data.decode("utf-8-sig"))))
    assert rows[0][0] == "gtin" and ["Cà phê Cầu Đất"] == [cell for row in rows[1:] for cell in row if "Cà" in cell]
    api = client.get("/api/v1/exports/batches.csv", headers=people.auth("partner"))  # a program's copy
    assert api.status_code == 200 and not api.data.startswith(b"\xef\xbb\xbf")
    assert list(csv.reader(io.StringIO(api.data.decode("utf-8")))) == rows


def test_my_account_names_the_role_and_the_producer_in_the_pages_language(client, people, registry):
    client_login(client, "producer1")
    page = client.get("/portal/account").get_data(as_text=True)
    producer = registry.producer(people.producer_id)
    assert re.search(r"<dd>\s*Nhân viên nhà sản xuất\s*</dd>", page)  # "Producer staff", not "producer"
    assert f"<dd>{producer.name}</dd>" in page and producer.id not in page


def test_a_token_refused_on_the_server_keeps_what_was_typed(client, people, session):
    client_login(client, "producer1")
    token = csrf_of(client.get("/portal/producer/tokens").get_data(as_text=True))
    refused = client.post("/portal/producer/tokens", data={"csrf_token": token, "label": "kho Bình Dương",
                                                           "days": "9999"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="days-error"' in html
    assert 'value="kho Bình Dương"' in html and 'value="9999"' in html
    fresh = client.get("/portal/producer/tokens").get_data(as_text=True)
    assert 'name="label" maxlength="100" placeholder="' in fresh and 'value="kho' not in fresh
    assert 'value="90"' in fresh


def test_the_demos_token_label_is_refused_beside_the_field(client, people, session):
    """A producer's token labelled demo would be revoked by the next run of the demo."""
    from sqlalchemy import func, select

    from registry.models import ApiToken

    client_login(client, "producer1")
    token = csrf_of(client.get("/portal/producer/tokens?lang=en").get_data(as_text=True))
    refused = client.post("/portal/producer/tokens?lang=en", data={"csrf_token": token, "label": "demo", "days": "30"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'aria-describedby="label-error"' in html
    assert "is kept for the demo&#39;s tokens: choose another." in html and 'value="demo"' in html
    assert session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.label == "demo")) == 0


def test_the_partner_epcis_dates_are_vietnam_days_until_included(client, people, registry, session):
    """From = Until = today gave an empty file (Until was that day's 00:00 UTC, excluded); a time's
    offset was dropped (10:00+07:00 read as 10:00 UTC); since=garbage was dropped and every event
    exported."""
    import json
    from datetime import datetime, timedelta

    from app.i18n import VIETNAM_TIME
    from tests.conftest import GTIN

    registry.register_batch(SYSTEM, batch_data(), producer_id=people.producer_id)
    registry.recall(SYSTEM, GTIN, "LOT-1", reason="mould")
    session.commit()
    client_login(client, "partner1")

    def recalls(**args) -> int:
        answer = client.get("/portal/exports/epcis.jsonld", query_string={"events": "recalls", **args})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return len(json.loads(answer.get_data(as_text=True))["epcisBody"]["eventList"])

    now = datetime.now(VIETNAM_TIME)
    today, tomorrow = now.date().isoformat(), (now.date() + timedelta(days=1)).isoformat()
    assert recalls(since=today, until=today) == 1  # the whole day in Vietnam
    yesterday = (now.date() - timedelta(days=1)).isoformat()
    assert recalls(since=tomorrow) == 0 and recalls(until=yesterday) == 0
    an_hour_ago = (now - timedelta(hours=1)).replace(microsecond=0)
    assert recalls(since=an_hour_ago.isoformat()) == 1  # +07:00 kept: an hour ago, not six hours ahead
    assert recalls(since=an_hour_ago.replace(tzinfo=None).isoformat()) == 1  # no offset: Vietnam time
    assert recalls(until=an_hour_ago.isoformat()) == 0
    for bad in ({"since": "garbage"}, {"until": "2026-13-01"}, {"since": "0001-01-01T00:00:00+14:00"}):
        answer = client.get("/portal/exports/epcis.jsonld", query_string={"events": "recalls", **bad, "lang": "en"})
        assert answer.status_code == 422, bad
        page = answer.get_data(as_text=True)
        assert "Not a date: use the calendar." in page and ("From" in page if "since" in bad else "Until" in page)
    answer = client.get("/portal/exports/epcis.jsonld", query_string={"events": "registrations"})
    assert [e["bizStep"] for e in json.loads(answer.get_data(as_text=True))["epcisBody"]["eventList"]] == [
        "commissioning"]
    answer = client.get("/portal/exports/epcis.jsonld", query_string={"events": "everything", "lang": "en"})
    assert answer.status_code == 422 and "registrations" in answer.get_data(as_text=True)  # not read as all
    assert "Choose the kind of events from the list." in answer.get_data(as_text=True)  # in the page's words
    reversed_days = client.get("/portal/exports/epcis.jsonld", query_string={"since": tomorrow,
                                                                                    "until": yesterday})
    assert reversed_days.status_code == 422  # it had been an empty file, as if nothing had happened
    assert "Ngày cuối ở trước ngày đầu." in reversed_days.get_data(as_text=True)
    form = client.get("/portal/partner/").get_data(as_text=True)
    assert 'value="registrations"' in form and 'value="corrections"' in form


def test_a_form_sent_after_the_session_expired_goes_back_to_its_page_through_the_login(client, people):
    """The session expired (or the browser restarted) while a form was open: its post had met the
    public error page. It now leads to the login, then back to the form's page (its Referer), where
    portal.js fills in what was sent (#unsent); with a user still logged in (a login in another
    tab changed the token), straight back to the page, saying so."""
    client_login(client, "producer1")
    page = "/portal/producer/batches/new"
    client.get(page)
    client.post("/portal/logout", data={"csrf_token": csrf_of(client.get("/portal/account").get_data(as_text=True))})
    sent = client.post(page, data={"csrf_token": "from-the-old-session", "lot": "L-7"},
                       headers={"Referer": "http://localhost" + page})
    assert sent.status_code == 302 and "/portal/login?" in sent.location and "notice=expired" in sent.location
    assert "next=/portal/producer/batches/new%23unsent" in sent.location
    login_page = client.get(sent.location).get_data(as_text=True)  # the login form carries where to go back
    kept_next = re.search(r'name="next" value="([^"]*)"', login_page).group(1)
    assert kept_next == "/portal/producer/batches/new#unsent"
    back = client.post("/portal/login", data={"csrf_token": csrf_of(login_page), "username": "producer1",
                                              "password": PASSWORD, "next": kept_next})
    assert back.status_code == 303 and back.location == "/portal/producer/batches/new#unsent"
    stale = client.post(page, data={"csrf_token": "stale", "lot": "L-7"}, headers={"Referer": "http://localhost" + page})
    assert stale.status_code == 303 and stale.location == page + "#unsent"
    assert "phiên làm việc của trang đã thay đổi" in client.get(page).get_data(as_text=True)
    stale_login = client.post("/portal/login", data={"csrf_token": "old", "username": "producer1",
                                                     "password": PASSWORD, "next": "/portal/producer/"})
    assert stale_login.status_code == 302 and "next=/portal/producer/" in stale_login.location
