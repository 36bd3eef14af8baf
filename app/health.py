"""Probes for a load balancer or an orchestrator: ``GET /healthz`` (the process answers) and
``GET /readyz`` (it can serve: the database answers through both of its pools, its schema is the
one this code was written for, and its KEY_PASSPHRASE opens the authority key); it also reports
what does not stop verification (the producers' private keys in its key folder, Redis, the
database taking writes, scan events waiting).

``/readyz`` answers 200 ``{"status": "ready", "checks": {...}}`` or 503 with the API's error
shape (``NOT_READY``) and the same ``checks``. A server whose passphrase does not open the keys
verifies, but every signing write would fail on it (``KEYS_UNAVAILABLE``): taken out, a rolling
upgrade with a wrong passphrase stops at its first server. What cannot stop verifications does
not make a server unready, since every server would then be taken out together: Redis down (the
rate limits count in each server meanwhile, ``app.extensions.RateLimiter``), a schema newer than
the code (a rolling upgrade: migrations first, then the servers), or scan events waiting to be
written (each server keeps them and retries). They are reported, for monitoring. No address,
version or error text goes out; the log has the errors.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, current_app
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from app.errors import error_response
from keys.errors import KeyStoreError
from keys.storage import KeyStore
from registry.db import RawQuery, Reader
from registry.models import ProducerKey
from registry.services import AUTHORITY_KEY_NAME

__all__ = ["bp", "readiness", "schema_state"]

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

_SELECT_ONE = RawQuery("SELECT 1")
#: Scan events older than this still unwritten: the database refuses the scan writer's flushes.
SCAN_BACKLOG_LATE = timedelta(seconds=60)


@bp.get("/healthz")
def healthz():
    return _no_store(current_app.json.response({"status": "alive"}))


@bp.get("/readyz")
def readyz():
    ready, checks = readiness(current_app)
    if ready:
        return _no_store(current_app.json.response({"status": "ready", "checks": checks}))
    failing = ", ".join(f"{name} {checks[name]}" for name, fine in _READY.items() if checks[name] not in fine)
    return _no_store(error_response(503, "NOT_READY", f"this server cannot serve: {failing}", checks=checks))


#: The checks a server cannot serve without, and the states each may be in for it to serve.
_READY = {"database": ("ok",), "read_database": ("ok",), "schema": ("ok", "newer than this server"),
          "signing_keys": ("ok",)}


def readiness(app) -> tuple[bool, dict[str, Any]]:  # noqa: ANN001 - the Flask app
    """Whether ``app`` can serve, and what each check found."""
    extensions = app.extensions
    checks: dict[str, Any] = {}
    revision, writable = _revision(extensions["session_factory"])
    checks["database"] = "ok" if revision is not _UNREACHABLE else "unreachable"
    checks["database_writes"] = {True: "ok", False: "refused", None: "unknown"}[writable]
    checks["read_database"] = _read_database(Reader(extensions["read_connections"]))
    checks["schema"] = "unknown" if revision is _UNREACHABLE else schema_state(app, revision)
    checks["signing_keys"] = _signing_keys(extensions["keystore"])
    checks["producer_keys"] = ("unknown" if revision is _UNREACHABLE  # not a second connect timeout
                               else _producer_keys(extensions["session_factory"], extensions["keystore"]))
    limiter = extensions["rate_limiter"]
    if not app.config["REDIS_URL"]:
        checks["rate_limit_counters"] = "in each worker"
    elif limiter.storage.check():
        checks["rate_limit_counters"] = "ok"
    else:
        checks["rate_limit_counters"] = "unreachable: counting in each worker"
    writer = extensions["scan_writer"]
    pending, oldest = writer.backlog()
    age = (datetime.now(timezone.utc) - oldest).total_seconds() if oldest is not None else 0.0
    checks["scan_events_pending"] = {"events": pending, "oldest_seconds": round(max(age, 0.0), 1),
                                     "late": age > SCAN_BACKLOG_LATE.total_seconds(), "files": writer.spooled()}
    return all(checks[name] in fine for name, fine in _READY.items()), checks


_UNREACHABLE = object()


def _revision(session_factory) -> tuple[Any, bool | None]:  # noqa: ANN001
    """The schema's Alembic revision (None before ``init``), or ``_UNREACHABLE``; and whether the
    database takes writes (PostgreSQL's ``transaction_read_only``: a standby, a failover in
    progress), None when it cannot be read. Writes refused leave a server ready: verification
    only reads, and its scan events wait in each server."""
    try:
        with session_factory() as session:
            has_table = session.get_bind().dialect.has_table(session.connection(), "alembic_version")
            revision = session.execute(text("SELECT version_num FROM alembic_version")).scalar() if has_table else None
            writable = True
            if session.get_bind().dialect.name == "postgresql":
                writable = session.execute(text("SELECT current_setting('transaction_read_only')")).scalar() == "off"
            return revision, writable
    except SQLAlchemyError as exc:
        log.warning("readiness: the database cannot be read: %s", exc)
        return _UNREACHABLE, None


def _read_database(reader: Reader) -> str:
    """Verification's own pool (``READ_DATABASE_URL``, or the same database): a statement on it."""
    try:
        _SELECT_ONE.first(reader, {})
        return "ok"
    except SQLAlchemyError as exc:
        log.warning("readiness: the verification's database cannot be read: %s", exc)
        return "unreachable"


