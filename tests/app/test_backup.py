"""``python -m app backup DIR``: a consistent copy of an instance (SQLite, or PostgreSQL through
pg_dump) taken while batches are being registered, restored into a new instance whose log verifies
and whose codes still verify."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import threading

import pytest
from sqlalchemy import create_engine, make_url, text

from app import create_app
from registry.services import SYSTEM, Registry
from tests.conftest import BASE_URL, GTIN, PG_URL, TEST_PASSPHRASE, batch_data


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _backup_while_registering(app, runner, registry, session, world, target):
    """``backup target`` while another thread registers batches, as the running service would:
    the command's output and manifest, a unit code issued before, and how many batches had been
    registered when the copy ended and in all (the writer goes on after it)."""
    batch = registry.register_batch(SYSTEM, batch_data(lot="LOT-0"), producer_id=world.producer_id)
    (serial, s), = registry.issue_serials(SYSTEM, GTIN, "LOT-0", 1)
    code = registry.serial_url(batch, serial, s)
    session.commit()
    session.close()
    stop, registered, failures = threading.Event(), [], []

    def keep_registering() -> None:  # another writer, as the running service would be
        number = 1
        while not stop.is_set():
            with app.extensions["session_factory"]() as other:
                try:
                    Registry(other, keystore=app.extensions["keystore"], base_url=BASE_URL).register_batch(
                        SYSTEM, batch_data(lot=f"LOT-{number}"), producer_id=world.producer_id)
                    other.commit()
                    registered.append(number)
                except Exception as exc:  # noqa: BLE001 - reported below
                    failures.append(repr(exc))
                    return
            number += 1

    writer = threading.Thread(target=keep_registering)
    writer.start()
    try:
        while len(registered) < 3 and not failures:
            stop.wait(0.01)
        out = runner.invoke(args=["backup", str(target)])
        during = len(registered)
        while len(registered) < during + 2 and not failures:  # and it goes on after the copy
            stop.wait(0.01)
    finally:
        stop.set()
        writer.join()
    assert not failures, failures
    assert out.exit_code == 0, out.output
    manifest = json.loads((target / "MANIFEST.json").read_text())
    assert f"a log of {manifest['log']['size']} entries and {manifest['batches']} batches, 2 keys" in out.output
    assert 1 + 3 <= manifest["batches"] <= 1 + during < 1 + len(registered)  # a snapshot amid the writes
    assert manifest["needs"] == ["KEY_PASSPHRASE", "SECRET_KEY", "SCAN_SALT"]  # configured here, not generated
    assert "restoring needs KEY_PASSPHRASE, SECRET_KEY, SCAN_SALT as configured" in out.output
    return manifest, code


def _check_files(app, backup, manifest, database: str) -> None:
    """Each file private, as the manifest hashes it, and nothing but the database and the keys."""
    assert _mode(backup) == 0o700 and _mode(backup / "keys") == 0o700
    for name, digest in manifest["files"].items():
        assert _mode(backup / name) == 0o600, name
        assert hashlib.sha256((backup / name).read_bytes()).hexdigest() == digest, name
    assert sorted(manifest["files"]) == sorted([database] + [f"keys/{p.name}" for p in
                                                             (app.config["KEY_DIR"]).glob("*.pem")])


def _check_restored(manifest, code, *, instance, database_url) -> None:
    """The restored instance: its log verifies at the manifest's size and root, its tables match
    the log, and the unit code issued before the backup is still genuine."""
    again = create_app({"INSTANCE_DIR": instance, "KEY_PASSPHRASE": TEST_PASSPHRASE, "SECRET_KEY": "t" * 32,
                        "SCAN_SALT": "salt", "BASE_URL": BASE_URL, "RATE_LIMITS": "off", "TESTING": "1",
                        "DATABASE_URL": database_url})
    try:
        check = again.test_cli_runner().invoke(args=["log", "verify"])
        assert check.exit_code == 0, check.output
        assert f"log OK: {manifest['log']['size']} entries" in check.output
        assert f", {manifest['batches']} batches and 0 publications in the tables match the log" in check.output
        answer = again.test_client().get(code.replace(BASE_URL, ""), headers={"Accept": "application/json"})
        assert answer.get_json()["verdict"] == "genuine", answer.get_json()
        checkpoint = again.test_client().get("/api/v1/log/checkpoint").get_json()
        assert (checkpoint["size"], checkpoint["root"]) == (manifest["log"]["size"], manifest["log"]["root"])
    finally:
        again.extensions["scan_writer"].close()
        again.extensions["read_engine"].dispose()
        again.extensions["engine"].dispose()


def _instance_from(backup, folder):
    """The README's restore of the files: the keys into a new instance folder."""
    folder.mkdir(mode=0o700)
    shutil.copytree(backup / "keys", folder / "keys")
    return folder


