"""The command line: init, token create, demo, log verify, producer and batch tasks."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.config import ConfigError, load_config
from registry.models import LogEntry
from registry.services import TokenService


def test_init_is_idempotent(runner):
    first = runner.invoke(args=["init"])
    second = runner.invoke(args=["init"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.output.split()[-1] == second.output.split()[-1]  # the same authority key


def test_token_create_prints_the_token_last_and_stores_only_its_hash(runner, session, world):
    out = runner.invoke(args=["token", "create", "--role", "producer", "--producer", world.producer_id])
    assert out.exit_code == 0, out.output
    token = out.output.strip().splitlines()[-1]
    assert token.startswith("pov_")
    actor = TokenService(session).authenticate(token)
    assert actor.producer_id == world.producer_id
    bad = runner.invoke(args=["token", "create", "--role", "producer"])
    assert bad.exit_code != 0 and "must name its producer" in bad.output
    bad = runner.invoke(args=["token", "create", "--role", "wizard"])
    assert bad.exit_code != 0


def test_demo_then_log_verify(runner, client):
    out = runner.invoke(args=["demo"])
    assert out.exit_code == 0, out.output
    urls = [line.split(": ", 1)[1] for line in out.output.splitlines() if "one unit: " in line]
    assert len(urls) == 3
    tokens = [line for line in out.output.splitlines() if " token: pov_" in line]
    assert sorted(line.split()[0] for line in tokens) == ["authority", "inspector", "partner", "producer"]
    assert "portal: https://verify.example.vn/portal/login" in out.output.splitlines()  # where it is served
    again = runner.invoke(args=["demo"])  # idempotent
    assert again.exit_code == 0
    verdicts = [client.get(u.replace("http://127.0.0.1:8000", "").replace("https://verify.example.vn", ""),
                           headers={"Accept": "application/json"}).get_json()["verdict"] for u in urls]
    assert verdicts == ["genuine", "recalled", "expired"]
    check = runner.invoke(args=["log", "verify"])
    assert check.exit_code == 0 and "log OK" in check.output


def test_log_verify_fails_on_a_rewritten_entry(runner, session, world):
    runner.invoke(args=["demo"])
    entry = session.execute(select(LogEntry).where(LogEntry.kind == "origin-record")).scalars().first()
    entry.data = entry.data.replace("Cà phê", "Cà phê giả")
    session.commit()
    out = runner.invoke(args=["log", "verify"])
    assert out.exit_code != 0 and "leaf hash does not match" in out.output


def test_producer_and_batch_tasks(runner, tmp_path):
    pid = runner.invoke(args=["producer", "admit", "--name", "Chè Thái", "--tax-code", "4600000001",
                              "--prefix", "893600003", "--country", "VN"]).output.strip().splitlines()[-1]
    cert = runner.invoke(args=["producer", "certify-key", pid])
    assert cert.exit_code == 0 and json.loads(cert.output.strip().splitlines()[-1])["t"] == "producer-key"
    record = tmp_path / "batch.json"
    record.write_text(json.dumps({"gtin": "08936000030018", "lot": "TEA-1", "product": {"name": "Chè"},
                                  "facility": {"name": "Tân Cương"}, "production_date": "2026-11-01"}))
    url = runner.invoke(args=["batch", "register", pid, str(record)])
    assert url.exit_code == 0, url.output
    serials = runner.invoke(args=["batch", "serials", "08936000030018", "TEA-1", "--count", "3"])
    assert len([l for l in serials.output.splitlines() if "/21/" in l]) == 3
    dup = runner.invoke(args=["batch", "register", pid, str(record)])
    assert dup.exit_code != 0 and "BATCH_EXISTS" in dup.output
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert "not valid JSON" in runner.invoke(args=["batch", "register", pid, str(bad)]).output
    recall = runner.invoke(args=["batch", "recall", "08936000030018", "TEA-1", "--reason", "mould"])
    assert recall.exit_code == 0


@pytest.mark.parametrize("env,missing", [
    ({"APP_ENV": "production"}, "KEY_PASSPHRASE"),
    ({"APP_ENV": "production", "KEY_PASSPHRASE": "p" * 20, "SECRET_KEY": "s" * 40, "SCAN_SALT": "x",
      "BASE_URL": "http://insecure.example"}, "https://"),
])
def test_production_refuses_development_secrets(env, missing, tmp_path):
    with pytest.raises(ConfigError, match=missing):
        load_config({"INSTANCE_DIR": str(tmp_path), **env})


@pytest.mark.parametrize("name,value,says", [
    ("DB_POOL_SIZE", "five", "DB_POOL_SIZE must be a whole number of at least 1, not 'five'"),
    ("LOOKUP_CACHE_ENTRIES", "-1", "LOOKUP_CACHE_ENTRIES must be a whole number of at least 0, not '-1'"),
    ("SCAN_FLUSH_SECONDS", "0", "SCAN_FLUSH_SECONDS must be a number of at least 0.01, not '0'"),
    ("CLONE_MAX_SPEED_KMH", "nan", "CLONE_MAX_SPEED_KMH must be a number of at least 1, not 'nan'"),
    ("MAX_UPLOAD_BYTES", "10MB", "MAX_UPLOAD_BYTES must be a whole number of at least 1, not '10MB'"),
])
def test_a_malformed_number_names_its_setting(name, value, says, tmp_path):
    with pytest.raises(ConfigError) as refused:
        load_config({"INSTANCE_DIR": str(tmp_path), name: value})
    assert str(refused.value) == says


def test_the_command_line_says_which_setting_is_wrong_without_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "INSTANCE_DIR": str(tmp_path), "DB_POOL_SIZE": "five"}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-m", "app", "init"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: DB_POOL_SIZE must be a whole number of at least 1, not 'five'"
    assert not (tmp_path / "registry.db").exists()


def test_numbers_are_read_and_blank_ones_take_the_default(tmp_path):
    cfg = load_config({"INSTANCE_DIR": str(tmp_path), "LOOKUP_CACHE_ENTRIES": "0", "SCAN_FLUSH_SECONDS": "0.25",
                       "DB_POOL_SIZE": " "})
    assert (cfg["LOOKUP_CACHE_ENTRIES"], cfg["SCAN_FLUSH_SECONDS"], cfg["DB_POOL_SIZE"]) == (0, 0.25, 5)


def test_production_starts_with_real_secrets(tmp_path):
    cfg = load_config({"INSTANCE_DIR": str(tmp_path), "APP_ENV": "production", "KEY_PASSPHRASE": "p" * 20,
                       "SECRET_KEY": "s" * 40, "SCAN_SALT": "salt", "BASE_URL": "https://verify.example.vn"})
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert not (tmp_path / "dev-key-passphrase").exists()
