"""Declarative base, engine and session factory. SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.errors import error_from_result
from sqlalchemy import DateTime, Dialect, Engine, TypeDecorator, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, sessionmaker, Session

__all__ = ["Base", "UTCDateTime", "make_engine", "make_session_factory", "make_read_engine", "ReadConnections",
           "Reader", "RawQuery", "as_utc"]


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, also on SQLite (which stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):  # noqa: ANN001
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


#: Seconds a statement waits for a lock another transaction holds (PostgreSQL's ``lock_timeout``,
#: SQLite's busy timeout) before it fails and the request is answered 503 with Retry-After
#: (``DB_LOCK_TIMEOUT_SECONDS``). Writers take their turns in milliseconds; the longest lock held
#: in the normal course is a batch's row while 100,000 serials are signed (4 to 5 s at the bench's
#: 22,000-25,000 serials/s, 2026-12-06). A table lock that an operator's migration or an open psql transaction
#: holds had kept requests waiting until gunicorn killed the worker at 60 s, its pending scan
#: events with it.
LOCK_TIMEOUT_SECONDS = 30.0

#: Seconds one of verification's reads may take on PostgreSQL, waiting for locks included
#: (``statement_timeout`` of the read engine, ``DB_READ_TIMEOUT_SECONDS``). Each takes well under
#: a millisecond; one that waits behind a table lock (``ALTER TABLE``, ``VACUUM FULL``) answers 503
#: after this, while a shopper still waits for it.
READ_TIMEOUT_SECONDS = 5.0


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10,
                lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> Engine:
    """An engine tuned for its backend; a statement waits at most ``lock_timeout`` seconds for a
    lock another transaction holds, then fails (an OperationalError: 503 with Retry-After).

    SQLite: WAL, that wait as its busy timeout, foreign keys, and every transaction opened with
    ``BEGIN IMMEDIATE`` so that two writers queue instead of failing on a lock upgrade.
    PostgreSQL: that wait as the connections' ``lock_timeout``.
    """
    if url.startswith("sqlite"):
        busy_ms = round(lock_timeout * 1000)
        engine = create_engine(url, connect_args={"timeout": lock_timeout, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):  # noqa: ANN001
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            # SQLite's own lower() knows ASCII alone: searches (icontains) missed "Cầu Đất" for
            # "cầu đất". Python's, as PostgreSQL's lower() under a UTF-8 locale.
            dbapi_connection.create_function("lower", 1, _lower, deterministic=True)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            @event.listens_for(engine, "do_connect")
            def _private_file(_dialect, _record, _args, _params):  # noqa: ANN001
                # The registry holds shoppers' contacts and photos and password hashes: its file is
                # the owner's alone (it had been created world-readable, by the umask), made when
                # SQLite would make it; SQLite gives its -wal and -shm files the same mode.
                with contextlib.suppress(FileExistsError, FileNotFoundError):  # no folder: SQLite says so
                    os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
                           connect_args=_connection_arguments(url, APPLICATION_NAME))
    _session_settings(engine, lock_timeout=f"{round(lock_timeout * 1000)}ms")
    return engine


def make_read_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10,
                     statement_timeout: float = READ_TIMEOUT_SECONDS) -> Engine:
    """The engine of ``Reader``: connections in autocommit for good, and no pre-ping.

    The main engine pings PostgreSQL at every checkout (a round trip per request, as much as a
    verification's reads). Here a connection the server dropped is found by the statement itself:
    ``RawQuery`` discards it and runs the read again on another (reads are safe to repeat). On
    PostgreSQL a read gives up after ``statement_timeout`` seconds, waits for locks included. On
    SQLite this is the same file with the same settings; only ``Reader`` uses this engine.
    """
    if url.startswith("sqlite"):
        return make_engine(url)
    # AUTOCOMMIT as the engine's own level: every connection it opens reads one statement at a time.
    # Nothing to roll back when a connection comes back (no transaction is ever open on it): no
    # reset on return, which on psycopg took its connection lock for a rollback that did nothing.
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_use_lifo=True,
                           isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
                           connect_args=_connection_arguments(url, READ_APPLICATION_NAME))
    _session_settings(engine, statement_timeout=f"{round(statement_timeout * 1000)}ms")
    return engine


#: What PostgreSQL shows of this service's connections (``pg_stat_activity.application_name``):
#: the main engine's (transactions: writes, the scan writer's flushes) and ``Reader``'s (the
#: verification's reads), so that an operator, and bench/http_load.py, can tell them apart. A
#: ``DATABASE_URL`` that names its own ``application_name`` keeps it.
APPLICATION_NAME = "origin-verify"
READ_APPLICATION_NAME = "origin-verify-read"


#: Seconds libpq waits to connect, the server's first answer included (``connect_timeout``): a
#: database host that does not answer (a network partition, a failover in progress) costs a
#: request this long before its 503, where libpq would wait for the kernel to give up, minutes,
#: and gunicorn would kill the worker after 60 s. A ``DATABASE_URL`` that sets its own keeps it.
CONNECT_TIMEOUT_SECONDS = 5


def _session_settings(engine: Engine, **settings: str) -> None:
    """PostgreSQL settings (``lock_timeout``, ``statement_timeout``) set on each new connection of
    ``engine``, one statement at connect time: unlike libpq's ``options``, a pooler in front
    (PgBouncer) passes it."""
    names = list(settings)
    sql = "SELECT " + ", ".join("set_config(%s, %s, false)" for _ in names)
    params = [value for name in names for value in (name, settings[name])]

    @event.listens_for(engine, "connect")
    def _set(dbapi_connection, _record):  # noqa: ANN001
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # not in a transaction of its own, which would end them
        try:
            dbapi_connection.execute(sql, params)
        finally:
            dbapi_connection.autocommit = autocommit


def _connection_arguments(url: str, name: str) -> dict[str, str | int]:
    """The connection's arguments: its ``application_name`` and ``connect_timeout``, unless the URL
    names them."""
    query = make_url(url).query
    arguments: dict[str, str | int] = {} if "application_name" in query else {"application_name": name}
    if "connect_timeout" not in query:
        arguments["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return arguments


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def as_utc(value: datetime | str | None) -> datetime | None:
    """A ``UTCDateTime`` column read through a raw DBAPI cursor: SQLite gives the stored text."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


class ReadConnections:
    """The read engine's DBAPI connections for ``Reader``: one per thread, kept across requests.

    A thread's first read takes a connection from the read engine's pool and detaches it
    (``PoolProxiedConnection.detach``: it no longer counts against the pool); the thread keeps it
    for good. Checking a pooled connection out and back in for every request (the pool's
    bookkeeping, and on SQLite the rollback of a connection that never opened a transaction) cost
    about a tenth of an in-process verification on SQLite (595 -> 538 µs, alternating runs). The
    connections are autocommit, so no snapshot or lock outlives a statement. A connection the
    server dropped is discarded (``discard``) and the thread's next read opens another.
    ``Engine.dispose()`` closes them all; a forked child leaves its parent's alone and opens its own.
    """

    def __init__(self, read_engine: Engine) -> None:
        self.engine = read_engine
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[Any] = set()  # every thread's, for dispose()
        event.listen(read_engine, "engine_disposed", lambda _engine: self.close())
        _READ_CONNECTIONS.add(self)

    def get(self) -> Any:
        """This thread's DBAPI connection."""
        dbapi = getattr(self._local, "dbapi", None)
        if dbapi is None:
            dialect = self.engine.dialect
            try:
                fairy = self.engine.raw_connection()
            except dialect.loaded_dbapi.Error as exc:
                # As a Session's connection would fail: SQLAlchemy's error (an OperationalError for
                # a server that is down, which the app answers 503), not the driver's own (a 500).
                raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error) from exc
            fairy.detach()
            dbapi = self._local.dbapi = fairy.dbapi_connection
            with self._lock:
                self._open.add(dbapi)
        return dbapi

    def discard(self) -> None:
        """Close this thread's connection (the server dropped it); the next ``get`` opens another."""
        dbapi = self._local.__dict__.pop("dbapi", None)
        if dbapi is not None:
            with self._lock:
                self._open.discard(dbapi)
            _close(dbapi)

    def close(self) -> None:
        """Close every thread's connection (shutdown, tests)."""
        with self._lock:
            held, self._open = self._open, set()
            self._local = threading.local()
        for dbapi in held:
            _close(dbapi)

    def _after_fork(self) -> None:
        # The parent's connections share their sockets with it: the child never closes or uses them.
        _INHERITED.extend(self._open)
        self._open = set()
        self._local = threading.local()
        self._lock = threading.Lock()


