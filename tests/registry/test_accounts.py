"""Portal accounts: argon2 hashes, lock-out, password changes, deactivation, token administration."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from argon2 import PasswordHasher
from sqlalchemy import select

from app.migrations import alembic_config
from registry.accounts import AccountService, LockoutPolicy, TokenAdmin
from registry.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from registry.models import ApiToken, AuditEvent, User
from registry.services import SYSTEM, Actor, Role, TokenService
from tests.conftest import FixedClock, schema_restored_on_failure

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
    with pytest.raises(Conflict) as again:  # said once in the trail, as a second revocation is refused
        accounts.deactivate(SYSTEM, "minh")
    assert again.value.code == "USER_ALREADY_DEACTIVATED"
    assert session.query(AuditEvent).filter(AuditEvent.action == "user.deactivate").count() == 1
    accounts.reactivate(SYSTEM, "minh")
    assert accounts.actor(user.id).name == "user:minh"
    assert _audit(session, "user.deactivate")


def test_a_wrong_current_password_counts_as_a_failed_login(accounts, session, clock):
    """Whoever holds a session must not be able to guess the password on the change form: the
    failures count with the login's, and the lock-out refuses even the right password."""
    accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    me = Actor(role=Role.INSPECTOR, name="user:minh")
    for failures in range(1, 5):
        with pytest.raises(Forbidden) as info:
            accounts.change_password(me, "minh", old_password="a wrong guess", new_password="a brand new secret")
        assert info.value.code == "INVALID_CREDENTIALS"
        assert accounts.by_username("minh").failed_logins == failures
    epoch = accounts.by_username("minh").session_epoch
    with pytest.raises(Unauthorized):  # the fifth failure, at login, locks
        accounts.authenticate("minh", "another guess")
    session.refresh(accounts.by_username("minh"))
    assert accounts.by_username("minh").session_epoch == epoch  # a lock-out at login ends no session
    with pytest.raises(Forbidden) as info:
        accounts.change_password(me, "minh", old_password=PASSWORD, new_password="a brand new secret")
    assert info.value.code == "ACCOUNT_LOCKED"
    session.refresh(accounts.by_username("minh"))
    assert accounts.by_username("minh").session_epoch == epoch + 1  # met by a session: it ends them
    with pytest.raises(Unauthorized) as info:
        accounts.authenticate("minh", PASSWORD)
    assert info.value.code == "ACCOUNT_LOCKED"
    clock.now += timedelta(minutes=16)
    accounts.change_password(me, "minh", old_password=PASSWORD, new_password="a brand new secret")
    assert accounts.authenticate("minh", "a brand new secret")


def test_logging_out_ends_every_session_of_the_user(accounts, session):
    user = accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    stamp, at_login = AccountService.session_stamp(user), user.session_epoch
    assert accounts.actor(user.id, stamp=stamp, epoch=at_login).name == "user:minh"
    accounts.log_out(user.id)
    with pytest.raises(Unauthorized) as info:
        accounts.actor(user.id, stamp=stamp, epoch=at_login)
    assert info.value.code == "SESSION_LOGGED_OUT"
    assert accounts.actor(user.id, stamp=stamp, epoch=user.session_epoch).name == "user:minh"  # a new login
    assert _audit(session, "user.logout")[0].target == "user:minh"


def test_a_reactivated_account_does_not_get_its_old_sessions_back(accounts, session):
    user = accounts.create_user(SYSTEM, username="minh", password=PASSWORD, role="inspector")
    stamp, at_login = AccountService.session_stamp(user), user.session_epoch
    accounts.deactivate(SYSTEM, "minh")
    accounts.reactivate(SYSTEM, "minh")
    with pytest.raises(Unauthorized) as info:
        accounts.actor(user.id, stamp=stamp, epoch=at_login)
    assert info.value.code == "SESSION_LOGGED_OUT"


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


def test_a_token_made_by_a_token_expires_no_later_than_it(session, world, clock):
    admin = TokenAdmin(session, clock=clock)
    _, parent = admin.create(Actor(role=Role.AUTHORITY, name="user:boss"), role="producer",
                             producer_id=world.producer_id, days=1)
    by_parent = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name=f"token:{parent.id}")
    plain, child = admin.create(by_parent, role="producer", days=730)
    assert child.expires_at == parent.expires_at == clock.now + timedelta(days=1)
    assert child.created_by_token_id == parent.id
    clock.now += timedelta(days=1)
    with pytest.raises(Unauthorized) as info:
        TokenService(session, clock=clock).authenticate(plain)
    assert info.value.code == "TOKEN_EXPIRED"
    _, operators = TokenService(session).create(role=Role.AUTHORITY)  # `token create` without --days
    _, lasting = admin.create(Actor(role=Role.AUTHORITY, name=f"token:{operators.id}"), role="partner", days=30)
    assert lasting.expires_at == clock.now + timedelta(days=30) and lasting.created_by_token_id == operators.id


