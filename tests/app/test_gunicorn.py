"""The shipped server configuration, for real: gunicorn with gunicorn.conf.py (the app loaded
once in the master, sync workers forked from it) serving verifications, and its workers writing
their pending scan events when it stops."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from registry.models import ScanEvent, ScanWriterState, Serial
from registry.services import Actor, Role
from tests.conftest import GTIN, TEST_PASSPHRASE, batch_data, lock_held

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(app, tmp_path, **settings: str) -> dict[str, str]:
    """gunicorn.conf.py over the test's instance and database, on a free port, two workers that
    write nothing before they stop (``SCAN_FLUSH_SECONDS``) unless ``settings`` say otherwise."""
    env = {**os.environ, "INSTANCE_DIR": str(app.config["INSTANCE_DIR"]), "KEY_PASSPHRASE": TEST_PASSPHRASE,
           "SECRET_KEY": "t" * 32, "SCAN_SALT": "salt", "RATE_LIMITS": "off",
           "DATABASE_URL": app.config["DATABASE_URL"], "BIND": f"127.0.0.1:{_free_port()}", "WEB_CONCURRENCY": "2",
           "ACCESS_LOG": "0", "SCAN_FLUSH_SECONDS": "3600",
           "HOME": str(tmp_path / "home"), **settings}  # HOME: where gunicorn >= 25.1 would open its control socket
    env.pop("XDG_RUNTIME_DIR", None)
    return env


@contextlib.contextmanager
def _gunicorn(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, str]]:
    """gunicorn started and answering, with its address; on leaving, stopped (SIGTERM) if the
    block has not stopped it, and its output read."""
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://{env['BIND']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/api/v1/verify?code=x", timeout=5).read()  # noqa: S310 - loopback
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield server, base
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def _stop(server: subprocess.Popen) -> tuple[float, str]:
    """SIGTERM, as a deploy or a restart sends it: the seconds gunicorn took to end, and its output."""
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    output = server.communicate(timeout=60)[0]
    return time.monotonic() - started, output


def _verify_all(base: str, urls: list[str], count: int) -> set[str]:
    """``count`` verifications of ``urls`` in turn by five clients, four at a time: their verdicts."""
    def verify(i: int) -> str:
        query = urllib.parse.urlencode({"code": urls[i % len(urls)], "client_id": f"client-{i % 5}"})
        with urllib.request.urlopen(f"{base}/api/v1/verify?{query}", timeout=10) as answer:  # noqa: S310
            return json.load(answer)["verdict"]

    with ThreadPoolExecutor(4) as pool:
        return set(pool.map(verify, range(count)))


def _three_serials(registry, world, session) -> tuple[Any, list[str]]:
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    batch = registry.register_batch(actor, batch_data())
    issued = registry.issue_serials(actor, GTIN, "LOT-1", 3)
    session.commit()
    return batch, [registry.serial_url(batch, serial, s) for serial, s in issued]


def _scans_written(session, batch) -> tuple[int, list[tuple[int, int]]]:
    """The serials' scan events in the database, and each serial's (scan count, distinct clients)."""
    session.rollback()  # a fresh snapshot; on SQLite no lock kept
    events = session.scalar(select(func.count()).select_from(ScanEvent).where(ScanEvent.serial_id.is_not(None)))
    counts = session.execute(select(Serial.scan_count, Serial.distinct_clients).where(Serial.batch_id == batch.id))
    try:
        return events, sorted(counts.all())
    finally:
        session.rollback()


def test_forked_workers_serve_and_write_their_scans_when_stopped(app, registry, world, session, tmp_path):
    batch, urls = _three_serials(registry, world, session)
    with _gunicorn(_server_env(app, tmp_path)) as (server, base):
        assert _verify_all(base, urls, 60) == {"genuine"}
        assert _scans_written(session, batch)[0] == 0  # all still pending
        output = _stop(server)[1]
    assert server.returncode == 0, output
    assert "Control socket" not in output and not (tmp_path / "home").exists()  # no admin interface
    # five clients each, whichever worker saw them first
    assert _scans_written(session, batch) == (60, [(20, 5)] * 3)
    epochs = session.scalars(select(ScanWriterState.epoch)).all()  # one row per worker that served
    assert 1 <= len(epochs) <= 2 and all(epoch >= 1 for epoch in epochs)  # each committed its flushes


def test_workers_stopped_while_writes_are_refused_keep_their_scans_for_the_next_start(
        app, registry, world, session, tmp_path):
    """A deploy or a restart while the database refuses writes (a lock held by a migration or an
    operator's session; a failover): each worker had tried three times at exit and lost its
    events. They are now kept on the server's disk, and the next gunicorn writes them by itself,
    before any verification, each once."""
    batch, urls = _three_serials(registry, world, session)
    env = _server_env(app, tmp_path, DB_LOCK_TIMEOUT_SECONDS="1")
    spool = app.config["INSTANCE_DIR"] / "scan-spool"
    with _gunicorn(env) as (server, base):
        assert _verify_all(base, urls, 60) == {"genuine"}
        with lock_held(app, "LOCK TABLE scan_events IN EXCLUSIVE MODE"):
            took, output = _stop(server)
            assert server.returncode == 0, output
            assert took < 20, output  # within gunicorn's graceful_timeout: not killed
            assert "scan events not written before this process ended are kept in" in output, output
            kept = sorted(spool.glob("*.scans.json"))
            assert 1 <= len(kept) <= 2  # one per worker that served
    assert _scans_written(session, batch) == (0, [(0, 0)] * 3)

    with _gunicorn({**env, "BIND": f"127.0.0.1:{_free_port()}"}) as (server, base):
        deadline = time.monotonic() + 30
        while _scans_written(session, batch)[0] < 60 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _scans_written(session, batch) == (60, [(20, 5)] * 3)
        assert not list(spool.glob("*.scans.json"))
        with urllib.request.urlopen(f"{base}/readyz", timeout=10) as answer:  # noqa: S310 - loopback
            assert json.load(answer)["checks"]["scan_events_pending"]["files"] == 0


def test_make_run_stops_before_the_demo_when_its_address_is_taken():
    """tools/check_bind.py, which ``make run`` runs before loading the demo: a server already on
    BIND stops it there (the demo would have reset that server's portal passwords), naming the
    address; a free address passes."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        busy = subprocess.run([sys.executable, str(ROOT / "tools" / "check_bind.py")], capture_output=True,
                              text=True, env={**os.environ, "BIND": bind}, timeout=30)
    assert busy.returncode == 1 and f"Error: {bind} is in use" in busy.stderr
    free = subprocess.run([sys.executable, str(ROOT / "tools" / "check_bind.py")], capture_output=True, text=True,
                          env={**os.environ, "BIND": f"127.0.0.1:{_free_port()}"}, timeout=30)
    assert free.returncode == 0, free.stderr
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "check_bind.py")], capture_output=True, text=True,
                         env={**os.environ, "BIND": "localhost"}, timeout=30)
    assert bad.returncode == 1 and "BIND must be host:port" in bad.stderr


