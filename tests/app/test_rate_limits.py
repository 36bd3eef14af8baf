"""Rate limits: a clear JSON 429, shared through Redis when REDIS_URL is set."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time

import redis

from app import create_app, extensions
from app.cli import init_instance
from tests.conftest import REPO, TEST_PASSPHRASE

REDIS_URL = "redis://127.0.0.1:6379/15"  # a database index of its own, emptied by the test

CHILD = """
import json, sys
from app import create_app
from app.cli import init_instance
app = create_app(json.loads(sys.argv[1]))
init_instance(app)
client = app.test_client()
print(json.dumps([client.get("/api/v1/verify?code=8936000010010").status_code for _ in range(2)]))
"""


def _config(instance, **extra):
    cfg = {"INSTANCE_DIR": str(instance), "KEY_PASSPHRASE": TEST_PASSPHRASE, "SECRET_KEY": "t" * 32,
           "SCAN_SALT": "s", "RATE_LIMITS": "on", "VERIFY_RATE_LIMIT": "3/minute",
           "DATABASE_URL": f"sqlite:///{instance}/r.db"}
    cfg.update(extra)
    return cfg


def _hammer(application, n):
    client = application.test_client()
    return [client.get("/api/v1/verify?code=8936000010010").status_code for _ in range(n)]


def test_verify_is_limited_with_a_json_429(tmp_path):
    limited = create_app(_config(tmp_path))
    init_instance(limited)
    statuses = _hammer(limited, 4)
    assert statuses == [200, 200, 200, 429]
    r = limited.test_client().get("/api/v1/verify?code=8936000010010")
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(r.headers["Retry-After"]) <= 60  # the rest of this minute's window
    assert "3 per 1 minute" in r.get_json()["error"]["message"]
    other = limited.test_client().post("/api/v1/verify/image")  # another endpoint: a count of its own
    assert other.status_code != 429


def test_the_pages_checks_share_the_apis_limit(tmp_path):
    """The verdict pages verify like the API (a Digital Link opened by a phone's camera, a code typed
    by hand, a photo sent by the form): they count against the same limit, per kind of check, so
    the pages are no way around it. An address had checked photos without any limit."""
    limited = create_app(_config(tmp_path))
    init_instance(limited)
    client = limited.test_client()
    statuses = [client.get("/api/v1/verify?code=8936000010010").status_code,
                client.get("/check?code=8936000010010").status_code,
                client.get("/01/08936000010010").status_code]
    assert statuses == [200, 200, 200]
    for blocked in ("/api/v1/verify?code=8936000010010", "/check?code=8936000010010", "/01/08936000010010"):
        assert client.get(blocked, headers={"Accept": "text/html"}).status_code == 429, blocked
    page = client.get("/01/08936000010010", headers={"Accept": "text/html", "Accept-Language": "vi"})
    assert "Có quá nhiều yêu cầu từ kết nối của bạn" in page.get_data(as_text=True) and page.headers["Retry-After"]
    # Photos have their own count, shared by the API and the page's form (CSRF token from the page).
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)
    photo = [client.post("/check", data={"csrf_token": token}).status_code for _ in range(3)]
    assert photo == [400, 400, 400]  # no photo in the form: a clear 400, but counted
    assert client.post("/api/v1/verify/image").status_code == 429
    assert client.post("/check", data={"csrf_token": token}).status_code == 429


def test_the_report_form_and_api_share_one_limit(tmp_path):
    limited = create_app(_config(tmp_path, REPORT_RATE_LIMIT="2/hour"))
    init_instance(limited)
    client = limited.test_client()
    assert client.post("/api/v1/reports", data={}).status_code == 422  # counted, though refused
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/report").get_data(as_text=True)).group(1)
    assert client.post("/report", data={"csrf_token": token}).status_code != 429
    assert client.post("/api/v1/reports", data={}).status_code == 429
    typed = {"csrf_token": token, "code": "08936000010010", "seller": "Shop Hoa Mai", "description": "Hộp méo"}
    refused = client.post("/report", data=typed)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    html = refused.get_data(as_text=True)  # the form again, what was typed kept: not a bare error page
    assert 'id="report-form"' in html and 'value="Shop Hoa Mai"' in html and "Hộp méo" in html
    assert "Bạn đã gửi nhiều báo cáo" in html


def test_following_a_report_is_limited_and_the_page_and_api_share_the_limit(tmp_path):
    """Guessing follow-up codes is slowed down: wrong ones count, and the page is no way around it."""
    limited = create_app(_config(tmp_path, FOLLOWUP_RATE_LIMIT="2/minute"))
    init_instance(limited)
    client = limited.test_client()
    guess = {"case_number": "VN-2026-000001", "followup_code": "ZZZZZ-ZZZZZ"}
    assert client.post("/api/v1/reports/status", json=guess).status_code == 404
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      client.get("/report/status").get_data(as_text=True)).group(1)
    form = {"csrf_token": token, "case": guess["case_number"], "code": guess["followup_code"]}
    assert client.post("/report/status", data=form).status_code == 404
    assert client.post("/api/v1/reports/status", json=guess).status_code == 429
    assert client.post("/report/status", data=form).status_code == 429
    assert client.get("/report/status").status_code == 200  # the empty form is not counted


def test_limits_are_shared_between_app_servers_through_redis(tmp_path):
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()  # the machines run Redis on 127.0.0.1:6379
    try:
        here = create_app(_config(tmp_path / "a", REDIS_URL=REDIS_URL))
        init_instance(here)
        assert _hammer(here, 2) == [200, 200]
        # another app server: a separate process, same Redis; it sees this server's two requests
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(_config(tmp_path / "b", REDIS_URL=REDIS_URL))],
                             cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
        assert json.loads(out.stdout.strip().splitlines()[-1]) == [200, 429]
    finally:
        store.flushdb()


@contextlib.contextmanager
def _redis_server(port: int):
    """A Redis server of the test's own (the machine's redis-server), keeping nothing on disk:
    it can be stopped, as an outage would, without touching the machine's Redis."""
    server = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=port).ping():
                    break
            except redis.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_redis_outage_neither_fails_verifications_nor_lifts_the_limits(tmp_path, caplog, monkeypatch):
    """Redis stopped while the service runs: every verification had answered 500. Now each server
    counts in its own memory meanwhile (the limit still holds), says so once in its log, and goes
    back to the shared counters once Redis answers again."""
    port = _free_port()
    app = create_app(_config(tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0"))
    init_instance(app)
    app.extensions["rate_limiter"]._retry_seconds = 0.2  # the back-off, short for the test
    with _redis_server(port):
        assert _hammer(app, 2) == [200, 200]
        assert redis.Redis(port=port).keys("*")  # counted in Redis
    monkeypatch.setattr(extensions, "OUTAGE_LOG_SECONDS", 0.6)  # once a minute, shortened for the test
    with caplog.at_level("WARNING", logger="app.extensions"):
        assert _hammer(app, 4) == [200, 200, 200, 429]  # Redis down: counted here, from zero
        started = time.monotonic()
        for _ in range(6):  # Redis tried again at each of these (0.2 s apart at least): a line per 0.6 s
            time.sleep(0.25)
            _hammer(app, 1)
        lasted = time.monotonic() - started
    messages = [r.getMessage() for r in caplog.records if r.name == "app.extensions"]
    assert sum("rate-limit counters unreachable" in m for m in messages) == 1
    assert 1 <= sum("still unreachable after" in m for m in messages) <= lasted / 0.6
    assert all("Traceback" not in m for m in messages)
    time.sleep(0.3)
    with _redis_server(port):  # back, empty (it kept nothing): shared again
        assert _hammer(app, 4) == [200, 200, 200, 429]
        assert redis.Redis(port=port).keys("*")
        assert not app.extensions["rate_limiter"].shared_down
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_behind_a_proxy_each_client_has_its_own_limit_only_when_the_proxy_is_trusted(tmp_path):
    """nginx in front: every request comes from its address. With TRUSTED_PROXIES=1 the limit is
    per X-Forwarded-For client; without it (the default) the header is ignored, as it must be
    when nothing strips a client's own."""
    def statuses(application, addresses):
        client = application.test_client()
        return [client.get("/api/v1/verify?code=8936000010010", headers={"X-Forwarded-For": a}).status_code
                for a in addresses]

    trusting = create_app(_config(tmp_path / "a", TRUSTED_PROXIES="1"))
    init_instance(trusting)
    assert statuses(trusting, ["203.0.113.1"] * 4 + ["203.0.113.2"]) == [200, 200, 200, 429, 200]
    plain = create_app(_config(tmp_path / "b"))
    init_instance(plain)
    assert statuses(plain, ["203.0.113.1"] * 3 + ["203.0.113.2"]) == [200, 200, 200, 429]