def test_revoking_a_token_revokes_the_tokens_it_made_and_theirs(session, world, clock):
    admin = TokenAdmin(session, clock=clock)
    tokens = TokenService(session, clock=clock)
    authority = Actor(role=Role.AUTHORITY, name="user:boss")
    _, parent = admin.create(authority, role="producer", producer_id=world.producer_id, days=30)
    _, sibling = admin.create(authority, role="producer", producer_id=world.producer_id, days=30)
    child_plain, child = admin.create(Actor(role=Role.PRODUCER, producer_id=world.producer_id,
                                            name=f"token:{parent.id}"), role="producer")
    grandchild_plain, grandchild = admin.create(Actor(role=Role.PRODUCER, producer_id=world.producer_id,
                                                      name=f"token:{child.id}"), role="producer")
    admin.revoke(authority, parent.id)
    for plain in (child_plain, grandchild_plain):
        with pytest.raises(Unauthorized) as info:
            tokens.authenticate(plain)
        assert info.value.code == "TOKEN_INVALID"
    assert sibling.revoked_at is None
    revoked = {event.target: event.detail for event in _audit(session, "token.revoke")}
    assert revoked == {f"token:{parent.id}": {}, f"token:{child.id}": {"because": f"token:{parent.id}"},
                       f"token:{grandchild.id}": {"because": f"token:{child.id}"}}


def test_deactivating_a_person_revokes_the_tokens_they_made(accounts, session, world, clock):
    lan = accounts.create_user(SYSTEM, username="lan", password=PASSWORD, role="producer",
                               producer_id=world.producer_id)
    accounts.create_user(SYSTEM, username="hoa", password=PASSWORD, role="producer", producer_id=world.producer_id)
    admin = TokenAdmin(session, clock=clock)
    tokens = TokenService(session, clock=clock)
    _, made = admin.create(Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="user:lan"),
                           role="producer")
    made_by_made, _ = admin.create(Actor(role=Role.PRODUCER, producer_id=world.producer_id,
                                         name=f"token:{made.id}"), role="producer")
    colleagues, _ = admin.create(Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="user:hoa"),
                                 role="producer")
    assert made.created_by_user_id == lan.id
    accounts.deactivate(SYSTEM, "lan")
    assert made.revoked_at == clock.now
    with pytest.raises(Unauthorized):
        tokens.authenticate(made_by_made)
    assert tokens.authenticate(colleagues).producer_id == world.producer_id
    assert {event.detail.get("because") for event in _audit(session, "token.revoke")} == {"user:lan",
                                                                                          f"token:{made.id}"}


