"""Portal accounts: argon2 hashes, lock-out, password changes, deactivation, token administration."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from registry.accounts import AccountService, LockoutPolicy, TokenAdmin
from registry.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from registry.models import AuditEvent, User
from registry.services import SYSTEM, Actor, Role, TokenService
from tests.conftest import FixedClock

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery"


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc))


@pytest.fixture
def accounts(session, clock):
    return AccountService(session, clock=clock, hasher=FAST)


def _audit(session, action):
    return list(session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def test_create_and_authenticate(accounts, session, world):
    user = accounts.create_user(SYSTEM, username="Lan.Nguyen", password=PASSWORD, role="producer",
                                producer_id=world.producer_id, display_name="Lan")
    assert user.username == "lan.nguyen" and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    actor = accounts.authenticate("lan.nguyen", PASSWORD)
    assert actor == Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="user:lan.nguyen")
    assert user.last_login_at is not None
    assert _audit(session, "user.create") and _audit(session, "user.login")


@pytest.mark.parametrize("kwargs,code", [
    ({"username": "x", "role": "inspector"}, "BAD_USERNAME"),
    ({"username": "ok-name", "role": "inspector", "password": "short"}, "PASSWORD_TOO_SHORT"),
    ({"username": "ok-name", "role": "producer"}, "FIELD_REQUIRED"),
    ({"username": "ok-name", "role": "inspector", "producer_id": "prd-x"}, "BAD_USER_SCOPE"),
    ({"username": "ok-name", "role": "emperor"}, "BAD_ROLE"),
])
def test_create_rejects_bad_input(accounts, kwargs, code):
    with pytest.raises(Invalid) as info:
        accounts.create_user(SYSTEM, **{"password": PASSWORD, **kwargs})
    assert info.value.code == code


def test_only_the_authority_creates_users_and_names_are_unique(accounts):
    with pytest.raises(Forbidden):
        accounts.create_user(Actor(role=Role.INSPECTOR, name="token:1"), username="eve", password=PASSWORD,
                             role="authority")
    accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    with pytest.raises(Conflict):
        accounts.create_user(SYSTEM, username="MINH", password=PASSWORD, role="inspector")
    with pytest.raises(NotFound):
        accounts.create_user(SYSTEM, username="p1", password=PASSWORD, role="producer", producer_id="prd-nope")


def test_wrong_password_and_unknown_user_look_the_same(accounts):
    accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    with pytest.raises(Unauthorized) as wrong:
        accounts.authenticate("minh", "not the password")
    with pytest.raises(Unauthorized) as unknown:
        accounts.authenticate("nobody", "not the password")
    assert wrong.value.code == unknown.value.code == "INVALID_CREDENTIALS"
    assert wrong.value.message == unknown.value.message


def test_unknown_user_still_spends_a_hash(session, clock):
    calls = []

    class Counting(PasswordHasher):
        def verify(self, hash, password):  # noqa: A002
            calls.append(hash)
            return super().verify(hash, password)

    hasher = Counting(time_cost=1, memory_cost=1024, parallelism=1)
    with pytest.raises(Unauthorized):
        AccountService(session, clock=clock, hasher=hasher).authenticate("nobody", "whatever-password")
    assert len(calls) == 1 and calls[0].startswith("$argon2")


def test_lock_out_after_five_failures_for_fifteen_minutes(accounts, session, clock):
    accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    for _ in range(5):
        with pytest.raises(Unauthorized) as info:
            accounts.authenticate("minh", "wrong password!")
        assert info.value.code == "INVALID_CREDENTIALS"
    with pytest.raises(Unauthorized) as info:
        accounts.authenticate("minh", PASSWORD)  # even the right password is refused while locked
    assert info.value.code == "ACCOUNT_LOCKED"
    clock.now += timedelta(minutes=14)
    with pytest.raises(Unauthorized):
        accounts.authenticate("minh", PASSWORD)
    clock.now += timedelta(minutes=2)
    assert accounts.authenticate("minh", PASSWORD).role == Role.INSPECTOR
    assert len(_audit(session, "user.login_failed")) == 5
    assert _audit(session, "user.login_refused")


def test_lockout_policy_is_configurable_and_success_resets_the_count(session, clock):
    accounts = AccountService(session, clock=clock, hasher=FAST,
                              policy=LockoutPolicy(max_failures=2, lock_for=timedelta(minutes=1)))
    accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    with pytest.raises(Unauthorized):
        accounts.authenticate("minh", "wrong password!")
    accounts.authenticate("minh", PASSWORD)
    with pytest.raises(Unauthorized):
        accounts.authenticate("minh", "wrong password!")
    accounts.authenticate("minh", PASSWORD)  # the count was reset: one failure is not two
    for _ in range(2):
        with pytest.raises(Unauthorized):
            accounts.authenticate("minh", "wrong password!")
    with pytest.raises(Unauthorized) as info:
        accounts.authenticate("minh", PASSWORD)
    assert info.value.code == "ACCOUNT_LOCKED"
    accounts.unlock(SYSTEM, "minh")
    assert accounts.authenticate("minh", PASSWORD)


def test_failures_survive_the_callers_commit(app, clock):
    factory = app.extensions["session_factory"]
    with factory() as s:
        AccountService(s, clock=clock, hasher=FAST).create_user(SYSTEM, username="minh", password=PASSWORD,
                                                                 role="inspector")
        s.commit()
    for _ in range(5):
        with factory() as s:
            with pytest.raises(Unauthorized):
                AccountService(s, clock=clock, hasher=FAST).authenticate("minh", "wrong password!")
            s.commit()
    with factory() as s:
        with pytest.raises(Unauthorized) as info:
            AccountService(s, clock=clock, hasher=FAST).authenticate("minh", PASSWORD)
        assert info.value.code == "ACCOUNT_LOCKED"
        s.rollback()


def test_rehash_when_parameters_change(session, clock):
    old = AccountService(session, clock=clock, hasher=FAST)
    user = old.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    first = user.password_hash
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    AccountService(session, clock=clock, hasher=stronger).authenticate("minh", PASSWORD)
    assert user.password_hash != first and not stronger.check_needs_rehash(user.password_hash)
    AccountService(session, clock=clock, hasher=stronger).authenticate("minh", PASSWORD)


def test_change_password_own_and_reset_by_authority(accounts, session):
    accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    me = Actor(role=Role.INSPECTOR, name="user:minh")
    with pytest.raises(Forbidden):
        accounts.change_password(me, "minh", old_password="wrong one!!", new_password="a brand new secret")
    with pytest.raises(Invalid):
        accounts.change_password(me, "minh", old_password=PASSWORD, new_password="short")
    accounts.change_password(me, "minh", old_password=PASSWORD, new_password="a brand new secret")
    assert accounts.authenticate("minh", "a brand new secret")
    with pytest.raises(Forbidden):  # someone else, not the authority
        accounts.change_password(Actor(role=Role.INSPECTOR, name="user:other"), "minh", old_password=None,
                                 new_password="taken over now!")
    accounts.change_password(SYSTEM, "minh", old_password=None, new_password="reset by the authority")
    assert accounts.authenticate("minh", "reset by the authority")
    assert _audit(session, "user.password_change") and _audit(session, "user.password_reset")


def test_a_new_password_ends_the_sessions_stamped_with_the_old_one(accounts, session):
    user = accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    at_login = AccountService.session_stamp(user)
    assert accounts.actor(user.id, stamp=at_login).name == "user:minh"
    accounts.change_password(Actor(role=Role.INSPECTOR, name="user:minh"), "minh", old_password=PASSWORD,
                             new_password="a brand new secret")
    with pytest.raises(Unauthorized) as info:
        accounts.actor(user.id, stamp=at_login)
    assert info.value.code == "SESSION_ENDED"
    after = AccountService.session_stamp(user)
    assert after != at_login and accounts.actor(user.id, stamp=after).name == "user:minh"
    accounts.change_password(SYSTEM, "minh", old_password=None, new_password="reset by the authority")
    with pytest.raises(Unauthorized):
        accounts.actor(user.id, stamp=after)
    assert PASSWORD not in at_login and user.password_hash not in at_login  # a digest, not the hash itself


def test_deactivated_users_cannot_log_in(accounts, session):
    user = accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    accounts.deactivate(SYSTEM, "minh")
    with pytest.raises(Unauthorized) as info:
        accounts.authenticate("minh", PASSWORD)
    assert info.value.code == "INVALID_CREDENTIALS"
    with pytest.raises(Unauthorized):
        accounts.actor(user.id)
    with pytest.raises(Forbidden):
        accounts.deactivate(Actor(role=Role.PRODUCER, producer_id="x", name="user:x"), "minh")
    accounts.reactivate(SYSTEM, "minh")
    assert accounts.actor(user.id).name == "user:minh"
    assert _audit(session, "user.deactivate")


# -- tokens ---------------------------------------------------------------------------------------
def test_token_admin_scopes(session, world):
    admin = TokenAdmin(session)
    authority = Actor(role=Role.AUTHORITY, name="user:boss")
    own = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="user:lan")
    other = Actor(role=Role.PRODUCER, producer_id="prd-other", name="user:eve")
    plain, row = admin.create(own, role="producer", label="erp")
    assert row.producer_id == world.producer_id and row.expires_at is not None
    assert TokenService(session).authenticate(plain).producer_id == world.producer_id
    assert row.token_hash != plain and plain not in str(admin.view(row))
    with pytest.raises(Forbidden):
        admin.create(own, role="authority")
    with pytest.raises(Forbidden):
        admin.create(own, role="producer", producer_id="prd-other")
    with pytest.raises(Forbidden):
        admin.create(Actor(role=Role.INSPECTOR, name="token:9"), role="inspector")
    with pytest.raises(Invalid):
        admin.create(authority, role="partner", days=10_000)
    with pytest.raises(Forbidden):
        admin.revoke(other, row.id)
    assert row.id in [t.id for t in admin.list(own)]
    assert row.id not in [t.id for t in admin.list(other)]
    admin.revoke(own, row.id)
    with pytest.raises(Unauthorized):
        TokenService(session).authenticate(plain)
    with pytest.raises(Conflict):
        admin.revoke(authority, row.id)
    partner, _ = admin.create(authority, role="partner", days=1)
    assert TokenService(session).authenticate(partner).role == Role.PARTNER
    assert _audit(session, "token.create") and _audit(session, "token.revoke")
    session.rollback()


def test_users_table_never_holds_plain_passwords(accounts, session):
    accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    for (h,) in session.execute(select(User.password_hash)):
        assert PASSWORD not in h


def test_cli_creates_and_unlocks_users(app, runner):
    result = runner.invoke(args=["user", "create", "--username", "root", "--role", "authority", "--password-stdin"],
                           input=PASSWORD + "\n")
    if result.exit_code == 2 and "No such command" in result.output:
        from app.cli_accounts import register_accounts_cli

        register_accounts_cli(app)
        result = runner.invoke(args=["user", "create", "--username", "root", "--role", "authority",
                                     "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    with app.extensions["session_factory"]() as s:
        service = AccountService(s)
        assert service.authenticate("root", PASSWORD).role == Role.AUTHORITY
        s.commit()
    result = runner.invoke(args=["user", "create", "--username", "x2", "--role", "inspector", "--password-stdin"],
                           input="short\n")
    assert result.exit_code != 0 and "PASSWORD_TOO_SHORT" in result.output
    assert runner.invoke(args=["user", "unlock", "root"]).exit_code == 0
    assert runner.invoke(args=["user", "unlock", "ghost"]).exit_code != 0
