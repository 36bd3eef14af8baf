"""A consistent copy of an instance on SQLite, taken while it serves (``python -m app backup DIR``).

What an instance cannot be rebuilt without: the database, the folder of private keys (each
encrypted under ``KEY_PASSPHRASE``) and, on a development instance, what it generated for itself
in place of the settings (``DEV_SECRETS``: the keys' passphrase too, and the salt the scan
history's client hashes depend on); the manifest names the settings a restore still needs. The database is copied with SQLite's online backup, one snapshot taken in a read transaction
(WAL: writers go on meanwhile), then checked (``PRAGMA quick_check``). ``MANIFEST.json`` names each
file with its SHA-256 and the log's size and root at the copy (its latest signed checkpoint), so that a restore can be checked
against it (``log verify --checkpoint``). The copy holds encrypted private keys: its folder is
0700 and its files 0600, and it belongs with the passphrase's custodian, not in the same place.

PostgreSQL has its own tools (``pg_dump``), named in the refusal.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.engine import make_url

from keys.encoding import rfc3339, utcnow
from registry.errors import Conflict, Invalid

__all__ = ["Backup", "DEV_SECRETS", "backup_sqlite"]

# What an instance writes into its folder when a setting is not given (keys.storage.development_passphrase,
# app.config._dev_secret), by the setting it stands for.
DEV_SECRETS = {"dev-key-passphrase": "KEY_PASSPHRASE", "dev-secret-key": "SECRET_KEY", "dev-scan-salt": "SCAN_SALT"}


@dataclass(frozen=True)
class Backup:
    target: Path
    manifest: dict[str, Any]


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


def backup_sqlite(database_url: str, *, instance_dir: Path, key_dir: Path, target: Path,
                  clock: Callable[[], Any] = utcnow) -> Backup:
    """Copy the instance into ``target``, a folder that must not exist yet."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise Invalid("the database is PostgreSQL: back it up with its own tools, e.g. pg_dump --format=custom "
                      "--file=registry.dump \"$DATABASE_URL\", and copy INSTANCE_DIR/keys beside it",
                      code="BACKUP_NEEDS_PG_DUMP")
    source = Path(url.database or "")
    if not source.is_file():
        raise Invalid(f"no database file at {source}", code="NOT_INITIALISED")
    try:
        target.mkdir(mode=0o700, parents=False)
    except FileExistsError:
        raise Conflict(f"{target} already exists: a backup goes into a new folder", code="BACKUP_TARGET_EXISTS",
                       field="target") from None
    except FileNotFoundError:
        raise Invalid(f"the folder {target.parent} does not exist", code="BACKUP_TARGET_MISSING",
                      field="target") from None
    try:
        manifest = _fill(source, instance_dir, key_dir, target, clock)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no half backup left to be taken for a whole one
        raise
    return Backup(target=target, manifest=manifest)


def _fill(source: Path, instance_dir: Path, key_dir: Path, target: Path, clock: Callable[[], Any]) -> dict[str, Any]:
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
    (target / "keys").mkdir(mode=0o700)
    files = {"registry.db": _sha256(copy)}
    for key in sorted(key_dir.glob("*.pem")) if key_dir.is_dir() else []:
        _private_copy(key, target / "keys" / key.name)
        files[f"keys/{key.name}"] = _sha256(target / "keys" / key.name)
    for name in DEV_SECRETS:
        if (instance_dir / name).is_file():
            _private_copy(instance_dir / name, target / name)
            files[name] = _sha256(target / name)
    manifest = {
        "created_at": rfc3339(clock()),
        "log": {"size": checkpoint["size"], "root": checkpoint["root"]},
        "batches": batches,
        "files": files,
        "needs": [setting for name, setting in DEV_SECRETS.items() if name not in files],  # as configured
    }
    with _new_private(target / "MANIFEST.json", "w") as out:
        json.dump(manifest, out, indent=1, ensure_ascii=False)
    return manifest
