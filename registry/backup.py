"""A consistent copy of an instance, taken while it serves (``python -m app backup DIR``).

What an instance cannot be rebuilt without: the database, the folder of private keys (each
encrypted under ``KEY_PASSPHRASE``) and, on a development instance, what it generated for itself
in place of the settings (``DEV_SECRETS``: the keys' passphrase too, and the salt the scan
history's client hashes depend on); the manifest names the settings a restore still needs.

The database is copied in one snapshot while writers go on: on SQLite with its online backup, in a
read transaction (WAL), then checked (``PRAGMA quick_check``), into ``registry.db``; on PostgreSQL
by ``pg_dump --format=custom`` into ``registry.dump``, run on a snapshot exported by a
REPEATABLE READ transaction held open until it ends (``pg_export_snapshot()``, ``--snapshot``), in
which the log's checkpoint and the batches are read too, then read back whole by ``pg_restore``. ``MANIFEST.json`` names each file with its
SHA-256 and the log's size and root in that snapshot (its latest signed checkpoint), so that a
restore can be checked against it (``log verify --checkpoint``). The copy holds encrypted private
keys: its folder is 0700 and its files 0600, and it belongs with the passphrase's custodian, not in
the same place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Collection
from typing import Any, Callable

from psycopg.conninfo import make_conninfo
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from keys.encoding import rfc3339, utcnow
from registry.db import make_engine
from registry.errors import Conflict, Invalid, RegistryError
from registry.models import Batch, Checkpoint

__all__ = ["Backup", "BackupFailed", "DEV_SECRETS", "backup", "backup_postgresql", "backup_sqlite"]

# What an instance writes into its folder when a setting is not given (keys.storage.development_passphrase,
# app.config._dev_secret), by the setting it stands for.
DEV_SECRETS = {"dev-key-passphrase": "KEY_PASSPHRASE", "dev-secret-key": "SECRET_KEY", "dev-scan-salt": "SCAN_SALT"}


@dataclass(frozen=True)
class Backup:
    target: Path
    manifest: dict[str, Any]


class BackupFailed(RegistryError):
    """The copy could not be made (pg_dump refused, the database could not be reached); its folder is gone."""

    code = "BACKUP_FAILED"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _new_private(path: Path, mode: str = "wb"):  # noqa: ANN202 - a file object
    """A new file only its owner can read (0600 from its creation, not after)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), mode,
                     **({} if "b" in mode else {"encoding": "utf-8"}))


def _private_copy(source: Path, target: Path) -> None:
    with _new_private(target) as out, source.open("rb") as stream:
        shutil.copyfileobj(stream, out)


def backup(database_url: str, *, instance_dir: Path, key_dir: Path, target: Path,
           clock: Callable[[], Any] = utcnow, generated: Collection[str] | None = None) -> Backup:
    """Copy the instance into ``target``, a folder that must not exist yet, whichever its database.
    ``generated``: the settings the instance runs on generated values of (``DEV_SECRETS``' files),
    whose files go with it; the others are settings a restore needs. None: every such file in its
    folder."""
    if make_url(database_url).get_backend_name() == "postgresql":
        return backup_postgresql(database_url, instance_dir=instance_dir, key_dir=key_dir, target=target, clock=clock,
                                 generated=generated)
    return backup_sqlite(database_url, instance_dir=instance_dir, key_dir=key_dir, target=target, clock=clock,
                         generated=generated)


def backup_sqlite(database_url: str, *, instance_dir: Path, key_dir: Path, target: Path,
                  clock: Callable[[], Any] = utcnow, generated: Collection[str] | None = None) -> Backup:
    """Copy an instance on SQLite into ``target``, a folder that must not exist yet."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise ValueError(f"backup_sqlite() was given a {url.get_backend_name()} database: backup() picks the way")
    source = Path(url.database or "")
    if not source.is_file():
        raise Invalid(f"no database file at {source}", code="NOT_INITIALISED")
    return _into_new_folder(target, lambda: _fill(_copy_sqlite(source, target), instance_dir, key_dir, target, clock,
                                                  generated))


def backup_postgresql(database_url: str, *, instance_dir: Path, key_dir: Path, target: Path,
                      clock: Callable[[], Any] = utcnow, generated: Collection[str] | None = None) -> Backup:
    """Copy an instance on PostgreSQL into ``target``, a folder that must not exist yet, with the
    ``pg_dump`` found on ``PATH`` (its version at least the server's, as pg_dump itself demands)."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise Invalid("the database is PostgreSQL and pg_dump is not installed (not found on PATH): install the "
                      "PostgreSQL client tools, of the server's major version or newer (Debian: apt-get install "
                      "postgresql-client), and run the backup again", code="BACKUP_NEEDS_PG_DUMP")
    return _into_new_folder(target, lambda: _fill(_dump_postgresql(pg_dump, database_url, target), instance_dir,
                                                  key_dir, target, clock, generated))


def _into_new_folder(target: Path, fill: Callable[[], dict[str, Any]]) -> Backup:
    try:
        target.mkdir(mode=0o700, parents=False)
    except FileExistsError:
        raise Conflict(f"{target} already exists: a backup goes into a new folder", code="BACKUP_TARGET_EXISTS",
                       field="target") from None
    except FileNotFoundError:
        raise Invalid(f"the folder {target.parent} does not exist", code="BACKUP_TARGET_MISSING",
                      field="target") from None
    try:
        manifest = fill()
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no half backup left to be taken for a whole one
        raise
    return Backup(target=target, manifest=manifest)


@dataclass(frozen=True)
class _Copied:
    """The database's copy in the backup folder, and what it held (read in the copy's own snapshot)."""

    name: str
    checkpoint: dict[str, Any]
    batches: int


