"""Rate limits: a clear JSON 429, shared through Redis when REDIS_URL is set."""

from __future__ import annotations

import uuid

import redis

from app import create_app
from app.cli import init_instance
from tests.conftest import TEST_PASSPHRASE

REDIS_URL = "redis://127.0.0.1:6379/15"


def _app(instance, **extra):
    cfg = {"INSTANCE_DIR": instance, "KEY_PASSPHRASE": TEST_PASSPHRASE, "SECRET_KEY": "t" * 32, "SCAN_SALT": "s",
           "RATE_LIMITS": "on", "VERIFY_RATE_LIMIT": "3/minute", "DATABASE_URL": f"sqlite:///{instance}/r.db"}
    cfg.update(extra)
    application = create_app(cfg)
    init_instance(application)
    return application


def _hammer(client, n):
    return [client.get("/api/v1/verify?code=8936000010010").status_code for _ in range(n)]


def test_verify_is_limited_with_a_json_429(tmp_path):
    limited = _app(tmp_path)
    statuses = _hammer(limited.test_client(), 5)
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    r = limited.test_client().get("/api/v1/verify?code=8936000010010")
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "TOO_MANY_REQUESTS"


def test_limits_are_shared_between_app_servers_through_redis(tmp_path):
    prefix = f"test-{uuid.uuid4().hex}"
    redis.Redis.from_url(REDIS_URL).ping()  # the machines run Redis on 127.0.0.1:6379
    first = _app(tmp_path / "a", REDIS_URL=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix)
    second = _app(tmp_path / "b", REDIS_URL=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix)
    try:
        a = _hammer(first.test_client(), 2)
        b = _hammer(second.test_client(), 2)  # a second server sees the first server's count
        assert a == [200, 200] and b == [200, 429]
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)
