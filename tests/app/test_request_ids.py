"""A failed request is logged under a reference its answer shows (``app.request_ids``): in the JSON
error, on the page, in ``X-Request-ID`` and at the end of gunicorn's access log line. Before, a
500 said "it has been logged" and nothing led from what the shopper saw to the log's traceback."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html import unescape as html_unescape

import pytest

from app.request_ids import LOG_FORMAT
from registry.services import SYSTEM
from tests.app.test_rate_limits import _free_port
from tests.conftest import GTIN, REPO, TEST_PASSPHRASE, another_app, batch_data

HEX16 = re.compile(r"[0-9a-f]{16}")


@pytest.fixture
def boom(app):
    def fail():
        logging.getLogger("tests.boom").info("about to fail")
        raise RuntimeError("a bug")

    app.add_url_rule("/boom-for-test", "boom_for_test", fail)
    app.add_url_rule("/api/v1/boom-for-test", "api_boom_for_test", fail)
    return app


def _lines_of(caplog, reference: str) -> list[str]:
    """The captured log lines, formatted as the app's handler formats them, that carry ``reference``."""
    formatter = logging.Formatter(LOG_FORMAT, defaults={"request_id": "-"})
    return [formatter.format(r) for r in caplog.records if f"[{reference}]" in formatter.format(r)]


def test_a_500_names_the_reference_its_log_lines_carry(boom, caplog):
    caplog.set_level(logging.INFO)
    client = boom.test_client()
    api = client.get("/api/v1/boom-for-test")
    assert api.status_code == 500
    error = api.get_json()["error"]
    assert error["code"] == "INTERNAL_ERROR"
    assert HEX16.fullmatch(error["reference"]) and api.headers["X-Request-ID"] == error["reference"]
    lines = _lines_of(caplog, error["reference"])
    assert any("about to fail" in line for line in lines)  # every line of the request, not only the error
    assert any("unhandled error on GET /api/v1/boom-for-test" in line and "RuntimeError: a bug" in line
               for line in lines)

    page = client.get("/boom-for-test", headers={"Accept": "text/html", "Accept-Language": "vi"})
    reference = page.headers["X-Request-ID"]
    assert reference != error["reference"]  # each request its own
    text = html_unescape(page.get_data(as_text=True))
    assert f"hãy cung cấp mã tham chiếu này: <code>{reference}</code>" in text
    assert "a bug" not in text  # the reference leads to the traceback; the page never shows it
    assert _lines_of(caplog, reference)
    english = client.get("/boom-for-test", headers={"Accept": "text/html", "Accept-Language": "en"})
    assert "give them this reference: <code>" in html_unescape(english.get_data(as_text=True))


def test_a_request_that_logs_nothing_and_answers_well_makes_no_reference(client, caplog):
    response = client.get("/api/v1/verify", query_string={"code": "08936000010010"})
    assert response.status_code == 200
    assert "X-Request-ID" not in response.headers
    refused = client.get("/api/v1/verify", query_string={"code": "x" * 5000})  # a 4xx: the client's
    assert refused.status_code == 422
    assert "reference" not in refused.get_json()["error"] and "X-Request-ID" not in refused.headers


@pytest.mark.parametrize("proxies,sent,kept", [
    ("1", "7f3c2a9e0b1d4c5e8f6a7b8c9d0e1f2a", True),  # nginx's $request_id
    ("1", "0b5e8a0c-3f0e-4b7a-9d2e-6c1f4e8a2b3d", True),  # a UUID
    ("1", "two words", False),
    ("1", "x" * 65, False),
    ("0", "7f3c2a9e0b1d4c5e8f6a7b8c9d0e1f2a", False),  # no proxy in front: a client's header is not taken
])
def test_a_trusted_proxys_reference_is_kept(app, proxies, sent, kept):
    def fail():
        raise RuntimeError("a bug")

    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"], TRUSTED_PROXIES=proxies) as served:
        served.add_url_rule("/api/v1/boom-for-test", "boom_for_test", fail)
        response = served.test_client().get("/api/v1/boom-for-test", headers={"X-Request-ID": sent})
    reference = response.get_json()["error"]["reference"]
    assert response.headers["X-Request-ID"] == reference
    assert (reference == sent) is kept
    if not kept:
        assert HEX16.fullmatch(reference)


def test_a_server_error_that_no_handler_logged_is_logged(boom, caplog):
    """A 5xx whose handler logged nothing (``abort(503)``): one line, under the reference the
    answer names."""
    from flask import abort

    boom.add_url_rule("/api/v1/busy-for-test", "busy_for_test", lambda: abort(503))
    response = boom.test_client().get("/api/v1/busy-for-test")
    assert response.status_code == 503
    lines = _lines_of(caplog, response.get_json()["error"]["reference"])
    assert len(lines) == 1 and "GET /api/v1/busy-for-test answered 503" in lines[0]


def test_the_portal_page_of_a_server_that_cannot_sign_gives_the_reference(app, registry, session, world, caplog):
    from tests.app.portal_support import client_login, csrf_of, make_user

    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    make_user(session, "staff", "producer", producer_id=world.producer_id)
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"], KEY_PASSPHRASE="not-the-passphrase",
                     BASE_URL=app.config["BASE_URL"]) as wrong:
        client = wrong.test_client()
        client_login(client, "staff")
        form = client.get(f"/portal/producer/batches/{GTIN}/LOT-1", headers={"Accept-Language": "vi"})
        page = client.post(f"/portal/producer/batches/{GTIN}/LOT-1/serials",
                           data={"count": "2", "csrf_token": csrf_of(form.get_data(as_text=True))}, headers={"Accept-Language": "vi"})
    assert page.status_code == 503
    reference = page.headers["X-Request-ID"]
    assert f"<code>{reference}</code>" in page.get_data(as_text=True)
    assert any("KEYS_UNAVAILABLE" in line for line in _lines_of(caplog, reference))


def test_gunicorns_access_log_and_the_apps_log_carry_the_reference(app, registry, session, world, tmp_path):
    """The real server: its access log line for a failed write ends with the reference the answer
    gave, and the app's line about it carries the same."""
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()
    session.close()
    port = _free_port()
    env = {**os.environ, "INSTANCE_DIR": str(app.config["INSTANCE_DIR"]), "KEY_PASSPHRASE": "not-the-passphrase",
           "SECRET_KEY": "t" * 32, "SCAN_SALT": "salt", "RATE_LIMITS": "off", "DATABASE_URL": app.config["DATABASE_URL"],
           "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "ACCESS_LOG": "on", "HOME": str(tmp_path / "home")}
    env.pop("XDG_RUNTIME_DIR", None)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()  # noqa: S310
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"http://127.0.0.1:{port}/api/v1/batches/{GTIN}/LOT-1/serials", data=b'{"count": 1}', method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {world.tokens['producer']}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)  # noqa: S310
        assert refused.value.code == 503
        reference = refused.value.headers["X-Request-ID"]
        assert HEX16.fullmatch(reference)
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    app_line = next(line for line in output.splitlines() if "KEYS_UNAVAILABLE" in line)
    assert f" WARNING app.errors [{reference}]: POST /api/v1/batches/{GTIN}/LOT-1/serials: KEYS_UNAVAILABLE" in app_line
    access = next(line for line in output.splitlines() if f'"POST /api/v1/batches/{GTIN}/LOT-1/serials' in line)
    assert access.endswith(f" {reference}") and '" 503 ' in access
    health = next(line for line in output.splitlines() if '"GET /healthz' in line)
    assert health.endswith(" -")  # nothing to look up: no reference
