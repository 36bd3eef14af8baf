"""``python -m app backup DIR``: a consistent copy of an SQLite instance taken while batches are
being registered, restored into a new instance whose log verifies and whose codes still verify."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import threading

import pytest

from app import create_app
from registry.services import SYSTEM, Registry
from tests.conftest import BASE_URL, GTIN, PG_URL, TEST_PASSPHRASE, batch_data


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(bool(PG_URL), reason="PostgreSQL is backed up with pg_dump (test below)")
def test_a_backup_taken_while_batches_are_registered_restores_and_verifies(app, runner, registry, session, world,
                                                                          tmp_path):
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
        out = runner.invoke(args=["backup", str(tmp_path / "backup")])
        during = len(registered)
        while len(registered) < during + 2 and not failures:  # and it goes on after the copy
            stop.wait(0.01)
    finally:
        stop.set()
        writer.join()
    assert not failures, failures
    assert out.exit_code == 0, out.output
    backup = tmp_path / "backup"
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    assert f"a log of {manifest['log']['size']} entries and {manifest['batches']} batches, 2 keys" in out.output
    assert 1 + 3 <= manifest["batches"] <= 1 + during < 1 + len(registered)  # a snapshot amid the writes
    assert manifest["needs"] == ["KEY_PASSPHRASE", "SECRET_KEY", "SCAN_SALT"]  # configured here, not generated
    assert "restoring needs KEY_PASSPHRASE, SECRET_KEY, SCAN_SALT as configured" in out.output
    assert _mode(backup) == 0o700 and _mode(backup / "keys") == 0o700
    for name, digest in manifest["files"].items():
        assert _mode(backup / name) == 0o600, name
        assert hashlib.sha256((backup / name).read_bytes()).hexdigest() == digest, name
    assert sorted(manifest["files"]) == sorted(["registry.db"] + [f"keys/{p.name}" for p in
                                                                  (app.config["KEY_DIR"]).glob("*.pem")])

    restored = tmp_path / "restored"  # the README's restore: the files into a new instance folder
    restored.mkdir(mode=0o700)
    shutil.copy2(backup / "registry.db", restored / "registry.db")
    shutil.copytree(backup / "keys", restored / "keys")
    again = create_app({"INSTANCE_DIR": restored, "KEY_PASSPHRASE": TEST_PASSPHRASE, "SECRET_KEY": "t" * 32,
                        "SCAN_SALT": "salt", "BASE_URL": BASE_URL, "RATE_LIMITS": "off", "TESTING": "1",
                        "DATABASE_URL": f"sqlite:///{restored / 'registry.db'}"})
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


def test_a_backup_goes_into_a_new_folder_and_postgresql_is_sent_to_pg_dump(runner, world, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("kept")
    out = runner.invoke(args=["backup", str(taken)])
    assert out.exit_code != 0 and "Traceback" not in out.output
    if PG_URL:
        assert "Error: BACKUP_NEEDS_PG_DUMP: the database is PostgreSQL: back it up with its own tools" in out.output
    else:
        assert f"Error: BACKUP_TARGET_EXISTS: {taken} already exists" in out.output
        out = runner.invoke(args=["backup", str(tmp_path / "no" / "such")])
        assert out.exit_code != 0 and "Error: BACKUP_TARGET_MISSING:" in out.output
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]  # nothing written beside what was there


@pytest.mark.skipif(bool(PG_URL), reason="an SQLite instance's own folder")
def test_the_secrets_a_development_instance_made_for_itself_go_with_it(app, world, tmp_path):
    """``make run`` without KEY_PASSPHRASE, SECRET_KEY or SCAN_SALT writes them into the instance
    (keys.storage, app.config): the keys are encrypted under the first and the scan history's client
    hashes depend on the salt, so the backup carries them, and a restore needs nothing more."""
    from registry.backup import DEV_SECRETS, backup_sqlite

    instance = app.config["INSTANCE_DIR"]
    for name in DEV_SECRETS:
        (instance / name).write_text(f"{name}-value")
    done = backup_sqlite(app.config["DATABASE_URL"], instance_dir=instance, key_dir=app.config["KEY_DIR"],
                         target=tmp_path / "copy")
    for name in DEV_SECRETS:
        assert (tmp_path / "copy" / name).read_text() == f"{name}-value" and _mode(tmp_path / "copy" / name) == 0o600
        assert done.manifest["files"][name] == hashlib.sha256(f"{name}-value".encode()).hexdigest()
    assert done.manifest["needs"] == []


@pytest.mark.skipif(bool(PG_URL), reason="an SQLite instance's own folder")
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