_READ_CONNECTIONS: "weakref.WeakSet[ReadConnections]" = weakref.WeakSet()
_INHERITED: list[Any] = []


def _read_connections_after_fork() -> None:
    for connections in list(_READ_CONNECTIONS):
        connections._after_fork()


os.register_at_fork(after_in_child=_read_connections_after_fork)


class Reader:
    """Read-only work without a Session or a transaction: the verification hot path.

    Statements go through ``RawQuery`` to this thread's connection of the read engine
    (``ReadConnections``): autocommit, so every statement sees what was committed when it started.
    A Session's own bookkeeping (begin, isolation switch, close) cost more than the reads
    themselves, and the lookup cache's misses go the same way (``registry.lookup``). A Reader
    holds nothing of its own: there is nothing to close.
    """

    def __init__(self, connections: ReadConnections) -> None:
        self._connections = connections
        self.dialect = connections.engine.dialect

    def dbapi_connection(self):  # noqa: ANN201
        return self._connections.get()

    def invalidate(self) -> None:
        """The server dropped the connection: discard it, the next statement opens another."""
        self._connections.discard()


class RawQuery:
    """One SQL statement run on the DBAPI connection of a Session or a Reader, skipping SQLAlchemy's
    statement layer (about 35 µs a statement, against 3 µs for the driver on SQLite).

    Only for verification (its hot path, measured by ``bench/http_load.py``, and the lookup cache's
    misses) and the scan writer; everything else goes through SQLAlchemy. Written with ``:name``
    parameters, turned into the driver's style.
    """

    _NAMED = re.compile(r"(?<![:\w]):(\w+)")

    def __init__(self, sql: str, *, binary: bool = False) -> None:
        """``binary``: psycopg sends the parameters in PostgreSQL's binary format (``%(name)b``),
        for statements over arrays: dumping a list in text format costs about 15 µs of Python a
        row of six columns, in binary about 2 µs."""
        self.sql = sql
        self._pyformat = self._NAMED.sub(r"%(\1)b" if binary else r"%(\1)s", sql.replace("%", "%%"))
        # For a prepared statement on PostgreSQL: $1, $2... in the order of first use.
        self._names: list[str] = []
        self._numbered = self._NAMED.sub(self._number, sql)
        self._statement_name = b"rq_" + hashlib.sha1(sql.encode()).hexdigest()[:16].encode()

    def _number(self, match: re.Match) -> str:
        if match.group(1) not in self._names:
            self._names.append(match.group(1))
        return f"${self._names.index(match.group(1)) + 1}"

    def first(self, source: "Session | Reader", params: dict[str, Any]) -> tuple | None:
        if isinstance(source, Reader) and source.dialect.name == "postgresql":
            return self._run(source, params, self._prepared_first)
        return self._run(source, params, _fetch_one)

    def all(self, source: "Session | Reader", params: dict[str, Any]) -> list[tuple]:
        if source_dialect(source).name == "sqlite":
            params = _sqlite_params(params)
        return self._run(source, params, _fetch_all)

    def execute(self, source: "Session | Reader", params: dict[str, Any]) -> int:
        """A statement that returns no rows (datetimes stored as ``UTCDateTime`` stores them);
        answers how many rows it changed."""
        if source_dialect(source).name == "sqlite":
            params = _sqlite_params(params)

        return self._run(source, params, _row_count)

    def many(self, source: "Session | Reader", rows: list[dict[str, Any]]) -> None:
        """``executemany``: datetimes are stored as ``UTCDateTime`` stores them."""
        if source_dialect(source).name == "sqlite":
            rows = [_sqlite_params(row) for row in rows]
        self._run(source, rows, _execute_many)

    def _run(self, source: "Session | Reader", params: Any, work: Callable[[Any, str, Any], Any]) -> Any:
        dialect = source_dialect(source)
        sql = self._pyformat if dialect.paramstyle == "pyformat" else self.sql
        for attempt in (1, 2):
            dbapi = (source.dbapi_connection() if isinstance(source, Reader)
                     else source.connection().connection.dbapi_connection)
            try:
                return work(dbapi, sql, params)
            except dialect.loaded_dbapi.Error as exc:
                # As SQLAlchemy would: its exception types (callers catch SQLAlchemyError), and a
                # connection the server dropped is discarded. A Reader's read (autocommit: nothing
                # else to run again) is run again once after that, or after a read replica
                # cancelled it for a conflict with recovery (the primary's VACUUM removed rows it
                # might have needed): the next read sees the replayed rows.
                if isinstance(source, Reader):
                    if dialect.is_disconnect(exc, dbapi, None):
                        source.invalidate()
                        if attempt == 1:
                            continue
                    elif attempt == 1 and getattr(exc, "sqlstate", None) == _SERIALIZATION_FAILURE:
                        continue
                raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error) from exc
        raise AssertionError("unreachable")

    def _prepared_first(self, dbapi: Any, _sql: str, params: dict[str, Any]) -> tuple | None:
        """A read on PostgreSQL through a ``Reader`` (autocommit, no transaction to disturb): the
        statement is prepared once per connection and run with libpq's PQexecPrepared through
        psycopg's ``Connection.pgconn``, its result read by psycopg's own loaders (the same
        Python values as a cursor gives). The unit read of GET /verify cost 85 µs of client CPU
        through a psycopg cursor, 58 this way (in process; the server's share is unchanged).
        The result comes in binary and the statement keeps its ``Transformer``, with the loaders
        of its columns looked up once: 45 -> 36 µs of client CPU (2026-12-06, the unit read in a
        loop; binary results alone had changed nothing measurable)."""
        pgconn = dbapi.pgconn
        statements = _PREPARED.get(dbapi)
        if statements is None:
            statements = _PREPARED[dbapi] = {}
        prepared = statements.get(self._statement_name)
        transformer = prepared.transformer if prepared is not None else Transformer(dbapi)
        values = transformer.dump_sequence([params[name] for name in self._names], [PyFormat.TEXT] * len(self._names))
        for _ in (1, 2):
            if prepared is None:
                result = pgconn.prepare(self._statement_name, self._numbered.encode(), None)
                if result.status != pq.ExecStatus.COMMAND_OK:
                    raise error_from_result(result, encoding=transformer.encoding)
                prepared = statements[self._statement_name] = _Prepared(transformer)
            result = pgconn.exec_prepared(self._statement_name, values, result_format=pq.Format.BINARY)
            if result.status == pq.ExecStatus.TUPLES_OK:
                break
            if result.error_field(pq.DiagnosticField.SQLSTATE) == _NO_SUCH_STATEMENT:
                del statements[self._statement_name]  # deallocated meanwhile (DISCARD ALL): again
                prepared = None
                continue
            raise error_from_result(result, encoding=transformer.encoding)
        else:
            raise error_from_result(result, encoding=transformer.encoding)
        if not result.ntuples:
            return None
        transformer.set_pgresult(result, set_loaders=not prepared.loaders)  # one statement: one row type
        prepared.loaders = True
        return transformer.load_row(0, tuple)