def test_migration_0006_applies_the_token_rules_to_tokens_made_before(app):
    """Tokens made before 0006 get their creator from the audit trail; those made by a revoked
    token or a deactivated person are revoked, and a token's tokens expire no later than it."""
    engine = app.extensions["engine"]
    cfg = alembic_config()
    at, soon, later = (datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc),
                       datetime(2027, 6, 1, tzinfo=timezone.utc))
    when = sa.DateTime(timezone=True)
    users = sa.table("users", sa.column("id"), sa.column("username"), sa.column("display_name"),
                     sa.column("password_hash"), sa.column("role"), sa.column("active", sa.Boolean),
                     sa.column("failed_logins"), sa.column("created_at", when))
    tokens = sa.table("api_tokens", sa.column("id"), sa.column("token_hash"), sa.column("role"), sa.column("label"),
                      sa.column("created_at", when), sa.column("expires_at", when), sa.column("revoked_at", when))
    audit = sa.table("audit_events", sa.column("at", when), sa.column("actor"), sa.column("action"),
                     sa.column("target"), sa.column("detail", sa.JSON))
    # token: (made by, expires, revoked)
    made = {1: ("user:gone", soon, None), 2: ("token:1", later, None), 3: ("user:here", later, None),
            4: ("system", None, at), 5: ("token:4", None, None), 6: ("token:5", later, None),
            7: ("token:3", None, None)}
    with schema_restored_on_failure(engine), engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0005")
        connection.execute(users.insert(), [{"id": 1, "username": "gone", "display_name": "", "password_hash": "x",
                                             "role": "authority", "active": False, "failed_logins": 0,
                                             "created_at": at},
                                            {"id": 2, "username": "here", "display_name": "", "password_hash": "x",
                                             "role": "authority", "active": True, "failed_logins": 0,
                                             "created_at": at}])
        connection.execute(tokens.insert(), [{"id": i, "token_hash": f"h{i}", "role": "partner", "label": "",
                                              "created_at": at, "expires_at": expires, "revoked_at": revoked}
                                             for i, (_, expires, revoked) in made.items()])
        connection.execute(audit.insert(), [{"at": at, "actor": by, "action": "token.create", "target": f"token:{i}",
                                             "detail": {}} for i, (by, _, _) in made.items()])
        connection.commit()  # what was there before the upgrade; the upgrade runs its own transaction, and
        command.upgrade(cfg, "head")  # 0012 builds an index outside of one (CONCURRENTLY on PostgreSQL)
        connection.commit()
    session = app.extensions["session_factory"]()
    try:
        rows = {row.id: row for row in session.execute(select(ApiToken)).scalars()}
        assert {i: (r.created_by_user_id, r.created_by_token_id) for i, r in rows.items()} == {
            1: (1, None), 2: (None, 1), 3: (2, None), 4: (None, None), 5: (None, 4), 6: (None, 5), 7: (None, 3)}
        assert {i for i, r in rows.items() if r.revoked_at is None} == {3, 7}
        assert rows[2].revoked_at == rows[1].revoked_at and rows[5].revoked_at == rows[6].revoked_at == at
        assert rows[2].expires_at == soon and rows[7].expires_at == later and rows[6].expires_at == later
    finally:
        session.close()


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


def test_cli_resets_a_forgotten_password_and_reactivates(app, runner, accounts, session):
    """An account whose owner forgot the password, or was locked out: the registry sets a new one
    (there had been no way to, in the portal, the API or the command line); a deactivated account
    comes back."""
    accounts.create_user(SYSTEM, username="lan", password=PASSWORD, role="inspector")
    stamp = AccountService.session_stamp(accounts._user("lan"))
    session.commit()
    new = "mật-khẩu-mới-" + "x" * 8
    done = runner.invoke(args=["user", "reset-password", "lan", "--password-stdin"], input=new + "\n")
    assert done.exit_code == 0 and "password reset" in done.output, done.output
    refused = runner.invoke(args=["user", "reset-password", "lan", "--password-stdin"], input="short\n")
    assert refused.exit_code != 0 and "PASSWORD_TOO_SHORT" in refused.output
    assert runner.invoke(args=["user", "reset-password", "ghost", "--password-stdin"], input=new + "\n").exit_code != 0
    # no terminal (a script, cron) and no --password-stdin: said, not click's bare "Aborted!"; an
    # unknown account is said before any password is asked for
    for args in (["user", "reset-password", "lan"], ["user", "create", "--username", "an", "--role", "inspector"]):
        blind = runner.invoke(args=args, input="")
        assert blind.exit_code != 0 and "Error: PASSWORD_REQUIRED: no terminal to ask for the password on" in blind.output
        assert "Aborted" not in blind.output
    ghost = runner.invoke(args=["user", "reset-password", "ghost"], input="")
    assert ghost.exit_code != 0 and "Error: USER_UNKNOWN: no user ghost" in ghost.output
    session.expire_all()
    assert accounts.authenticate("lan", new).name == "user:lan"
    with pytest.raises(Unauthorized):
        accounts.authenticate("lan", PASSWORD)
    assert AccountService.session_stamp(accounts._user("lan")) != stamp  # the sessions with the old one end
    assert _audit(session, "user.password_reset")
    session.commit()
    assert runner.invoke(args=["user", "deactivate", "lan"]).exit_code == 0
    again = runner.invoke(args=["user", "reactivate", "lan"])
    assert again.exit_code == 0 and "reactivated" in again.output
    session.expire_all()
    assert accounts.authenticate("lan", new).role == Role.INSPECTOR
    # a second reactivation is refused, as a second deactivation: the trail had said it each time
    session.commit()
    twice = runner.invoke(args=["user", "reactivate", "lan"])
    assert twice.exit_code != 0 and "Error: USER_ALREADY_ACTIVE: the account lan is active" in twice.output
    session.rollback()
    assert len([e for e in _audit(session, "user.reactivate")]) == 1
