"""Portal accounts and API-token administration.

People log in with a username and a password. Passwords are argon2id hashes (argon2-cffi's
``PasswordHasher``), re-hashed on the next good login when the hasher's parameters change.
Repeated failures lock the account for a while; an unknown username costs the same hash as a
known one, so timing does not tell which usernames exist. Every write is an ``AuditEvent``.

Nothing here imports Flask: the portal pages and the CLI call these services and commit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError as Argon2VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keys.encoding import rfc3339, utcnow
from registry.audit import audit
from registry.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized, collect, raise_problems
from registry.models import ApiToken, Producer, User
from registry.services import SYSTEM, Actor, Role, TokenService

__all__ = [
    "AccountService",
    "LockoutPolicy",
    "TokenAdmin",
    "MIN_PASSWORD_LENGTH",
    "MAX_PASSWORD_LENGTH",
    "DEFAULT_TOKEN_DAYS",
    "MAX_TOKEN_DAYS",
    "DEMO_TOKEN_LABEL",
]

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; this only bounds the work a request can cause
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,99}$")
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 730
MAX_TOKEN_LABEL = 100  # characters, as api_tokens.label holds them
#: The label of the demo's tokens (``app.demo``), which each run of the demo revokes: only the demo
#: gives it (``TokenAdmin.create(..., demo=True)``), so that no one else's token is revoked with them.
DEMO_TOKEN_LABEL = "demo"


@dataclass(frozen=True)
class LockoutPolicy:
    """``max_failures`` wrong passwords in a row lock the account for ``lock_for``."""

    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)


def _revoke_created(session: Session, at: datetime, actor: Actor | str, creators: Any, *, because: str) -> None:
    """Revoke the tokens that ``creators`` (a condition on ``ApiToken``) selects, then the tokens
    those created, and so on: a token must not outlive the token or the person that created it.
    The walk goes on through tokens revoked already (``token revoke`` on the CLI revokes one alone)."""
    condition = creators
    while True:
        rows = list(session.execute(select(ApiToken).where(condition).order_by(ApiToken.id)
                                    .with_for_update()).scalars())
        if not rows:
            return
        for row in rows:
            if row.revoked_at is None:
                row.revoked_at = at
                audit(session, at, actor, "token.revoke", f"token:{row.id}",
                      because=f"token:{row.created_by_token_id}" if row.created_by_token_id else because)
        condition = ApiToken.created_by_token_id.in_([row.id for row in rows])


class AccountService:
    """Users of the portals: create, authenticate, lock out, change password, deactivate.

    Works inside the caller's transaction. ``authenticate`` writes (failure counters, last login)
    even when it raises, so the caller commits in both cases.
    """

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = utcnow,
                 hasher: PasswordHasher | None = None, policy: LockoutPolicy = LockoutPolicy()) -> None:
        self.session = session
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self.policy = policy
        self._dummy_hash: str | None = None

    # -- reading -------------------------------------------------------------------------------
    def get(self, user_id: int) -> User:
        user = self.session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}", code="USER_UNKNOWN")
        return user

    def by_username(self, username: str) -> User | None:
        return self.session.execute(
            select(User).where(User.username == self._normalise(username))
        ).scalar_one_or_none()

    def _user(self, username: str, *, lock: bool = False) -> User:
        stmt = select(User).where(User.username == self._normalise(username))
        if lock:
            stmt = stmt.with_for_update()
        user = self.session.execute(stmt).scalar_one_or_none()
        if user is None:
            raise NotFound(f"no user {username}", code="USER_UNKNOWN")
        return user

    def list(self, actor: Actor) -> list[User]:
        actor.require(Role.AUTHORITY)
        return list(self.session.execute(select(User).order_by(User.username)).scalars())

    @staticmethod
    def actor_for(user: User) -> Actor:
        return Actor(role=Role(user.role), producer_id=user.producer_id, name=f"user:{user.username}")

    @staticmethod
    def session_stamp(user: User) -> str:
        """What a logged-in session keeps of the password: a digest of its (salted) hash. A new
        password gives a new stamp, which ends every session that logged in with the old one."""
        return hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:32]

    def actor(self, user_id: int, *, stamp: str | None = None, epoch: int | None = None) -> Actor:
        """The actor behind a logged-in session (the session stores the user id and, with
        ``stamp`` and ``epoch``, the password's stamp and the user's ``session_epoch`` at login):
        refuse if deactivated, if the password changed since, or if the user logged out since."""
        user = self.get(user_id)
        if not user.active:
            raise Unauthorized("this account has been deactivated", code="ACCOUNT_INACTIVE")
        if stamp is not None and not hmac.compare_digest(stamp, self.session_stamp(user)):
            raise Unauthorized("the password was changed after this session logged in", code="SESSION_ENDED")
        if epoch is not None and epoch != user.session_epoch:
            raise Unauthorized("this account logged out after this session logged in", code="SESSION_LOGGED_OUT")
        return self.actor_for(user)

    def log_out(self, user_id: int) -> None:
        """End every session of this user, the one logging out included. A session is a signed
        cookie, not a stored record: clearing the browser's copy leaves any other copy working, so
        the end is written here (``session_epoch``, which ``actor`` compares)."""
        user = self.get(user_id)
        user.session_epoch = User.session_epoch + 1
        audit(self.session, self.clock(), f"user:{user.username}", "user.logout", f"user:{user.username}")
        self.session.flush()

    @staticmethod
    def view(user: User) -> dict[str, Any]:
        return {"id": user.id, "username": user.username, "display_name": user.display_name, "role": user.role,
                "producer_id": user.producer_id, "active": user.active,
                "locked_until": rfc3339(user.locked_until) if user.locked_until else None,
                "created_at": rfc3339(user.created_at),
                "last_login_at": rfc3339(user.last_login_at) if user.last_login_at else None}

    # -- writing -------------------------------------------------------------------------------
    @staticmethod
    def _normalise(username: str) -> str:
        return (username or "").strip().lower()

    def _check_password(self, password: str, field: str = "password") -> None:
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
            raise Invalid(f"a password needs at least {MIN_PASSWORD_LENGTH} characters", code="PASSWORD_TOO_SHORT",
                          field=field)
        if len(password) > MAX_PASSWORD_LENGTH:
            raise Invalid(f"a password has at most {MAX_PASSWORD_LENGTH} characters", code="PASSWORD_TOO_LONG",
                          field=field)

    def create_user(self, actor: Actor, *, username: str, password: str, role: Role | str,
                    producer_id: str | None = None, display_name: str = "") -> User:
        """Create a user (the authority; the CLI bootstraps the first one as ``SYSTEM``)."""
        actor.require(Role.AUTHORITY)
        problems: list[Invalid] = []  # every field's, so that the form marks them all at once
        name = self._normalise(username)
        if not _USERNAME.match(name):
            problems.append(Invalid("a username is 2 to 100 characters: letters, digits and . _ @ -",
                                    code="BAD_USERNAME", field="username"))
        try:
            role = Role(role)
        except ValueError:
            problems.append(Invalid(f"role must be one of {', '.join(r.value for r in Role)}", code="BAD_ROLE",
                                    field="role"))
        if role == Role.PRODUCER and not producer_id:
            problems.append(Invalid("producer staff must be bound to a producer", code="FIELD_REQUIRED",
                                    field="producer_id"))
        elif role != Role.PRODUCER and producer_id:
            problems.append(Invalid("only producer staff are bound to a producer", code="BAD_USER_SCOPE",
                                    field="producer_id"))
        collect(problems, self._check_password, password)
        raise_problems(problems)
        if role == Role.PRODUCER and self.session.get(Producer, producer_id) is None:
            raise NotFound(f"no producer {producer_id}", code="PRODUCER_UNKNOWN")
        if self.by_username(name) is not None:
            raise Conflict(f"the username {name} is taken", code="USER_EXISTS")
        now = self.clock()
        user = User(username=name, display_name=(display_name or "").strip()[:200],
                    password_hash=self.hasher.hash(password), role=role.value, producer_id=producer_id,
                    active=True, failed_logins=0, locked_until=None, created_at=now)
        self.session.add(user)
        try:
            self.session.flush()
        except IntegrityError:  # the same name created at the same moment by another request
            raise Conflict(f"the username {name} is taken", code="USER_EXISTS") from None
        audit(self.session, now, actor, "user.create", f"user:{name}", role=role.value, producer_id=producer_id)
        self.session.flush()
        return user

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash("not a password: only spends the same time as a real check")
        return self._dummy_hash

    def authenticate(self, username: str, password: str) -> Actor:
        """Check a password. Raises ``Unauthorized`` (``INVALID_CREDENTIALS``, ``ACCOUNT_LOCKED``).

        Commit after calling, whether it raised or not: failures and lock-outs are written."""
        password = password if isinstance(password, str) else ""
        now = self.clock()
        stmt = select(User).where(User.username == self._normalise(username)).with_for_update()
        user = self.session.execute(stmt).scalar_one_or_none()
        if user is None or not user.active:
            self._spend_time(password)
            raise Unauthorized("the username or the password is wrong", code="INVALID_CREDENTIALS")
        if user.locked_until is not None and user.locked_until > now:
            self._spend_time(password)
            audit(self.session, now, f"user:{user.username}", "user.login_refused", f"user:{user.username}",
                  reason="locked")
            self.session.flush()
            raise Unauthorized("too many failed attempts: this account is locked for a while; try again later",
                               code="ACCOUNT_LOCKED")
        if len(password) > MAX_PASSWORD_LENGTH or not self._verify(user.password_hash, password):
            self._fail(user, now)
            raise Unauthorized("the username or the password is wrong", code="INVALID_CREDENTIALS")
        if self.hasher.check_needs_rehash(user.password_hash):
            user.password_hash = self.hasher.hash(password)
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = now
        audit(self.session, now, f"user:{user.username}", "user.login", f"user:{user.username}")
        self.session.flush()
        return self.actor_for(user)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (Argon2VerificationError, InvalidHashError):
            return False

    def _spend_time(self, password: str) -> None:
        self._verify(self._dummy(), password[:MAX_PASSWORD_LENGTH])

    def _fail(self, user: User, now: datetime) -> None:
        user.failed_logins = (user.failed_logins or 0) + 1
        detail: dict[str, Any] = {"failures": user.failed_logins}
        if user.failed_logins >= self.policy.max_failures:
            user.locked_until = now + self.policy.lock_for
            user.failed_logins = 0
            detail["locked_until"] = rfc3339(user.locked_until)
            log.warning("account %s locked after %d failed logins", user.username, self.policy.max_failures)
        audit(self.session, now, f"user:{user.username}", "user.login_failed", f"user:{user.username}", **detail)
        self.session.flush()

    def change_password(self, actor: Actor, username: str, *, old_password: str | None, new_password: str) -> User:
        """A user changes their own password (the old one required); the authority resets anyone's.

        A wrong old password is a failed login, with the same lock-out (``Forbidden``,
        ``INVALID_CREDENTIALS`` or ``ACCOUNT_LOCKED``): otherwise whoever holds a session could try
        passwords here without limit. When the account is locked, its sessions end too: a session
        that guesses its own password is likely not its owner's (a lock-out at the login form ends
        none, or anyone could log a user out by typing wrong passwords). Commit after it raised,
        as after ``authenticate``."""
        user = self._user(username, lock=True)
        own = actor.name == f"user:{user.username}"
        if not own:
            actor.require(Role.AUTHORITY)
        else:
            now = self.clock()
            old_password = old_password if isinstance(old_password, str) else ""
            locked = user.locked_until is not None and user.locked_until > now
            if not locked and (len(old_password) > MAX_PASSWORD_LENGTH
                               or not self._verify(user.password_hash, old_password)):
                self._fail(user, now)
                locked = user.locked_until is not None and user.locked_until > now
                if not locked:
                    raise Forbidden("the current password is wrong", code="INVALID_CREDENTIALS")
            if locked:
                user.session_epoch = User.session_epoch + 1
                self.session.flush()
                raise Forbidden("too many failed attempts: this account is locked for a while and its sessions "
                                "have ended; try again later", code="ACCOUNT_LOCKED")
        self._check_password(new_password, "new_password")
        user.password_hash = self.hasher.hash(new_password)
        user.failed_logins = 0
        user.locked_until = None
        audit(self.session, self.clock(), actor, "user.password_change" if own else "user.password_reset",
              f"user:{user.username}")
        self.session.flush()
        return user

    def unlock(self, actor: Actor, username: str) -> User:
        actor.require(Role.AUTHORITY)
        user = self._user(username, lock=True)
        user.failed_logins = 0
        user.locked_until = None
        audit(self.session, self.clock(), actor, "user.unlock", f"user:{user.username}")
        self.session.flush()
        return user

    def deactivate(self, actor: Actor, username: str) -> User:
        """The account can no longer log in; its sessions end for good (a reactivation does not
        bring them back) and the API tokens it created are revoked, with those they created."""
        actor.require(Role.AUTHORITY)
        user = self._user(username, lock=True)
        if actor.name == f"user:{user.username}":
            raise Conflict("you cannot deactivate your own account", code="SELF_DEACTIVATION")
        if not user.active:  # as a second revocation or recall is refused: the trail says it once
            raise Conflict(f"the account {user.username} is already deactivated", code="USER_ALREADY_DEACTIVATED")
        now = self.clock()
        user.active = False
        user.session_epoch = User.session_epoch + 1
        audit(self.session, now, actor, "user.deactivate", f"user:{user.username}")
        _revoke_created(self.session, now, actor, ApiToken.created_by_user_id == user.id,
                        because=f"user:{user.username}")
        self.session.flush()
        return user

    def reactivate(self, actor: Actor, username: str) -> User:
        actor.require(Role.AUTHORITY)
        user = self._user(username, lock=True)
        if user.active:  # as a second deactivation: the trail says it once
            raise Conflict(f"the account {user.username} is active", code="USER_ALREADY_ACTIVE")
        user.active = True
        user.failed_logins = 0
        user.locked_until = None
        audit(self.session, self.clock(), actor, "user.reactivate", f"user:{user.username}")
        self.session.flush()
        return user


class TokenAdmin:
    """API tokens managed by people: who may create, list and revoke which tokens, with an expiry.

    The authority manages tokens of every role; a producer only its own producer's tokens."""

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.session = session
        self.clock = clock
        self.tokens = TokenService(session, clock=clock)

    def create(self, actor: Actor, *, role: Role | str, producer_id: str | None = None, label: str = "",
               days: int | None = DEFAULT_TOKEN_DAYS, demo: bool = False) -> tuple[str, ApiToken]:
        """Return the token (to show once) and its row. Every token made here expires, but the
        operator's own at the command line (``SYSTEM`` with ``days=None``); one made by a token
        expires no later than that token (``days`` is cut short to it, which the row's
        ``expires_at`` shows), so a short-lived token cannot mint a long-lived one. The label
        ``DEMO_TOKEN_LABEL`` is the demo's alone (``demo``): ``LABEL_RESERVED`` for anyone else."""
        actor.require(Role.AUTHORITY, Role.PRODUCER)
        label = (label or "").strip()
        if len(label) > MAX_TOKEN_LABEL:  # it had been cut short without a word
            raise Invalid(f"a label is at most {MAX_TOKEN_LABEL} characters", code="TOO_LONG", field="label")
        if label == DEMO_TOKEN_LABEL and not demo:
            raise Invalid(f"the label {DEMO_TOKEN_LABEL!r} is kept for the demo's tokens, which each run of the "
                          "demo revokes: choose another", code="LABEL_RESERVED", field="label")
        try:
            role = Role(role)
        except ValueError:
            raise Invalid(f"role must be one of {', '.join(r.value for r in Role)}", code="BAD_ROLE",
                          field="role") from None
        if actor.role == Role.PRODUCER:
            if role != Role.PRODUCER:
                raise Forbidden("producer staff create only tokens for their own producer", code="ROLE_FORBIDDEN")
            producer_id = producer_id or actor.producer_id
            actor.require_producer(producer_id)
        lasting = days is None and actor == SYSTEM
        days = DEFAULT_TOKEN_DAYS if days is None else days
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS:
            raise Invalid(f"a token lasts between 1 and {MAX_TOKEN_DAYS} days", code="BAD_EXPIRY", field="days")
        now = self.clock()
        expires_at = None if lasting else now + timedelta(days=days)
        kind, _, name = actor.name.partition(":")
        by_token = self._lock_creator(int(name), now) if kind == "token" and name.isdigit() else None
        by_user = self._lock_user(name) if kind == "user" else None
        if by_token is not None and by_token.expires_at is not None:
            expires_at = min(expires_at, by_token.expires_at)
        plain, row = self.tokens.create(role=role, producer_id=producer_id, label=label,
                                        expires_at=expires_at)
        row.created_by_token_id = by_token.id if by_token is not None else None
        row.created_by_user_id = by_user.id if by_user is not None else None
        audit(self.session, now, actor, "token.create", f"token:{row.id}", role=role.value, producer_id=producer_id,
              expires_at=rfc3339(row.expires_at) if row.expires_at is not None else None)
        self.session.flush()
        return plain, row

    def _lock_creator(self, token_id: int, now: datetime) -> ApiToken | None:
        """The token making a token, its row locked (shared) until the transaction ends and read
        afresh. ``revoke`` locks that row first too, so either the revocation finds the new token
        or this finds the revocation and refuses; a token made meanwhile cannot outlive it."""
        row = self.session.get(ApiToken, token_id, with_for_update={"read": True}, populate_existing=True)
        if row is not None and row.revoked_at is not None:
            raise Unauthorized("the bearer token is not valid", code="TOKEN_INVALID")
        if row is not None and row.expires_at is not None and row.expires_at <= now:
            raise Unauthorized("the bearer token has expired", code="TOKEN_EXPIRED")
        return row

    def _lock_user(self, username: str) -> User | None:
        """The person making a token, their row locked (shared) and read afresh, as for a token:
        ``deactivate`` locks it first, so a token made meanwhile is revoked with their others or
        refused; it could not outlive the deactivation."""
        user = self.session.execute(select(User).where(User.username == username)
                                    .with_for_update(read=True).execution_options(populate_existing=True)
                                    ).scalar_one_or_none()
        if user is not None and not user.active:
            raise Unauthorized("this account has been deactivated", code="ACCOUNT_INACTIVE")
        return user

    def _visible(self, actor: Actor, row: ApiToken) -> None:
        if actor.role == Role.AUTHORITY:
            return
        if actor.role == Role.PRODUCER and row.role == Role.PRODUCER.value and row.producer_id == actor.producer_id:
            return
        raise Forbidden("this token belongs to someone else", code="NOT_YOUR_TOKEN")

    def list(self, actor: Actor) -> list[ApiToken]:
        actor.require(Role.AUTHORITY, Role.PRODUCER)
        stmt = select(ApiToken).order_by(ApiToken.id)
        if actor.role == Role.PRODUCER:
            stmt = stmt.where(ApiToken.role == Role.PRODUCER.value, ApiToken.producer_id == actor.producer_id)
        return list(self.session.execute(stmt).scalars())

    def revoke(self, actor: Actor, token_id: int) -> ApiToken:
        """Revoke a token and, with it, the tokens it created (and theirs)."""
        actor.require(Role.AUTHORITY, Role.PRODUCER)
        row = self.session.get(ApiToken, token_id, with_for_update=True, populate_existing=True)
        if row is None:
            raise NotFound(f"no token {token_id}", code="TOKEN_UNKNOWN")
        self._visible(actor, row)
        if row.revoked_at is not None:
            raise Conflict(f"token {token_id} is already revoked", code="TOKEN_ALREADY_REVOKED")
        row.revoked_at = self.clock()
        audit(self.session, row.revoked_at, actor, "token.revoke", f"token:{row.id}")
        _revoke_created(self.session, row.revoked_at, actor, ApiToken.created_by_token_id == row.id,
                        because=f"token:{row.id}")
        self.session.flush()
        return row

    @staticmethod
    def view(row: ApiToken) -> dict[str, Any]:
        return {"id": row.id, "role": row.role, "producer_id": row.producer_id, "label": row.label,
                "created_at": rfc3339(row.created_at),
                "expires_at": rfc3339(row.expires_at) if row.expires_at else None,
                "revoked_at": rfc3339(row.revoked_at) if row.revoked_at else None}


# The CLI bootstraps the first authority account with the system actor.
BOOTSTRAP = SYSTEM
__all__ += ["BOOTSTRAP"]