def test_a_bad_server_setting_stops_gunicorn_with_its_name(tmp_path):
    """GUNICORN_THREADS=many (or WEB_CONCURRENCY=0) was a raw ValueError traceback from this file."""
    for name, value in (("GUNICORN_THREADS", "many"), ("WEB_CONCURRENCY", "0")):
        env = {**os.environ, "INSTANCE_DIR": str(tmp_path), name: value, "BIND": f"127.0.0.1:{_free_port()}",
               "HOME": str(tmp_path / "home")}
        done = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "Traceback" not in done.stderr, done.stderr
        assert f"Error: {name} must be a whole number of at least 1, not {value!r}" in done.stderr


def test_a_server_setting_that_is_not_a_whole_number_stops_gunicorn_with_one_line(tmp_path):
    """gunicorn.conf.py names the setting and the value and exits 1, before any worker starts.
    (A WEB_CONCURRENCY that is not a number, ``two``, or is below 0 cannot be caught there: gunicorn
    parses it while importing its own settings and checks it, before it reads a configuration
    file; ``make serve`` checks it first with ``python -m app.config``, tests/app/test_cli.py.)"""
    for name, value in (("GUNICORN_THREADS", "many"), ("GUNICORN_THREADS", "0"), ("WEB_CONCURRENCY", "0")):
        env = {**os.environ, "INSTANCE_DIR": str(tmp_path / "instance"), "BIND": f"127.0.0.1:{_free_port()}",
               "HOME": str(tmp_path / "home"), name: value}
        done = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (
            1, "", f"Error: {name} must be a whole number of at least 1, not {value!r}\n"), (name, value)
        assert not (tmp_path / "instance").exists()  # refused before the app was loaded


def test_metrics_under_gunicorn_answer_for_every_worker(app, registry, world, session, tmp_path):
    """Each worker counts into the server's metrics folder (app.metrics, gunicorn.conf.py): a scrape
    reaching either worker answers for both. The folder goes with the server."""
    from prometheus_client.parser import text_string_to_metric_families

    batch, urls = _three_serials(registry, world, session)
    token = "m" * 40
    env = _server_env(app, tmp_path, METRICS_TOKEN=token, TMPDIR=str(tmp_path))
    with _gunicorn(env) as (server, base):
        assert _verify_all(base, urls, 40) == {"genuine"}
        folder, = tmp_path.glob("origin-metrics-*")
        assert len({p.stem.rsplit("_", 1)[1] for p in folder.glob("counter_*.db")}) >= 2  # both workers counted
        for _ in range(8):  # each scrape is served by one worker or the other
            request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
                text = answer.read().decode()
            genuine = [s.value for family in text_string_to_metric_families(text) for s in family.samples
                       if s.name == "origin_verifications_total" and s.labels == {"channel": "api", "verdict": "genuine"}]
            assert genuine == [40.0]
        output = _stop(server)[1]
    assert server.returncode == 0, output
    assert not list(tmp_path.glob("origin-metrics-*"))


def test_a_worker_restarted_during_a_key_rewrap_still_signs_and_is_ready(app, runner, tmp_path):
    """`keys rewrap` moves the key folder to a new passphrase while the servers still run with the
    old one until each restarts (README). A worker replaced meanwhile (max_requests, a timeout)
    had found the authority key under a passphrase it did not have: /readyz 503, and the load
    balancer pulled server after server as their workers recycled."""
    env = _server_env(app, tmp_path, WEB_CONCURRENCY="1")
    with _gunicorn(env) as (server, base):
        assert urllib.request.urlopen(base + "/readyz", timeout=10).status == 200  # noqa: S310 - loopback
        done = runner.invoke(args=["keys", "rewrap"], input="a new passphrase, long enough\n")
        assert done.exit_code == 0, done.output
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
        worker = int(children.read_text().split()[0])
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            replaced = children.read_text().split()
            if replaced and int(replaced[0]) != worker:
                break
            assert time.monotonic() < deadline, "gunicorn did not replace its worker"
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = urllib.request.urlopen(base + "/readyz", timeout=10)  # noqa: S310 - loopback
                break
            except urllib.error.HTTPError as refused:
                body = json.loads(refused.read())
                assert refused.code != 503 or body["error"]["checks"]["signing_keys"] == "ok", body
                raise
            except OSError:  # the new worker still starting
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert answer.status == 200 and json.loads(answer.read())["checks"]["signing_keys"] == "ok"
