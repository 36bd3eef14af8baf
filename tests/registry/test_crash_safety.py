"""A long write killed half way (SIGKILL) leaves all or nothing: never a batch without its log entry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from registry.models import Batch, LogEntry, Serial
from tests.conftest import GTIN, REPO, batch_data


def _run_and_kill(app, args: list[str], *, after: float) -> str:
    config = {"INSTANCE_DIR": str(app.config["INSTANCE_DIR"]), "DATABASE_URL": app.config["DATABASE_URL"],
              "KEY_PASSPHRASE": "test-passphrase-not-secret", "SECRET_KEY": "t" * 32, "SCAN_SALT": "salt"}
    child = subprocess.Popen([sys.executable, "-m", "tests.registry.crash_child", json.dumps(config), *args],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in child.stdout:  # the app logs to stdout too: wait for the child's own marker
        seen.append(line)
        if line.strip() == "begin":
            break
    assert seen and seen[-1].strip() == "begin", "".join(seen)
    time.sleep(after)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    return child.stdout.read()


def test_serial_issuance_killed_half_way_leaves_nothing(app, registry, world, session):
    registry.register_batch(registry_actor(world), batch_data())
    session.commit()
    output = _run_and_kill(app, ["serials", GTIN, "LOT-1"], after=1.5)
    assert "committed" not in output, "the child finished before it was killed: make the job longer"
    session.rollback()
    count = session.scalar(select(func.count()).select_from(Serial))
    assert count == 0
    batch = session.execute(select(Batch)).scalar_one()
    assert batch.serial_count == 0
    # the service still works after the crash
    assert len(registry.issue_serials(registry_actor(world), GTIN, "LOT-1", 10)) == 10
    session.commit()


def test_bulk_import_killed_half_way_leaves_no_batch_without_its_log_entry(app, registry, world, session,
                                                                          tmp_path):
    before_log = session.scalar(select(func.count()).select_from(LogEntry))
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps([batch_data(lot=f"BULK-{i}") for i in range(3000)]), encoding="utf-8")
    output = _run_and_kill(app, ["import", str(rows_file), world.producer_id], after=1.0)
    assert "committed" not in output, "the child finished before it was killed: make the import longer"
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Batch)) == 0
    assert session.scalar(select(func.count()).select_from(LogEntry)) == before_log
    check = registry.log().verify_all(registry.authority.public_raw)
    assert check.ok, check.problems


def registry_actor(world):
    from registry.services import Actor, Role

    return Actor(role=Role.PRODUCER, producer_id=world.producer_id)