@pytest.mark.skipif(bool(PG_URL), reason="PostgreSQL is backed up with pg_dump (test below)")
def test_a_backup_taken_while_batches_are_registered_restores_and_verifies(app, runner, registry, session, world,
                                                                          tmp_path):
    backup = tmp_path / "backup"
    manifest, code = _backup_while_registering(app, runner, registry, session, world, backup)
    _check_files(app, backup, manifest, "registry.db")
    restored = _instance_from(backup, tmp_path / "restored")
    shutil.copy2(backup / "registry.db", restored / "registry.db")
    _check_restored(manifest, code, instance=restored, database_url=f"sqlite:///{restored / 'registry.db'}")


@contextlib.contextmanager
def _new_database(name: str):
    """A database of its own beside the test's, on the same server, dropped afterwards: the URL
    (SQLAlchemy's) and the same as libpq's, which pg_restore takes."""
    server = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    url = make_url(PG_URL).set(database=f"{make_url(PG_URL).database}_{name}")
    try:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))  # a run that died
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        yield (url.render_as_string(hide_password=False),
               url.set(drivername="postgresql").render_as_string(hide_password=False))
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        server.dispose()


@pytest.mark.skipif(not PG_URL, reason="an SQLite instance is copied with SQLite's online backup (test above)")
def test_a_pg_dump_taken_while_batches_are_registered_restores_and_verifies(app, runner, registry, session, world,
                                                                           tmp_path):
    """pg_dump runs on the snapshot in which the manifest's log and batches are read: restored with
    the real pg_restore into a new database, as the README says, the log is that snapshot's."""
    backup = tmp_path / "backup"
    manifest, code = _backup_while_registering(app, runner, registry, session, world, backup)
    _check_files(app, backup, manifest, "registry.dump")
    restored = _instance_from(backup, tmp_path / "restored")
    with _new_database("restored") as (database_url, libpq_url):
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={libpq_url}",
                        str(backup / "registry.dump")], check=True, capture_output=True)
        _check_restored(manifest, code, instance=restored, database_url=database_url)


def _tool(folder, name: str, script: str):
    """A program on ``PATH`` standing in for a PostgreSQL client tool (outside this project)."""
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("#!/bin/sh\n" + script)
    (folder / name).chmod(0o700)
    return folder


