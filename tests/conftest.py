"""Shared fixtures: a real database (SQLite per test, or PostgreSQL from TEST_DATABASE_URL), the app,
its client and CLI runner, fresh keys, and a demo-like producer with a certified key."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from app import create_app
from app.cli import init_instance
from app.migrations import upgrade_to_head
from registry.append_only import create_statements, drop_statements
from registry.db import Base, make_engine
from registry.services import SYSTEM, Registry, Role, TokenService

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))
PG_URL = os.environ.get("TEST_DATABASE_URL")
TEST_PASSPHRASE = "test-passphrase-not-secret"
BASE_URL = "https://verify.example.vn"
PREFIX = "893600001"
GTIN = "08936000010010"  # valid check digit; company part 8936000010... starts with PREFIX


def _reset_postgres(url: str, *, drop: bool) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


@pytest.fixture(scope="session")
def template_instance(tmp_path_factory) -> Path:
    """An instance folder migrated once (SQLite file + authority key), copied into each test."""
    path = tmp_path_factory.mktemp("template-instance")
    cfg = {"INSTANCE_DIR": path, "KEY_PASSPHRASE": TEST_PASSPHRASE, "SECRET_KEY": "t" * 32, "SCAN_SALT": "salt",
           "DATABASE_URL": PG_URL or f"sqlite:///{path / 'registry.db'}"}
    if PG_URL:
        _reset_postgres(PG_URL, drop=True)
    app = create_app(cfg)
    init_instance(app)
    app.extensions["engine"].dispose()
    yield path
    if PG_URL:
        _reset_postgres(PG_URL, drop=True)


@contextlib.contextmanager
def schema_restored_on_failure(engine):
    """For a test that moves the schema off head (a migration test): if anything fails inside,
    the schema is rebuilt at head before the failure is raised. On PostgreSQL one database serves
    the whole session, and a schema left at an old revision failed every later test in its fixture
    (their connections then ran out: "too many clients"), hiding the one failure that mattered.
    An SQLite test has its own copy of the database: nothing to restore."""
    try:
        yield
    except BaseException:
        if engine.dialect.name == "postgresql":
            engine.dispose()  # the test's connections, and whatever transaction they held
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            upgrade_to_head(engine)
            engine.dispose()
        raise


def _truncate_postgres(engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        with append_only_lifted(conn):  # the log's and the audit trail's guards refuse a TRUNCATE
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@contextlib.contextmanager
def append_only_lifted(connection):
    """What the schema's owner can do, and a test of tampering does: take away the triggers that keep
    the log and the audit trail append-only (registry.append_only), change rows, put them back."""
    dialect = (getattr(connection, "dialect", None) or connection.get_bind().dialect).name  # a Connection or a Session
    for statement in drop_statements(dialect):
        connection.execute(text(statement))
    yield
    for statement in create_statements(dialect):
        connection.execute(text(statement))


@contextlib.contextmanager
def another_app(instance_dir, database_url: str, **settings: str):
    """Another app server over ``instance_dir`` and ``database_url`` (or one whose database is
    down, or with other settings): the tests' passphrase and secret, rate limits off, unless
    ``settings`` say otherwise. Its scan writer is stopped and its connections closed after."""
    application = create_app({"INSTANCE_DIR": str(instance_dir), "KEY_PASSPHRASE": TEST_PASSPHRASE,
                              "SECRET_KEY": "t" * 32, "RATE_LIMITS": "off", "DATABASE_URL": database_url, **settings})
    try:
        yield application
    finally:
        application.extensions["scan_writer"].close()
        application.extensions["engine"].dispose()
        application.extensions["read_engine"].dispose()


@pytest.fixture
def app(template_instance, tmp_path):
    instance = tmp_path / "instance"
    shutil.copytree(template_instance, instance)
    cfg = {"INSTANCE_DIR": instance, "KEY_PASSPHRASE": TEST_PASSPHRASE, "SECRET_KEY": "t" * 32,
           "SCAN_SALT": "salt", "BASE_URL": BASE_URL, "RATE_LIMITS": "off", "TESTING": "1",
           "DATABASE_URL": PG_URL or f"sqlite:///{instance / 'registry.db'}"}
    application = create_app(cfg)
    if PG_URL:
        _truncate_postgres(application.extensions["engine"])
    yield application
    application.extensions["scan_writer"].close()
    application.extensions["read_engine"].dispose()
    application.extensions["engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def session(app):
    s = app.extensions["session_factory"]()
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def registry(app, session) -> Registry:
    return Registry(session, keystore=app.extensions["keystore"], base_url=app.config["BASE_URL"])


class FixedClock:
    """A clock for services (``clock=``) that stands still until a test moves ``now``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """A producer with a certified custodial key and bearer tokens for each role."""

    producer_id: str
    kid: str
    tokens: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def batch_data(*, gtin: str = GTIN, lot: str = "LOT-1", expiry: date | None = None, **extra) -> dict:
    today = date.today()
    data = {
        "gtin": gtin, "lot": lot,
        "product": {"name": "Cà phê rang xay", "brand": "Highland", "category": "Coffee"},
        "facility": {"name": "Xưởng Ea Tu", "address": "Đắk Lắk", "country": "VN"},
        "production_date": (today - timedelta(days=10)).isoformat(),
        "expiry_date": (expiry or today + timedelta(days=365)).isoformat(),
        "quantity": 100,
        "certifications": [{"scheme": "VietGAP", "id": "VG-1"}],
    }
    data.update(extra)
    return data


@pytest.fixture
def world(registry, session) -> World:
    producer = registry.admit_producer(SYSTEM, name="HTX Highland", tax_code="0312345673",
                                       gs1_prefixes=[PREFIX], country="VN")
    key = registry.certify_key(SYSTEM, producer.id)
    tokens = TokenService(session)
    issued = {role.value: tokens.create(role=role)[0] for role in (Role.AUTHORITY, Role.INSPECTOR, Role.PARTNER)}
    issued["producer"] = tokens.create(role=Role.PRODUCER, producer_id=producer.id)[0]
    session.commit()
    return World(producer_id=producer.id, kid=key.kid, tokens=issued)


@contextlib.contextmanager
def serving(application):
    """``application`` served over real HTTP on a free loopback port, in a thread: its base URL."""
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def live_server(app):
    """The app served over real HTTP on a free loopback port, in a thread."""
    with serving(app) as url:
        yield url


@contextlib.contextmanager
def lock_held(app, statement: str):
    """Another transaction holding a lock until the block ends, as an operator's psql session or a
    migration would: on PostgreSQL the one ``statement`` takes, on SQLite the file's write lock
    (every transaction here begins IMMEDIATE)."""
    connection = app.extensions["engine"].connect()
    connection.begin()
    try:
        if PG_URL:
            connection.exec_driver_sql(statement)
        yield
    finally:
        connection.rollback()
        connection.close()