def _signing_keys(keystore: KeyStore) -> str:
    """The authority key (every registration, recall and checkpoint is signed with it): ``ok`` when
    this server's KEY_PASSPHRASE opens it (then kept open: later probes cost nothing), ``missing``
    (no ``init``, or not this instance's key folder), ``cannot be opened`` (another passphrase)."""
    if not keystore.has(AUTHORITY_KEY_NAME):
        return "missing"
    try:
        keystore.load(AUTHORITY_KEY_NAME)
    except KeyStoreError as exc:
        log.warning("readiness: %s", exc)
        return "cannot be opened"
    return "ok"


def _producer_keys(session_factory, keystore: KeyStore) -> str:  # noqa: ANN001
    """The private keys the service keeps for producers (custodial keys, active and not expired:
    it signs their codes with them), in this server's key folder: ``ok``, or ``N of M missing``
    (a server given a partial copy of the instance's key folder instead of the shared one: each
    signing write for those producers is refused, ``KEYS_UNAVAILABLE``); ``unknown`` when the
    database cannot be read (not asked at all when ``_revision`` found it unreachable). Reported, not fatal: a key just made on another server can show here
    a moment before its file does (a shared folder's cache), and every server would be taken out
    together. Files only (one folder listing); the passphrase is ``signing_keys``'s check."""
    try:
        with session_factory() as session:
            kids = set(session.scalars(select(ProducerKey.kid).where(
                ProducerKey.custodial.is_(True), ProducerKey.status == "active",
                ProducerKey.not_after > datetime.now(timezone.utc))))
    except SQLAlchemyError as exc:
        log.warning("readiness: the producers' keys cannot be read: %s", exc)
        return "unknown"
    missing = kids - set(keystore.kids())
    if not missing:
        return "ok"
    log.warning("readiness: %d of the producers' private keys are not in this server's key folder: %s",
                len(missing), ", ".join(sorted(missing)[:20]))
    return f"{len(missing)} of {len(kids)} missing"


def schema_state(app, revision: str | None) -> str:  # noqa: ANN001
    """``ok`` at the code's head; ``not initialised``, ``migrations to apply`` (not ready: the code
    would meet tables it does not know); ``newer than this server`` (ready: a rolling upgrade)."""
    if revision is None:
        return "not initialised"
    heads = app.extensions.get("schema_heads")
    if heads is None:
        from alembic.script import ScriptDirectory

        from app.migrations import alembic_config

        script = ScriptDirectory.from_config(alembic_config())
        known = {rev.revision for rev in script.walk_revisions()}
        heads = app.extensions["schema_heads"] = (frozenset(script.get_heads()), frozenset(known))
    head, known = heads
    if revision in head:
        return "ok"
    return "migrations to apply" if revision in known else "newer than this server"


def _no_store(response):  # noqa: ANN001, ANN202
    response.headers["Cache-Control"] = "no-store"
    return response