@pytest.mark.skipif(not PG_URL, reason="pg_dump backs up PostgreSQL")
def test_without_pg_dump_the_backup_says_how_to_install_it(runner, world, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # a PATH where pg_dump is not
    out = runner.invoke(args=["backup", str(tmp_path / "backup")])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert "Error: BACKUP_NEEDS_PG_DUMP: the database is PostgreSQL and pg_dump is not installed" in out.output
    assert "apt-get install postgresql-client" in out.output
    assert not (tmp_path / "backup").exists()


@pytest.mark.skipif(not PG_URL, reason="pg_dump backs up PostgreSQL")
def test_a_pg_dump_that_fails_says_why_and_leaves_no_folder(runner, world, tmp_path, monkeypatch):
    """pg_dump older than the server refuses (it cannot be made to here: the one installed matches
    the server); what it says is the error, and no half backup is left behind."""
    bin_dir = _tool(tmp_path / "bin", "pg_dump",
                    "echo 'pg_dump: error: aborting because of server version mismatch' >&2\n"
                    "echo 'pg_dump: detail: server version: 99.0; pg_dump version: 15.0' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = runner.invoke(args=["backup", str(tmp_path / "backup")])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert ("Error: BACKUP_FAILED: pg_dump failed: pg_dump: error: aborting because of server version mismatch\n"
            "pg_dump: detail: server version: 99.0; pg_dump version: 15.0; nothing was kept in") in out.output
    assert not (tmp_path / "backup").exists()


@pytest.mark.skipif(not PG_URL, reason="pg_dump backs up PostgreSQL")
def test_a_dump_that_cannot_be_read_back_is_no_backup(runner, world, tmp_path, monkeypatch):
    """pg_dump said nothing and ended well, but what it wrote is not a dump pg_restore can open
    (as the SQLite copy's quick_check would refuse a damaged copy)."""
    bin_dir = _tool(tmp_path / "bin", "pg_dump",
                    'for a in "$@"; do case "$a" in --file=*) printf "not a dump" > "${a#--file=}";; esac; done\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = runner.invoke(args=["backup", str(tmp_path / "backup")])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert "Error: BACKUP_FAILED: the dump cannot be read back (pg_restore: error: " in out.output
    assert "nothing was kept in" in out.output and not (tmp_path / "backup").exists()


@pytest.mark.skipif(not PG_URL, reason="pg_dump backs up PostgreSQL")
def test_a_dump_cut_short_is_no_backup(runner, world, registry, session, tmp_path, monkeypatch):
    """The real pg_dump's dump, its last bytes lost (a disk that filled as it was written): its
    table of contents still lists every table (``pg_restore --list`` succeeds), but a restore
    would stop at the lost data, so the backup is refused."""
    registry.register_batch(SYSTEM, batch_data(lot="LOT-CUT"), producer_id=world.producer_id)
    session.commit()
    real, cut = shutil.which("pg_dump"), tmp_path / "cut.dump"
    bin_dir = _tool(tmp_path / "bin", "pg_dump",
                    f'"{real}" "$@" || exit $?\n'
                    'for a in "$@"; do case "$a" in --file=*) truncate --size=-64 "${a#--file=}"; '
                    f'cp "${{a#--file=}}" "{cut}";; esac; done\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = runner.invoke(args=["backup", str(tmp_path / "backup")])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert "Error: BACKUP_FAILED: the dump cannot be read back (pg_restore: error: " in out.output
    assert "nothing was kept in" in out.output and not (tmp_path / "backup").exists()
    # What the table of contents alone (the read-back before) had let through:
    assert subprocess.run(["pg_restore", "--list", str(cut)], capture_output=True).returncode == 0


@pytest.mark.skipif(not PG_URL, reason="pg_dump backs up PostgreSQL")
def test_a_database_that_cannot_be_reached_fails_the_backup_and_leaves_no_folder(app, tmp_path):
    from registry.backup import BackupFailed, backup

    missing = make_url(PG_URL).set(database="no_such_database_for_a_backup").render_as_string(hide_password=False)
    with pytest.raises(BackupFailed, match='the database could not be read: .*"no_such_database_for_a_backup" '
                                          'does not exist; nothing was kept in'):
        backup(missing, instance_dir=app.config["INSTANCE_DIR"], key_dir=app.config["KEY_DIR"],
               target=tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


@pytest.mark.skipif(not PG_URL, reason="pg_dump backs up PostgreSQL")
def test_the_database_password_goes_to_pg_dump_in_its_environment_not_its_command_line(app, world, tmp_path,
                                                                                       monkeypatch):
    """Any user of the machine can read a command line (ps); the password goes in PGPASSWORD, and
    nowhere in the manifest. (The test server trusts its clients: any password connects.)"""
    from registry.backup import backup

    url = make_url(PG_URL)
    url = url if url.password else url.set(password="pw-kept-off-the-command-line")
    seen = tmp_path / "seen"
    seen.mkdir()
    bin_dir = _tool(tmp_path / "bin", "pg_dump", f'printf "%s\\n" "$@" > "{seen}/argv"\n'
                    f'printf "%s" "$PGPASSWORD" > "{seen}/password"\nexec "{shutil.which("pg_dump")}" "$@"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    done = backup(url.render_as_string(hide_password=False), instance_dir=app.config["INSTANCE_DIR"],
                  key_dir=app.config["KEY_DIR"], target=tmp_path / "copy")
    argv = (seen / "argv").read_text()
    assert "--format=custom" in argv and "--snapshot=" in argv and f"dbname={url.database}" in argv
    assert url.password not in argv and (seen / "password").read_text() == url.password
    assert url.password not in (tmp_path / "copy" / "MANIFEST.json").read_text()
    assert done.manifest["files"]["registry.dump"]


def test_a_backup_goes_into_a_new_folder(runner, world, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("kept")
    out = runner.invoke(args=["backup", str(taken)])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert f"Error: BACKUP_TARGET_EXISTS: {taken} already exists" in out.output
    out = runner.invoke(args=["backup", str(tmp_path / "no" / "such")])
    assert out.exit_code != 0 and "Error: BACKUP_TARGET_MISSING:" in out.output
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]  # nothing written beside what was there


def test_the_secrets_a_development_instance_made_for_itself_go_with_it(app, world, tmp_path):
    """``make run`` without KEY_PASSPHRASE, SECRET_KEY or SCAN_SALT writes them into the instance
    (keys.storage, app.config): the keys are encrypted under the first and the scan history's client
    hashes depend on the salt, so the backup carries them, and a restore needs nothing more."""
    from registry.backup import DEV_SECRETS, backup

    instance = app.config["INSTANCE_DIR"]
    for name in DEV_SECRETS:
        (instance / name).write_text(f"{name}-value")
    done = backup(app.config["DATABASE_URL"], instance_dir=instance, key_dir=app.config["KEY_DIR"],
                  target=tmp_path / "copy")
    for name in DEV_SECRETS:
        assert (tmp_path / "copy" / name).read_text() == f"{name}-value" and _mode(tmp_path / "copy" / name) == 0o600
        assert done.manifest["files"][name] == hashlib.sha256(f"{name}-value".encode()).hexdigest()
    assert done.manifest["needs"] == []


def test_secret_files_left_from_before_the_settings_were_given_do_not_go_with_a_backup(app, runner, world, tmp_path):
    """A development instance moved to a real passphrase (keys rewrap) keeps its old
    dev-key-passphrase file: the backup had carried it, said "restoring needs nothing more", and
    the restored keys opened under none of what it held."""
    from registry.backup import DEV_SECRETS

    instance = app.config["INSTANCE_DIR"]
    for name in DEV_SECRETS:
        (instance / name).write_text(f"{name}-left-over")
    assert app.config["GENERATED_SECRETS"] == ()  # the tests' app is given all three
    out = runner.invoke(args=["backup", str(tmp_path / "copy")])
    assert out.exit_code == 0, out.output
    manifest = json.loads((tmp_path / "copy" / "MANIFEST.json").read_text())
    assert manifest["needs"] == ["KEY_PASSPHRASE", "SECRET_KEY", "SCAN_SALT"]
    assert not any((tmp_path / "copy" / name).exists() for name in DEV_SECRETS)
    assert "restoring needs KEY_PASSPHRASE, SECRET_KEY, SCAN_SALT as configured" in out.output
    from app.config import load_config

    generated = load_config({"INSTANCE_DIR": str(tmp_path / "dev"), "SCAN_SALT": "given"})["GENERATED_SECRETS"]
    assert generated == ("KEY_PASSPHRASE", "SECRET_KEY")  # what a development instance runs on


def test_a_backup_that_fails_midway_leaves_no_folder_to_be_taken_for_a_backup(app, runner, world, tmp_path):
    """A file that cannot be copied (here a folder where a key file should be; a full disk alike):
    the command says so and removes what it had written, so no half backup is left behind."""
    (app.config["KEY_DIR"] / "broken.pem").mkdir()
    out = runner.invoke(args=["backup", str(tmp_path / "backup")])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert "Error: BACKUP_FAILED: " in out.output and "broken.pem" in out.output, out.output
    assert not (tmp_path / "backup").exists()
    (app.config["KEY_DIR"] / "broken.pem").rmdir()
    assert runner.invoke(args=["backup", str(tmp_path / "backup")]).exit_code == 0  # and again, once it is fixed
