"""Rate limits: a clear JSON 429, shared through Redis when REDIS_URL is set."""

from __future__ import annotations

import json
import subprocess
import sys

import redis

from app import create_app
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