def _copy_sqlite(source: Path, target: Path) -> _Copied:
    copy = target / "registry.db"
    _new_private(copy).close()  # SQLite writes into it, keeping its mode
    reader = sqlite3.connect(source, timeout=30)  # only read: a WAL reader neither waits for nor blocks writers
    writer = sqlite3.connect(copy)
    try:
        reader.backup(writer)  # every page in one step: one snapshot
        writer.execute("PRAGMA journal_mode=DELETE")  # the copy is one file, whatever the source's WAL
        checked = writer.execute("PRAGMA quick_check").fetchall()
        if checked != [("ok",)]:
            raise Invalid(f"the copy does not pass SQLite's quick check: {checked[:5]}", code="BACKUP_CORRUPT")
        # The log as its latest signed checkpoint says (every append signs one in its transaction)
        latest = writer.execute("SELECT signed FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        checkpoint = json.loads(latest[0]) if latest is not None else {"size": 0, "root": None}
        batches = writer.execute("SELECT count(*) FROM batches").fetchone()[0]
    finally:
        writer.close()
        reader.close()
    return _Copied(name=copy.name, checkpoint=checkpoint, batches=batches)


def _libpq_connection(url: URL) -> tuple[str, str | None]:
    """A SQLAlchemy PostgreSQL URL as libpq connection parameters (``key=value`` text, which
    ``pg_dump --dbname`` takes) and, apart, its password: never on a command line, where every user
    of the machine can read it (``ps``); it goes in the subprocess's ``PGPASSWORD``."""
    parameters: dict[str, Any] = {"host": url.host, "port": url.port, "user": url.username, "dbname": url.database}
    for name, value in url.query.items():  # ?host=/var/run/postgresql, sslmode=..., a list of hosts
        parameters[name] = ",".join(value) if isinstance(value, tuple) else value
    return make_conninfo("", **{name: value for name, value in parameters.items() if value is not None}), url.password


def _dump_postgresql(pg_dump: str, database_url: str, target: Path) -> _Copied:
    copy = target / "registry.dump"
    _new_private(copy).close()  # pg_dump writes into it, keeping its mode (its own would follow the umask)
    conninfo, password = _libpq_connection(make_url(database_url))
    environment = dict(os.environ, **({"PGPASSWORD": password} if password is not None else {}))
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as connection:
            # One snapshot for pg_dump and for what the manifest says of it: exported by this
            # transaction, which stays open (and so the snapshot valid) until pg_dump has ended.
            connection = connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            latest = connection.execute(select(Checkpoint.signed).order_by(Checkpoint.size.desc()).limit(1)).scalar()
            batches = connection.execute(select(func.count()).select_from(Batch)).scalar_one()
            done = subprocess.run([pg_dump, "--format=custom", f"--snapshot={snapshot}", "--no-password",
                                   f"--file={copy}", f"--dbname={conninfo}"],
                                  env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  check=False)
    except SQLAlchemyError as exc:  # the server cannot be reached, or refuses the snapshot
        raise BackupFailed(f"the database could not be read: {getattr(exc, 'orig', None) or exc}; "
                           f"nothing was kept in {target}") from None
    finally:
        engine.dispose()
    if done.returncode != 0:  # a server newer than this pg_dump, a table it may not read, a full disk...
        said = done.stderr.strip() or f"no message, exit status {done.returncode}"
        raise BackupFailed(f"pg_dump failed: {said}; nothing was kept in {target}")
    _read_back(pg_dump, copy, target)
    checkpoint = latest if latest is not None else {"size": 0, "root": None}
    return _Copied(name=copy.name, checkpoint=checkpoint, batches=batches)


def _read_back(pg_dump: str, copy: Path, target: Path) -> None:
    """The dump read back whole, as the SQLite copy is checked: ``pg_restore`` turns every entry
    into the SQL a restore would run, written nowhere (``--file`` the null device), so every data
    block is read and decompressed. A file pg_restore cannot open, or one cut short (its table of
    contents still lists what the lost blocks held), is no backup."""
    beside = Path(pg_dump).with_name("pg_restore")
    pg_restore = str(beside) if beside.is_file() else shutil.which("pg_restore")
    if pg_restore is None:
        raise BackupFailed(f"pg_restore is not installed beside pg_dump, so the dump cannot be read back; install "
                           f"postgresql-client (it has both); nothing was kept in {target}")
    read = subprocess.run([pg_restore, f"--file={os.devnull}", str(copy)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    if read.returncode != 0:
        said = read.stderr.strip() or f"no message, exit status {read.returncode}"
        raise BackupFailed(f"the dump cannot be read back ({said}); nothing was kept in {target}")


def _fill(copied: _Copied, instance_dir: Path, key_dir: Path, target: Path,
          clock: Callable[[], Any], generated: Collection[str] | None) -> dict[str, Any]:
    (target / "keys").mkdir(mode=0o700)
    files = {copied.name: _sha256(target / copied.name)}
    for key in sorted(key_dir.glob("*.pem")) if key_dir.is_dir() else []:
        _private_copy(key, target / "keys" / key.name)
        files[f"keys/{key.name}"] = _sha256(target / "keys" / key.name)
    for name, setting in DEV_SECRETS.items():
        if (generated is None or setting in generated) and (instance_dir / name).is_file():
            _private_copy(instance_dir / name, target / name)
            files[name] = _sha256(target / name)
    manifest = {
        "created_at": rfc3339(clock()),
        "log": {"size": copied.checkpoint["size"], "root": copied.checkpoint["root"]},
        "batches": copied.batches,
        "files": files,
        "needs": [setting for name, setting in DEV_SECRETS.items() if name not in files],  # as configured
    }
    with _new_private(target / "MANIFEST.json", "w") as out:
        json.dump(manifest, out, indent=1, ensure_ascii=False)
    return manifest