@dataclass(slots=True)
class _Prepared:
    """A ``RawQuery`` prepared on one connection: its transformer (dumpers by parameter type, and
    once a row came back, the loaders of the statement's columns)."""

    transformer: Transformer
    loaders: bool = False


#: The statements prepared on each PostgreSQL connection (``RawQuery._prepared_first``).
_NO_SUCH_STATEMENT = b"26000"  # invalid_sql_statement_name
_SERIALIZATION_FAILURE = "40001"  # a standby's "canceling statement due to conflict with recovery"
_PREPARED: "weakref.WeakKeyDictionary[Any, dict[bytes, _Prepared]]" = weakref.WeakKeyDictionary()


def _on_cursor(step: Callable[[Any, str, Any], Any]) -> Callable[[Any, str, Any], Any]:
    """``step(cursor, sql, params)`` as a ``RawQuery`` work: on a fresh cursor, closed after."""
    def work(dbapi: Any, sql: str, params: Any) -> Any:
        cursor = dbapi.cursor()
        try:
            return step(cursor, sql, params)
        finally:
            _close(cursor)
    return work


@_on_cursor
def _fetch_one(cursor: Any, sql: str, params: Any) -> tuple | None:
    cursor.execute(sql, params)
    return cursor.fetchone()


@_on_cursor
def _fetch_all(cursor: Any, sql: str, params: Any) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


@_on_cursor
def _row_count(cursor: Any, sql: str, params: Any) -> int:
    cursor.execute(sql, params)
    return cursor.rowcount


@_on_cursor
def _execute_many(cursor: Any, sql: str, rows: Any) -> None:
    cursor.executemany(sql, rows)


def _close(closable: Any) -> None:
    """Close a cursor or a connection; one that just failed may refuse, which changes nothing."""
    try:
        closable.close()
    except Exception:  # noqa: BLE001 - the driver's own error types differ
        pass


def source_dialect(source: "Session | Reader") -> Dialect:
    return source.dialect if isinstance(source, Reader) else source.get_bind().dialect


def _sqlite_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _sqlite_datetime(v) if isinstance(v, datetime) else v for k, v in params.items()}


def _sqlite_datetime(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores (UTC, naive, always six fraction digits)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")  # %Y-%m-%d %H:%M:%S.%f
