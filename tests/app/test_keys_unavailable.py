"""A server whose private keys cannot be opened: another KEY_PASSPHRASE than they were encrypted
with (a deployment's mistake), or a key folder not shared with it. Every write that signs is
refused, 503 ``KEYS_UNAVAILABLE``, and writes nothing; verification goes on. It had been a 500
INTERNAL_ERROR through the API, and a traceback from the command line. Real keys, real
encryption, the real database."""

from __future__ import annotations

import os
import subprocess
import sys
from html import unescape as html_unescape

import pytest
from sqlalchemy import func, select

from registry.models import Batch, Recall, Serial
from registry.services import SYSTEM
from tests.app.portal_support import client_login, csrf_of, make_user
from tests.conftest import GTIN, REPO, another_app, batch_data


@pytest.fixture
def wrong(app, registry, session, world):
    """The same instance and database, served with another passphrase; one batch registered
    before, with the right one."""
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"], KEY_PASSPHRASE="not-the-passphrase",
                     BASE_URL=app.config["BASE_URL"]) as served:
        yield served


def _counts(session) -> tuple[int, int, int]:
    """Batches, serials and recalls; the session's transaction ended after (SQLite: its lock freed)."""
    session.rollback()
    try:
        return tuple(session.scalar(select(func.count()).select_from(table)) for table in (Batch, Serial, Recall))
    finally:
        session.rollback()


def test_signing_writes_are_503_and_write_nothing_while_verification_goes_on(wrong, registry, session, world):
    client = wrong.test_client()
    producer = {"Authorization": f"Bearer {world.tokens['producer']}"}
    before = _counts(session)
    for method, path, body in (("post", "/api/v1/batches", batch_data(lot="LOT-2")),
                               ("post", f"/api/v1/batches/{GTIN}/LOT-1/serials", {"count": 2}),
                               ("post", f"/api/v1/batches/{GTIN}/LOT-1/recall", {"reason": "Nhiễm khuẩn"})):
        response = getattr(client, method)(path, json=body, headers=producer)
        assert response.status_code == 503, path
        error = response.get_json()["error"]
        assert error["code"] == "KEYS_UNAVAILABLE", path
        assert "cannot be decrypted: wrong KEY_PASSPHRASE?" in error["message"], path
    assert _counts(session) == before
    code = registry.batch_url(session.scalar(select(Batch).where(Batch.lot == "LOT-1")), signed=True)
    session.rollback()  # SQLite: the served app's scan writer writes next
    verified = client.get("/api/v1/verify", query_string={"code": code})
    assert verified.status_code == 200 and verified.get_json()["verdict"] == "genuine"


@pytest.mark.parametrize("args", [["batch", "serials", GTIN, "LOT-1", "--count", "1"], ["log", "verify"],
                                  ["init"], ["trust-list"]])
def test_the_command_line_refuses_without_a_traceback(wrong, app, session, args):
    env = {**os.environ, "INSTANCE_DIR": str(app.config["INSTANCE_DIR"]), "KEY_PASSPHRASE": "not-the-passphrase",
           "SECRET_KEY": "t" * 32, "DATABASE_URL": app.config["DATABASE_URL"]}
    before = _counts(session)
    done = subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "Error: KEYS_UNAVAILABLE: this server cannot sign: private key ")
    assert "cannot be decrypted: wrong KEY_PASSPHRASE?" in done.stderr
    assert _counts(session) == before


def test_a_custodial_key_missing_from_this_servers_key_folder_says_so(app, registry, session, world):
    """A second app server started without the instance's key folder (README: it is shared)."""
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()
    session.close()
    os.rename(app.config["KEY_DIR"] / f"{world.kid}.pem", app.config["KEY_DIR"] / f"{world.kid}.pem.elsewhere")
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"]) as second:
        response = second.test_client().post(f"/api/v1/batches/{GTIN}/LOT-1/serials", json={"count": 1},
                                             headers={"Authorization": f"Bearer {world.tokens['producer']}"})
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error.pop("reference") == response.headers["X-Request-ID"]  # the log's line has it
    assert error == {
        "code": "KEYS_UNAVAILABLE",
        "message": f"this server cannot sign: no private key '{world.kid}' in the key store; every app server "
                   "needs the instance's key folder (INSTANCE_DIR/keys)"}


def test_the_portal_says_so_in_the_pages_language(wrong, session, world):
    """Producer staff issuing serials on such a server: a page saying what happened, in Vietnamese,
    not a 500 page; no serial issued."""
    make_user(session, "producer1", "producer", world.producer_id)
    session.commit()
    before = _counts(session)
    client = wrong.test_client()
    client_login(client, "producer1")
    url = f"/portal/producer/batches/{GTIN}/LOT-1"
    refused = client.post(url + "/serials", data={"csrf_token": csrf_of(client.get(url).get_data(as_text=True)),
                                                  "count": "5"})
    assert refused.status_code == 503
    assert "Máy chủ này hiện không thể ký: không mở được khóa ký của nó. Chưa có gì được lưu." in html_unescape(
        refused.get_data(as_text=True))
    assert _counts(session) == before
