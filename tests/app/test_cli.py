"""The command line: init, token create, demo, log verify, producer and batch tasks."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from app.config import ConfigError, load_config
from registry.models import Batch, LogEntry, ProducerKey
from registry.services import TokenService
from tests.conftest import GTIN, TEST_PASSPHRASE, append_only_lifted, batch_data


def test_init_is_idempotent(runner):
    first = runner.invoke(args=["init"])
    second = runner.invoke(args=["init"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.output.split()[-1] == second.output.split()[-1]  # the same authority key


def test_init_on_a_registry_without_its_key_folder_makes_no_new_authority_key(app, runner, world, tmp_path):
    """A second app server with the shared database but an empty key folder: init had made a new
    authority key, and the server signed checkpoints and trust lists no one could check against
    the log's (log verify: "signature names a different key"), while /readyz said ok."""
    from tests.conftest import another_app

    kid = runner.invoke(args=["init"]).output.split()[-1]
    database = app.config["DATABASE_URL"]
    with another_app(tmp_path / "second", database) as second:
        refused = second.test_cli_runner().invoke(args=["init"])
        _refused(refused, "AUTHORITY_KEY_MISSING", f"signed by authority key {kid}")
        assert not second.extensions["keystore"].has("authority")  # nothing made
        ready = second.test_client().get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["error"]["checks"]["signing_keys"] == "missing"
    # another instance's key folder: said so as well
    with another_app(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}") as other:
        assert other.test_cli_runner().invoke(args=["init"]).exit_code == 0  # its own registry
    with another_app(tmp_path / "other", database) as mixed:
        _refused(mixed.test_cli_runner().invoke(args=["init"]), "AUTHORITY_KEY_MISMATCH", f"signed by authority key {kid}")
    assert runner.invoke(args=["init"]).exit_code == 0  # the instance's own server: as before


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
    honey = client.get("/api/v1/batches/08936000010034/MO-2025-11").get_json()  # corrected once, not again
    assert honey["version"] == 2 and [v["version"] for v in honey["versions"]] == [1]
    assert honey["record"]["facility"]["address"].startswith("Thôn 3")
    check = runner.invoke(args=["log", "verify"])
    assert check.exit_code == 0 and "log OK" in check.output


def test_log_verify_fails_on_a_rewritten_entry(runner, session, world):
    runner.invoke(args=["demo"])
    entry = session.execute(select(LogEntry).where(LogEntry.kind == "origin-record")).scalars().first()
    with append_only_lifted(session):  # as the schema's owner can, putting the guards back after
        entry.data = entry.data.replace("Cà phê", "Cà phê giả")
        session.flush()
    session.commit()
    out = runner.invoke(args=["log", "verify"])
    assert out.exit_code != 0 and "leaf hash does not match" in out.output
    assert "Error: LOG_INVALID: log check failed (" in out.output


def test_log_verify_checks_a_kept_checkpoint(runner, client, session, world, tmp_path):
    """An auditor's checkpoint (as GET /log/checkpoint answered it) catches a log cut back, which
    nothing inside the database shows: the revocation, its nodes, its checkpoint and the size gone,
    the key's row set back as it was before."""
    from tests.registry.test_log_kept_checkpoint import cut_back

    assert runner.invoke(args=["producer", "revoke-key", "--", world.kid]).exit_code == 0  # a kid may start with -
    kept = tmp_path / "checkpoint.json"
    kept.write_bytes(client.get("/api/v1/log/checkpoint").data)
    size = json.loads(kept.read_text())["size"]
    out = runner.invoke(args=["log", "verify", "--checkpoint", str(kept)])
    assert out.exit_code == 0 and f"extends the kept checkpoint of size {size}" in out.output, out.output
    cut_back(session, size - 1)
    session.execute(update(ProducerKey).where(ProducerKey.kid == world.kid)
                    .values(status="active", compromised_at=None, revoked_at=None))
    session.commit()
    out = runner.invoke(args=["log", "verify"])
    assert out.exit_code == 0 and f"log OK: {size - 1} entries" in out.output  # what the finding showed
    out = runner.invoke(args=["log", "verify", "--checkpoint", str(kept)])
    assert out.exit_code != 0 and "log OK" not in out.output
    assert f"Error: LOG_ROLLED_BACK: the checkpoint is of size {size} but the log holds {size - 1}" in out.output
    kept.write_text("{not json")
    out = runner.invoke(args=["log", "verify", "--checkpoint", str(kept)])
    assert out.exit_code != 0 and "Error: MALFORMED_JSON:" in out.output


def test_log_producers_logs_the_producers_admitted_before_admissions_were_logged(runner, session, world):
    """An instance upgraded from a version that did not log admissions: log verify names each such
    producer and the command to run; ``log producers`` logs them once, listing what it logged."""
    from tests.registry.test_log_replay import unlogged_producer

    producer = unlogged_producer(session)
    out = runner.invoke(args=["log", "verify"])
    assert out.exit_code != 0 and "Error: STATE_DIFFERS: 1 difference(s)" in out.output
    assert f"DIFFERS: producers id={producer.id}: admission is present in the table" in out.output
    out = runner.invoke(args=["log", "producers"])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        f"logged {producer.id}: HTX Cũ (VN, tax code 0100109106, GS1 prefixes 8935555)", "1 producer(s) logged"]
    out = runner.invoke(args=["log", "verify"])
    assert out.exit_code == 0 and "the 2 producers, 1 producer keys" in out.output, out.output
    out = runner.invoke(args=["log", "producers"])
    assert out.exit_code == 0 and out.output == "every producer's admission is already logged\n"


def test_log_verify_compares_the_tables_with_the_log_replayed(runner, client, session, world):
    """A key revoked through the API, then set back to active in its table: the trust list would
    publish it as active; log verify names the row, what the table says and what the log says."""
    revoked = client.post(f"/api/v1/keys/{world.kid}/revoke", json={}, headers=world.auth("authority"))
    assert revoked.status_code == 200, revoked.get_json()
    out = runner.invoke(args=["log", "verify"])
    assert out.exit_code == 0, out.output
    assert "the 1 producers, 1 producer keys, 0 batches and 0 publications in the tables match the log" in out.output
    session.execute(update(ProducerKey).where(ProducerKey.kid == world.kid)
                    .values(status="active", compromised_at=None, revoked_at=None))
    session.commit()
    out = runner.invoke(args=["log", "verify"])
    assert out.exit_code != 0 and "log OK" not in out.output
    differs = f'DIFFERS: producer_keys kid={world.kid}: status is "active" in the table, "revoked" in the log'
    assert differs in out.output
    assert "Error: STATE_DIFFERS: 3 difference(s)" in out.output


def test_producer_and_batch_tasks(runner, tmp_path):
    pid = runner.invoke(args=["producer", "admit", "--name", "Chè Thái", "--tax-code", "4600000016",
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


@pytest.mark.parametrize("count", ["0", "-1", "100001"])
def test_a_serial_count_outside_what_the_api_accepts_is_refused_as_the_api_refuses_it(
        runner, client, registry, session, world, count):
    """``--count`` is checked by the API's schema: VALIDATION_FAILED naming the option, as POST
    .../serials answers the same count; it had been the registry's BAD_COUNT."""
    from registry.models import Serial
    from registry.services import SYSTEM

    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()
    _refused(runner.invoke(args=["batch", "serials", GTIN, "LOT-1", "--count", count]),
             "VALIDATION_FAILED: --count: Must be greater than or equal to 1 and less than or equal to 100000")
    answer = client.post(f"/api/v1/batches/{GTIN}/LOT-1/serials", json={"count": int(count)},
                         headers=world.auth("producer"))
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (422, "VALIDATION_FAILED")
    assert _count(session, Serial) == 0


def test_batch_correct(runner, session, world, tmp_path):
    """The CLI corrects as the API does: the whole record from a file, the reason as an option; the
    API's schema and the registry's rules refuse with a clear error and write nothing."""
    record = tmp_path / "batch.json"
    record.write_text(json.dumps(batch_data()))
    assert runner.invoke(args=["batch", "register", world.producer_id, str(record)]).exit_code == 0
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**batch_data(), "quantity": 80}))
    _refused(runner.invoke(args=["batch", "correct", GTIN, "LOT-1", str(fixed)]), "VALIDATION_FAILED", "reason")
    _refused(runner.invoke(args=["batch", "correct", GTIN, "LOT-1", str(record), "--reason", "same"]),
             "NOTHING_CHANGED")
    _refused(runner.invoke(args=["batch", "correct", GTIN, "LOT-9", str(fixed), "--reason", "x"]), "BATCH_UNKNOWN")
    out = runner.invoke(args=["batch", "correct", GTIN, "LOT-1", str(fixed), "--reason", "đếm lại"])
    assert out.exit_code == 0, out.output
    session.expire_all()
    batch = session.execute(select(Batch).where(Batch.gtin == GTIN, Batch.lot == "LOT-1")).scalar_one()
    assert batch.record["version"] == 2 and batch.record["quantity"] == 80 and batch.record["reason"] == "đếm lại"
    assert out.output.strip() == f"batch {GTIN}/LOT-1 corrected: version 2, log index {batch.log_index}"
    session.close()  # SQLite: the command below writes
    assert runner.invoke(args=["log", "verify"]).exit_code == 0


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
    ("DB_LOCK_TIMEOUT_SECONDS", "0", "DB_LOCK_TIMEOUT_SECONDS must be a number of at least 0.1, not '0'"),
    ("DB_READ_TIMEOUT_SECONDS", "5s", "DB_READ_TIMEOUT_SECONDS must be a number of at least 0.1, not '5s'"),
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


def test_a_commands_answer_is_alone_on_stdout_its_log_on_stderr(tmp_path):
    """`trust-list > list.json` on a development instance had written the KEY_PASSPHRASE warning
    into the file, and `verify --json` an INFO line before its JSON: the log goes to stderr."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key not in ("KEY_PASSPHRASE", "DATABASE_URL")}
    env["INSTANCE_DIR"] = str(tmp_path)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app", *args], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=120)

    assert run("init").returncode == 0
    listed = run("trust-list")
    assert listed.returncode == 0 and "KEY_PASSPHRASE" in listed.stderr  # the development warning, said
    trust_list = json.loads(listed.stdout)  # and the answer alone
    (tmp_path / "list.json").write_text(listed.stdout, encoding="utf-8")
    checked = run("verify", "08936000010010", "--json", "--offline", "--trust-list", str(tmp_path / "list.json"))
    assert json.loads(checked.stdout)["code"]["gtin"] == "08936000010010"
    assert trust_list["authority"]["public_key"]


def test_numbers_are_read_and_blank_ones_take_the_default(tmp_path):
    cfg = load_config({"INSTANCE_DIR": str(tmp_path), "LOOKUP_CACHE_ENTRIES": "0", "SCAN_FLUSH_SECONDS": "0.25",
                       "DB_POOL_SIZE": " "})
    assert (cfg["LOOKUP_CACHE_ENTRIES"], cfg["SCAN_FLUSH_SECONDS"], cfg["DB_POOL_SIZE"]) == (0, 0.25, 5)


@pytest.mark.parametrize("env,base_url", [
    ({}, "http://127.0.0.1:8000"),
    ({"BIND": "127.0.0.1:8123"}, "http://127.0.0.1:8123"),  # the demo's codes lead where it serves
    ({"BIND": "127.0.0.1:8123", "BASE_URL": "https://verify.example.vn/"}, "https://verify.example.vn"),
    ({"BIND": "unix:/run/verify.sock"}, "http://127.0.0.1:8000"),
])
def test_the_base_url_is_where_the_server_listens_unless_set(env, base_url, tmp_path):
    assert load_config({"INSTANCE_DIR": str(tmp_path), **env})["BASE_URL"] == base_url


def test_production_starts_with_real_secrets(tmp_path):
    cfg = load_config({"INSTANCE_DIR": str(tmp_path), "APP_ENV": "production", "KEY_PASSPHRASE": "p" * 20,
                       "SECRET_KEY": "s" * 40, "SCAN_SALT": "salt", "BASE_URL": "https://verify.example.vn"})
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert not (tmp_path / "dev-key-passphrase").exists()


# -- bad input: `Error: CODE: message`, a non-zero exit, no traceback, nothing written ----------------
def _refused(result, *says: str) -> str:
    """Assert the command refused cleanly; returns its ``Error:`` line."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    for text in says:
        assert text in errors[0], errors[0]
    return errors[0]


def _count(session, model, *where) -> int:
    from sqlalchemy import func

    session.rollback()  # a fresh transaction: see what the command committed
    try:
        return session.scalar(select(func.count()).select_from(model).where(*where))
    finally:
        session.rollback()  # and hold no lock while the next command writes (SQLite)


@pytest.mark.parametrize("days", ["0", "-5", "731", "99999999999"])
def test_token_days_outside_what_the_api_accepts_are_refused(runner, session, world, days):
    from registry.models import ApiToken

    before = _count(session, ApiToken)
    _refused(runner.invoke(args=["token", "create", "--role", "authority", "--days", days]),
             "BAD_EXPIRY", "between 1 and 730 days")
    _refused(runner.invoke(args=["token", "create", "--role", "producer", "--producer", world.producer_id,
                                 f"--days={days}"]), "BAD_EXPIRY")
    assert _count(session, ApiToken) == before


def test_token_days_within_the_api_range_expire_then(runner, session, world):
    from datetime import timedelta

    from keys.encoding import utcnow
    from registry.models import ApiToken

    def newest_expiry():
        session.rollback()
        try:
            return session.execute(select(ApiToken.expires_at).order_by(ApiToken.id.desc()).limit(1)).scalar_one()
        finally:
            session.rollback()

    for days in (1, 730):
        out = runner.invoke(args=["token", "create", "--role", "authority", "--days", str(days)])
        assert out.exit_code == 0, out.output
        expires = newest_expiry()
        expires = expires if expires.tzinfo else expires.replace(tzinfo=utcnow().tzinfo)
        assert abs(expires - (utcnow() + timedelta(days=days))) < timedelta(minutes=5)
    out = runner.invoke(args=["token", "create", "--role", "authority"])  # no --days: the operator's own, no expiry
    assert out.exit_code == 0
    assert newest_expiry() is None


@pytest.mark.parametrize("row_id", ["99999999999999999999999", "9223372036854775808", "-99999999999999999999", "0"])
@pytest.mark.parametrize("command,code,what", [
    (["token", "revoke"], "TOKEN_UNKNOWN", "token"),
    (["publish", "withdraw", "--reason", "x"], "PUBLICATION_UNKNOWN", "publication"),
])
def test_an_id_no_row_can_have_is_no_such_row(runner, row_id, command, code, what):
    """Past 2**63 - 1, or below 1, the id is refused with the code of an id the registry does not
    hold, by every command that takes a row's id (token revoke had said NOT_FOUND, and a large
    negative id was an OverflowError traceback in both)."""
    _refused(runner.invoke(args=[*command, "--", row_id]),
             f"{code}: no {what} {row_id} ({what} ids go from 1 to 9223372036854775807)")


def test_revoking_a_token_revokes_the_tokens_it_created(runner, session):
    from registry.accounts import TokenAdmin
    from registry.models import ApiToken
    from registry.services import Actor, Role

    admin = TokenAdmin(session)
    _, parent = admin.create(Actor(role=Role.AUTHORITY, name="system"), role="authority", days=30)
    session.flush()
    _, child = admin.create(Actor(role=Role.AUTHORITY, name=f"token:{parent.id}"), role="inspector", days=30)
    session.commit()
    parent_id, child_id = parent.id, child.id
    out = runner.invoke(args=["token", "revoke", str(parent_id)])
    assert out.exit_code == 0, out.output
    assert session.scalar(select(ApiToken.revoked_at).where(ApiToken.id == child_id)) is not None
    session.rollback()  # SQLite: let the command write
    _refused(runner.invoke(args=["token", "revoke", str(parent_id)]), "TOKEN_ALREADY_REVOKED")


def _good_batch(lot: str = "LOT-1") -> dict:
    from tests.conftest import batch_data

    return batch_data(lot=lot)


BAD_BATCHES = [
    pytest.param([_good_batch()], "_schema: Invalid input type", id="top-level-array"),
    pytest.param({**_good_batch(), "product": "x"}, "product._schema: Invalid input type", id="product-string"),
    pytest.param({**_good_batch(), "facility": "x"}, "facility._schema: Invalid input type", id="facility-string"),
    pytest.param({**_good_batch(), "certifications": "abc"}, "certifications: Not a valid list", id="certs-string"),
    pytest.param({**_good_batch(), "quantity": 99999999999999999999999}, "quantity", id="huge-quantity"),
    pytest.param({**_good_batch(), "quantity": "12"}, "quantity: Not a valid integer", id="quantity-string"),
    pytest.param({**_good_batch(), "colour": "red"}, "colour: Unknown field", id="unknown-field"),
    pytest.param({**_good_batch(), "product": {"name": "x", "colour": "red"}}, "product.colour: Unknown field",
                 id="unknown-nested-field"),
    pytest.param({k: v for k, v in _good_batch().items() if k != "lot"}, "lot: Missing data", id="missing-lot"),
]


@pytest.mark.parametrize("body,says", BAD_BATCHES)
def test_batch_register_refuses_what_the_api_refuses(runner, session, world, tmp_path, body, says):
    from registry.models import Batch, LogEntry

    record = tmp_path / "batch.json"
    record.write_text(json.dumps(body), encoding="utf-8")
    log_size = _count(session, LogEntry)
    _refused(runner.invoke(args=["batch", "register", world.producer_id, str(record)]), "VALIDATION_FAILED", says)
    assert _count(session, Batch) == 0 and _count(session, LogEntry) == log_size


@pytest.mark.parametrize("body,says", BAD_BATCHES)
def test_import_batches_refuses_a_bad_row_and_writes_none(runner, session, world, tmp_path, body, says):
    from registry.models import Batch, LogEntry

    rows = tmp_path / "batches.jsonl"
    rows.write_text(json.dumps(_good_batch("LOT-OK")) + "\n\n" + json.dumps(body) + "\n", encoding="utf-8")
    log_size = _count(session, LogEntry)
    _refused(runner.invoke(args=["import-batches", world.producer_id, str(rows)]),
             "VALIDATION_FAILED", "line 3: ", says)
    assert _count(session, Batch) == 0 and _count(session, LogEntry) == log_size


def test_import_batches_names_the_file_line_of_a_row_the_registry_refuses(runner, session, world, tmp_path):
    """A row the schema lets through but the registry refuses (here a lot already in the file) is
    named by its line in the file, blank lines counted, as the schema's refusals are: it had been
    "row 2", which is line 2 of no file."""
    from registry.models import Batch

    rows = tmp_path / "batches.jsonl"
    rows.write_text(json.dumps(_good_batch("LOT-A")) + "\n\n\n" + json.dumps(_good_batch("LOT-A")) + "\n",
                    encoding="utf-8")
    out = runner.invoke(args=["import-batches", world.producer_id, str(rows)])
    assert out.exit_code != 0 and "Error: BATCH_EXISTS: line 4: " in out.output, out.output
    assert "row 2" not in out.output and _count(session, Batch) == 0


def test_every_field_at_fault_is_listed_as_the_api_lists_them(runner, session, world, tmp_path):
    """A record with a wrong check digit and a lot too long: both are named (the API answers both in
    ``problems``), the first on the Error line; it had shown only the first."""
    from registry.models import Batch

    bad = _good_batch("L" * 21) | {"gtin": "08936000010012"}
    record = tmp_path / "batch.json"
    record.write_text(json.dumps(bad), encoding="utf-8")
    out = runner.invoke(args=["batch", "register", world.producer_id, str(record)])
    _refused(out, "BAD_CHECK_DIGIT: ", "(and 1 more problem(s), listed above)")
    problems = [line for line in out.output.splitlines() if line.startswith("PROBLEM: ")]
    assert [p.split(": ")[1] for p in problems] == ["BAD_CHECK_DIGIT", "BAD_LOT"], out.output
    rows = tmp_path / "batches.jsonl"
    rows.write_text(json.dumps(_good_batch("LOT-A")) + "\n\n" + json.dumps(bad) + "\n", encoding="utf-8")
    out = runner.invoke(args=["import-batches", world.producer_id, str(rows)])
    _refused(out, "BAD_CHECK_DIGIT: line 3: ")
    problems = [line for line in out.output.splitlines() if line.startswith("PROBLEM: ")]
    assert [p.split(": ")[1:3] for p in problems] == [["BAD_CHECK_DIGIT", "line 3"], ["BAD_LOT", "line 3"]]
    assert _count(session, Batch) == 0


def test_every_option_or_member_a_schema_refuses_is_listed_as_the_registrys_problems_are(
        runner, session, world, tmp_path):
    """What the API's schema refuses had come on one summary line (the audit's options past the
    first without their --); each field at fault is now a PROBLEM line of its own, as the
    registry's refusals are, the first on the Error line."""
    from registry.models import Batch, Producer

    def problems(out) -> list[str]:
        return [line.removeprefix("PROBLEM: VALIDATION_FAILED: ") for line in out.output.splitlines()
                if line.startswith("PROBLEM: ")]

    out = runner.invoke(args=["producer", "admit", "--name", "x" * 5000, "--tax-code", "4600000016",
                              "--prefix", "89x"])
    _refused(out, "VALIDATION_FAILED: --name: Length must be between 1 and 200. (and 1 more problem(s), listed above)")
    assert problems(out) == ["--name: Length must be between 1 and 200.",
                             "--prefix.0: String does not match expected pattern."]
    out = runner.invoke(args=["audit", "--limit", "0", "--since", "2026"])
    _refused(out, "VALIDATION_FAILED: --since: Not a valid datetime. (and 1 more problem(s), listed above)")
    assert problems(out) == ["--since: Not a valid datetime.",
                             "--limit: Must be greater than or equal to 1 and less than or equal to 200."]
    bad = {**_good_batch(), "quantity": "12", "colour": "red"}
    record = tmp_path / "batch.json"
    record.write_text(json.dumps(bad), encoding="utf-8")
    out = runner.invoke(args=["batch", "register", world.producer_id, str(record)])
    _refused(out, "VALIDATION_FAILED: the batch does not match the schema of POST /batches: quantity: Not a valid "
                  "integer. (and 1 more problem(s), listed above)")
    assert problems(out) == ["quantity: Not a valid integer.", "colour: Unknown field."]
    rows = tmp_path / "batches.jsonl"
    rows.write_text(json.dumps(_good_batch("LOT-A")) + "\n\n" + json.dumps(bad) + "\n", encoding="utf-8")
    out = runner.invoke(args=["import-batches", world.producer_id, str(rows)])
    _refused(out, "VALIDATION_FAILED: line 3: the batch does not match the schema of POST /batches: quantity: ")
    assert problems(out) == ["line 3: quantity: Not a valid integer.", "line 3: colour: Unknown field."]
    out = runner.invoke(args=["producer", "admit", "--name", "x" * 5000, "--tax-code", "4600000016",
                              "--prefix", "893600003"])
    _refused(out, "VALIDATION_FAILED: --name: Length must be between 1 and 200.")
    assert problems(out) == []  # one field at fault: the Error line alone, as for the registry's
    assert _count(session, Batch) == 0 and _count(session, Producer) == 1


def test_user_create_and_publish_list_every_field_the_registry_refuses(runner, session):
    """Their refusals had shown only the first field at fault; they go through the one _fail now."""
    from registry.models import Publication, User

    out = runner.invoke(args=["user", "create", "--username", "a b", "--role", "producer", "--password-stdin"],
                        input="short\n")
    _refused(out, "BAD_USERNAME: ", "(and 2 more problem(s), listed above)")
    assert [line.split(": ")[1] for line in out.output.splitlines() if line.startswith("PROBLEM: ")] == [
        "BAD_USERNAME", "FIELD_REQUIRED", "PASSWORD_TOO_SHORT"]
    out = runner.invoke(args=["publish", "warning", "--title", "x" * 301, "--body", "Cà phê giả",
                              "--decided-on", "2026-13-01"])
    _refused(out, "TOO_LONG: title", "(and 1 more problem(s), listed above)")
    assert [line.split(": ")[1] for line in out.output.splitlines() if line.startswith("PROBLEM: ")] == [
        "TOO_LONG", "BAD_DATE"]
    assert _count(session, User) == 0 and _count(session, Publication) == 0


def test_the_api_refuses_the_same_batch_bodies(client, world):
    """The command line and POST /batches answer the same bodies the same way."""
    for param in BAD_BATCHES:
        body, says = param.values
        answer = client.post("/api/v1/batches", json=body, headers=world.auth("producer"))
        assert answer.status_code == 422, (param.id, answer.get_json())
        assert answer.get_json()["error"]["code"] == "VALIDATION_FAILED"


@pytest.mark.parametrize("content,says", [
    pytest.param('{"gtin": "08936000010010", "lot": "LOT-1", "product": {"name": "C\xe0 ph\xea"}}'.encode("latin-1"),
                 "not UTF-8", id="latin-1"),
    pytest.param(b"\xff\xfe{\x00}\x00", "not UTF-8", id="utf-16"),
    pytest.param(b'{"gtin": NaN}', "expected a JSON value: line 1 column 10", id="nan"),
    pytest.param(b"{nope", "not valid JSON", id="broken"),
    pytest.param(b"[" * 100_000, "depth limit exceeded", id="deep"),
    pytest.param(b'{"gtin": "08936000010010", "gtin": "08936000010027", "lot": "L"}',
                 "the object member 'gtin' is given more than once", id="repeated-member"),
])
def test_a_file_that_is_not_json_text_is_refused(runner, session, world, tmp_path, content, says):
    from registry.models import Batch

    path = tmp_path / "batch.json"
    path.write_bytes(content)
    _refused(runner.invoke(args=["batch", "register", world.producer_id, str(path)]), "MALFORMED_JSON", says)
    _refused(runner.invoke(args=["import-batches", world.producer_id, str(path)]), "MALFORMED_JSON", says)
    assert _count(session, Batch) == 0


def test_import_batches_still_registers_good_rows(runner, session, world, tmp_path):
    from registry.models import Batch

    rows = tmp_path / "batches.jsonl"
    product = {"name": "Cà phê\u2028rang"}  # a line separator inside a string does not end the line
    rows.write_text("\r\n".join(json.dumps({**_good_batch(f"LOT-{n}"), "product": product}, ensure_ascii=False)
                                for n in range(3)) + "\r\n", encoding="utf-8")
    out = runner.invoke(args=["import-batches", world.producer_id, str(rows)])
    assert out.exit_code == 0, out.output
    assert "imported 3 batches" in out.output and _count(session, Batch) == 3


def test_a_recall_reason_longer_than_the_api_allows_is_refused(runner, session, world, tmp_path):
    from registry.models import Batch, LogEntry, Recall

    record = tmp_path / "batch.json"
    record.write_text(json.dumps(_good_batch()), encoding="utf-8")
    assert runner.invoke(args=["batch", "register", world.producer_id, str(record)]).exit_code == 0
    log_size = _count(session, LogEntry)
    gtin = _good_batch()["gtin"]
    _refused(runner.invoke(args=["batch", "recall", gtin, "LOT-1", "--reason", "x" * 5000]),
             "VALIDATION_FAILED", "reason", "1000")
    _refused(runner.invoke(args=["batch", "recall", gtin, "LOT-1", "--reason", ""]), "reason")
    assert _count(session, Recall) == 0 and _count(session, LogEntry) == log_size
    assert _count(session, Batch, Batch.status == "active") == 1
    done = runner.invoke(args=["batch", "recall", gtin, "LOT-1", "--reason", "y" * 1000])  # the limit itself
    assert done.exit_code == 0, done.output
    assert _count(session, Recall) == 1


@pytest.mark.parametrize("when,says", [
    ("0001-01-01T00:00:00+14:00", "out of range"),
    ("9999-12-31T23:59:59-14:00", "out of range"),
    ("yesterday", "not an RFC 3339 time"),
    ("2020-01-01T00:00:00", "needs a zone"),
])
def test_revoke_key_with_an_impossible_time_is_refused(runner, session, world, when, says):
    from registry.models import LogEntry, ProducerKey

    log_size = _count(session, LogEntry)
    args = ["producer", "revoke-key", "--compromised-at", when, "--", world.kid]  # "--": a kid may begin with "-"
    _refused(runner.invoke(args=args), "BAD_DATE", says)
    assert _count(session, ProducerKey, ProducerKey.status == "active") == 1
    assert _count(session, LogEntry) == log_size


def test_trust_list_into_a_missing_folder_is_refused(runner, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    target = tmp_path / "nonexistent" / "dir" / "x.json"
    _refused(runner.invoke(args=["trust-list", "-o", str(target)]), "WRITE_FAILED", str(target))
    assert not target.parent.exists()
    written = runner.invoke(args=["trust-list", "-o", str(tmp_path / "tl.json")])
    assert written.exit_code == 0 and json.loads((tmp_path / "tl.json").read_text())["t"] == "trust-list"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tl.json"]  # no temporary file left behind


@pytest.mark.parametrize("key", ["!!", "", "AAAA", "a=="])
def test_verify_offline_names_a_malformed_authority_key(runner, world, tmp_path, key):
    trust_list = tmp_path / "tl.json"
    assert runner.invoke(args=["trust-list", "-o", str(trust_list)]).exit_code == 0
    line = _refused(runner.invoke(args=["verify", "hello", "--offline", "--trust-list", str(trust_list),
                                        "--authority-key", key]), "BAD_AUTHORITY_KEY", "--authority-key is malformed")
    assert "trust list" not in line


def test_verify_offline_never_trusts_a_lists_own_key(runner, registry, world, tmp_path):
    """A list signed by someone else, with that someone's key inside, and a code signed with a key it
    lists: without --authority-key the instance's own authority is the pin, so the list is refused.
    It had been loaded, and the forged code answered 'genuine' offline."""
    from keys.encoding import b64url_encode
    from keys.signing import Signer, sign, sign_code
    from verification.digital_link import build_url

    impostor, forger = Signer.generate(), Signer.generate()
    forged = {k: v for k, v in registry.trust_list().items() if k != "sig"}
    forged["authority"] = {"kid": impostor.kid, "public_key": b64url_encode(impostor.public_raw)}
    forged["producers"] = [{**forged["producers"][0], "keys": [{
        **forged["producers"][0]["keys"][0], "kid": forger.kid, "public_key": b64url_encode(forger.public_raw)}]}]
    trust_list = tmp_path / "forged.json"
    trust_list.write_text(json.dumps(sign(forged, impostor)))
    code = build_url("https://verify.example.vn", gtin=GTIN, lot="FAKE1", serial="NEVERISSUED",
                     s=sign_code(forger, gtin=GTIN, lot="FAKE1", serial="NEVERISSUED", exp=None))
    _refused(runner.invoke(args=["verify", code, "--offline", "--trust-list", str(trust_list)]),
             "TRUST_LIST_INVALID", "trust list refused")
    pinned = runner.invoke(args=["verify", code, "--offline", "--json", "--trust-list", str(trust_list),
                                 "--authority-key", b64url_encode(impostor.public_raw)])
    assert json.loads(pinned.output[pinned.output.index("{"):pinned.output.rindex("}") + 1])["verdict"] == "genuine"


def test_verify_offline_without_an_authority_key_to_pin_is_refused(tmp_path):
    """On a machine with no initialised instance (an inspector's laptop) the pin must be given."""
    from app import create_app

    bare = create_app({"INSTANCE_DIR": tmp_path / "bare", "KEY_PASSPHRASE": TEST_PASSPHRASE, "SECRET_KEY": "t" * 32,
                       "SCAN_SALT": "s", "DATABASE_URL": f"sqlite:///{tmp_path / 'bare.db'}"})
    trust_list = tmp_path / "tl.json"
    trust_list.write_text("{}")
    _refused(bare.test_cli_runner().invoke(args=["verify", "hello", "--offline", "--trust-list", str(trust_list)]),
             "AUTHORITY_KEY_REQUIRED", "--authority-key")
    bare.extensions["engine"].dispose()


def test_verify_offline_refuses_a_malformed_trust_list_with_its_code(runner, tmp_path):
    trust_list = tmp_path / "tl.json"
    for content in (b"\xff", b"{nope", b'{"t": "trust-list", "authority": 5}'):
        trust_list.write_bytes(content)
        _refused(runner.invoke(args=["verify", "hello", "--offline", "--trust-list", str(trust_list)]),
                 "TRUST_LIST_INVALID", "trust list refused")


def test_publish_withdraw_refuses_a_huge_id_and_a_long_reason(runner, session):
    from registry.models import Publication

    out = runner.invoke(args=["publish", "warning", "--title", "Hàng giả", "--body", "Cà phê giả"])
    assert out.exit_code == 0, out.output
    item = json.loads(out.output.strip().splitlines()[-1])
    _refused(runner.invoke(args=["publish", "withdraw", "99999999999999999999999", "--reason", "x"]),
             "PUBLICATION_UNKNOWN", "no publication 99999999999999999999999")
    _refused(runner.invoke(args=["publish", "withdraw", str(item["id"]), "--reason", "x" * 1001]),
             "VALIDATION_FAILED", "reason")
    assert _count(session, Publication, Publication.withdrawn_at.is_not(None)) == 0


def test_audit_prints_the_trail_newest_first_a_page_at_a_time(runner, world, session):
    """The operator's reading of the audit trail, with who did what; a page that is not the last ends
    with the --before of the next."""
    refused = runner.invoke(args=["batch", "recall", GTIN, "NO-SUCH-LOT", "--reason", "x"])
    assert refused.exit_code != 0  # and a refusal writes no event: the newest is still the key's
    out = runner.invoke(args=["audit", "--limit", "1"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.output.splitlines()]
    assert lines[0]["action"] == "key.certify" and lines[0]["actor"] == "system"
    assert set(lines[0]) == {"id", "at", "actor", "actor_label", "action", "target", "detail"}
    assert lines[1] == {"next_before": lines[0]["id"]}
    older = runner.invoke(args=["audit", "--before", str(lines[0]["id"])])
    assert [json.loads(line)["action"] for line in older.output.splitlines()] == ["producer.admit"]
    only = runner.invoke(args=["audit", "--action", "producer.admit", "--target", world.producer_id])
    assert [json.loads(line)["target"] for line in only.output.splitlines()] == [world.producer_id]


@pytest.mark.parametrize("args,message", [
    (["--limit", "0"], "VALIDATION_FAILED: --limit"),
    (["--limit", "lots"], "VALIDATION_FAILED: --limit"),
    (["--action", "batch.delete"], "VALIDATION_FAILED: --action"),
    (["--since", "2026-12-01T08:00:00"], "VALIDATION_FAILED: --since"),
    (["--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z"], "BAD_PERIOD"),
])
def test_audit_refuses_what_it_cannot_search(runner, world, args, message):
    out = runner.invoke(args=["audit", *args])
    assert out.exit_code != 0 and f"Error: {message}" in out.output


def test_a_new_instance_is_the_owners_alone(tmp_path):
    """``init`` in a new instance folder under a permissive umask: the folder is 0700 and the SQLite
    registry (shoppers' contacts and photos, password hashes) and its WAL files 0600; the registry
    had been world-readable. Run as a new process, as an operator would."""
    import os
    import stat
    import subprocess
    import sys
    from pathlib import Path

    instance = tmp_path / "new-instance"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "INSTANCE_DIR")}
    env.update(INSTANCE_DIR=str(instance), KEY_PASSPHRASE=TEST_PASSPHRASE)
    done = subprocess.run([sys.executable, "-c", "import os, runpy, sys; os.umask(0o022); sys.argv = ['app', 'init']; "
                           "runpy.run_module('app', run_name='__main__')"],
                          cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    mode = lambda path: stat.S_IMODE(path.stat().st_mode)  # noqa: E731
    assert mode(instance) == 0o700
    files = [p for p in instance.iterdir() if p.name.startswith("registry.db")]
    assert instance / "registry.db" in files
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


@pytest.mark.parametrize("args,says", [
    (["producer", "admit", "--name", "x" * 5000, "--tax-code", "4600000016", "--prefix", "893600003"],
     "--name: Length must be between 1 and 200"),
    (["producer", "admit", "--name", "Chè", "--tax-code", "4600000016",
      *[arg for n in range(61) for arg in ("--prefix", f"8936{n:05d}")]], "--prefix: Length must be between 1 and 50"),
    (["producer", "admit", "--name", "Chè", "--tax-code", "4600000016", "--prefix", "89x"], "--prefix.0"),
    (["token", "create", "--role", "partner", "--label", "x" * 5000], "--label: Longer than maximum length 100"),
    (["token", "create", "--role", "partner", "--label", "x" * 101, "--days", "5"], "--label"),
])
def test_producer_and_token_options_are_checked_by_the_apis_schemas(runner, session, world, args, says):
    """Too long a name or label, too many prefixes: 422 through the API, and refused here too (they
    were a StringDataRightTruncation traceback on PostgreSQL, 5,000 characters kept on SQLite)."""
    from registry.models import ApiToken, AuditEvent, Producer

    before = [_count(session, model) for model in (Producer, ApiToken, AuditEvent)]
    _refused(runner.invoke(args=args), "VALIDATION_FAILED", says)
    assert [_count(session, model) for model in (Producer, ApiToken, AuditEvent)] == before


def test_user_create_refuses_a_name_longer_than_the_api_allows(runner, session):
    from registry.models import User

    _refused(runner.invoke(args=["user", "create", "--username", "bob", "--role", "partner", "--name", "x" * 5000,
                                 "--password-stdin"], input="password-long-enough\n"),
             "VALIDATION_FAILED", "--name: Longer than maximum length 200")
    assert _count(session, User) == 0
    done = runner.invoke(args=["user", "create", "--username", "bob", "--role", "partner", "--name", "y" * 200,
                               "--password-stdin"], input="password-long-enough\n")
    assert done.exit_code == 0, done.output
    session.rollback()
    assert session.scalar(select(User.display_name).where(User.username == "bob")) == "y" * 200


def test_token_create_is_audited_with_or_without_days(runner, session):
    """Both the operator's own token (no --days, no expiry) and one that expires leave a token.create
    event; the first had left none."""
    from registry.models import ApiToken

    made = []
    for extra in ([], ["--days", "5"]):
        out = runner.invoke(args=["token", "create", "--role", "inspector", "--label", "desk", *extra])
        assert out.exit_code == 0, out.output
        made.append(out.output.strip().splitlines()[-1])
    session.rollback()
    rows = session.execute(select(ApiToken).order_by(ApiToken.id)).scalars().all()
    assert [(r.label, r.expires_at is None) for r in rows] == [("desk", True), ("desk", False)]
    session.rollback()
    events = [json.loads(line) for line in runner.invoke(args=["audit", "--action", "token.create"]).output.splitlines()]
    assert [(e["target"], e["actor"], e["detail"]["role"]) for e in events] == [
        (f"token:{rows[1].id}", "system", "inspector"), (f"token:{rows[0].id}", "system", "inspector")]
    assert events[1]["detail"]["expires_at"] is None and events[0]["detail"]["expires_at"].endswith("Z")


def test_verify_takes_a_text_no_file_can_be_named_and_refuses_a_code_longer_than_the_api_allows(runner, world):
    """A text with a path segment over 255 bytes was tried as a file (OSError: File name too long);
    a code over 4,096 characters is VALIDATION_FAILED, as GET /verify answers it."""
    long_segment = "https://verify.example.vn/01/" + GTIN + "/10/" + "L" * 300
    out = runner.invoke(args=["verify", "--json", long_segment])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output[out.output.index("{"):])["verdict"] == "unreadable"  # a lot of 300 characters
    _refused(runner.invoke(args=["verify", "x" * 4097]), "VALIDATION_FAILED", "IMAGE_OR_TEXT", "4096")
    _refused(runner.invoke(args=["verify", ""]), "VALIDATION_FAILED", "IMAGE_OR_TEXT")


def test_verify_says_a_photo_it_cannot_find_and_a_list_without_offline(runner, world, tmp_path):
    """A mistyped photo path had been verified as the text of a code ("unreadable", exit 0), and a
    --trust-list without --offline ignored, the check run online."""
    _refused(runner.invoke(args=["verify", str(tmp_path / "anh-nhan.jpg")]), "READ_FAILED", "anh-nhan.jpg")
    trust_list = tmp_path / "list.json"
    trust_list.write_text("{}", encoding="utf-8")
    out = runner.invoke(args=["verify", "08936000010010", "--trust-list", str(trust_list)])
    assert out.exit_code == 2 and "--trust-list is for --offline" in out.output


def test_verify_names_an_empty_photo_file_as_the_api_does(runner, world, tmp_path):
    """A zero-byte file had been 'not a supported image'; POST /verify/image says IMAGE_EMPTY."""
    empty = tmp_path / "photo.jpg"
    empty.write_bytes(b"")
    _refused(runner.invoke(args=["verify", str(empty)]), "IMAGE_EMPTY", "photo.jpg", "empty")


def test_verify_says_a_file_it_cannot_read(runner, world):
    """A file that fails to read (here the process's own memory at address 0, which fails even for
    root, where a file without permission would not) is READ_FAILED, not a traceback."""
    _refused(runner.invoke(args=["verify", "/proc/self/mem"]), "READ_FAILED", "/proc/self/mem")


@pytest.mark.parametrize("stdin,says", [
    (b"\xff\xfepassword-long\n", ("BAD_PASSWORD", "not UTF-8", "0xff at offset 0")),
    (b"pass\x00word-long-enough\n", ("NUL_CHARACTER", "password")),
])
def test_user_create_refuses_a_password_on_stdin_the_portal_could_never_take(runner, session, stdin, says):
    """Not UTF-8 was a UnicodeEncodeError traceback; a NUL made an account whose password the portal
    (which refuses NUL) could never be typed into."""
    from registry.models import User

    _refused(runner.invoke(args=["user", "create", "--username", "bob", "--role", "partner", "--password-stdin"],
                           input=stdin), *says)
    assert _count(session, User) == 0
    done = runner.invoke(args=["user", "create", "--username", "bob", "--role", "partner", "--password-stdin"],
                         input="mật-khẩu-dài-đủ\r\n".encode())
    assert done.exit_code == 0, done.output
    session.rollback()
    from registry.accounts import AccountService

    assert AccountService(session).authenticate("bob", "mật-khẩu-dài-đủ").name == "user:bob"


@pytest.mark.parametrize("args", [
    ["log", "verify"], ["trust-list"], ["audit"], ["batch", "serials", GTIN, "LOT-1", "--count", "1"],
    ["token", "create", "--role", "partner"], ["user", "unlock", "bob"], ["publish", "withdraw", "1", "--reason", "x"],
    ["verify", "https://verify.example.vn/01/" + GTIN + "/10/LOT-1/21/S1"],
])
def test_a_command_before_init_says_so_and_creates_no_database(tmp_path, args):
    """Before `init` these were RuntimeError or OperationalError tracebacks that left an empty
    registry.db behind."""
    from app import create_app

    bare = create_app({"INSTANCE_DIR": tmp_path / "bare", "KEY_PASSPHRASE": TEST_PASSPHRASE, "SECRET_KEY": "t" * 32,
                       "SCAN_SALT": "s", "DATABASE_URL": f"sqlite:///{tmp_path / 'bare.db'}"})
    try:
        _refused(bare.test_cli_runner().invoke(args=args), "NOT_INITIALISED", "run python -m app init")
        assert not (tmp_path / "bare.db").exists()
        assert bare.test_cli_runner().invoke(args=["init"]).exit_code == 0
        assert bare.test_cli_runner().invoke(args=["audit"]).exit_code == 0  # and after it, the command runs
    finally:
        bare.extensions["scan_writer"].close()
        bare.extensions["engine"].dispose()


@pytest.mark.parametrize("name", ["VERIFY_RATE_LIMIT", "REPORT_RATE_LIMIT", "FOLLOWUP_RATE_LIMIT", "LOGIN_RATE_LIMIT"])
def test_a_rate_limit_the_limiter_cannot_parse_stops_the_start(name, tmp_path):
    """VERIFY_RATE_LIMIT=lots started, and every GET /api/v1/verify then answered 500."""
    with pytest.raises(ConfigError) as refused:
        load_config({"INSTANCE_DIR": str(tmp_path), name: "lots"})
    assert str(refused.value).startswith(f"{name} must be a rate limit such as ") and "not 'lots'" in str(refused.value)
    assert load_config({"INSTANCE_DIR": str(tmp_path), name: "5/second;100 per hour"})[name] == "5/second;100 per hour"


def test_rate_limits_takes_only_on_or_off(tmp_path):
    """RATE_LIMITS=maybe had been taken as on."""
    with pytest.raises(ConfigError, match="RATE_LIMITS must be on or off, not 'maybe'"):
        load_config({"INSTANCE_DIR": str(tmp_path), "RATE_LIMITS": "maybe"})
    assert [load_config({"INSTANCE_DIR": str(tmp_path), "RATE_LIMITS": v})["RATE_LIMITS"] for v in ("OFF", "on", "")] \
        == ["off", "on", "on"]


def test_redis_url_must_be_a_redis_url(tmp_path):
    """REDIS_URL=localhost:6379 had stopped the app with the limits library's traceback; the
    error names the setting without the URL's password."""
    with pytest.raises(ConfigError) as refused:
        load_config({"INSTANCE_DIR": str(tmp_path), "REDIS_URL": "memcached://app:s3cret@cache:11211"})
    assert str(refused.value) == ("REDIS_URL must be a Redis URL (redis://..., rediss://..., redis+unix://...), "
                                  "not 'cache:11211'")
    assert "s3cret" not in str(refused.value)
    for good in ("redis://127.0.0.1:6379/0", "rediss://:pw@cache:6380", "redis+unix:///run/redis.sock"):
        assert load_config({"INSTANCE_DIR": str(tmp_path), "REDIS_URL": good})["REDIS_URL"] == good
    assert load_config({"INSTANCE_DIR": str(tmp_path), "REDIS_URL": ""})["REDIS_URL"] is None


@pytest.mark.parametrize("name,value", [("WEB_CONCURRENCY", "zero"), ("WEB_CONCURRENCY", "0"),
                                        ("GUNICORN_THREADS", "many"), ("GUNICORN_THREADS", "0")])
def test_the_server_settings_name_a_bad_value(name, value):
    import os
    import subprocess
    import sys

    from app.config import server_settings

    with pytest.raises(ConfigError) as refused:
        server_settings({name: value})
    assert str(refused.value) == f"{name} must be a whole number of at least 1, not {value!r}"
    assert server_settings({"WEB_CONCURRENCY": "3", "GUNICORN_THREADS": " "}) == {"workers": 3, "threads": 1,
                                                                                 "access_log": True}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-m", "app.config"], cwd=repo, env={**os.environ, name: value},
                          capture_output=True, text=True, timeout=60)  # what `make serve` runs first
    assert (done.returncode, done.stderr.strip()) == (1, f"Error: {refused.value}")


def test_the_access_log_setting_is_on_or_off():
    """ACCESS_LOG=yes had turned the access log off, in silence: anything but 1 did."""
    from app.config import server_settings

    assert [server_settings({"ACCESS_LOG": v})["access_log"] for v in ("", "on", "1", "OFF", "0")] == [
        True, True, True, False, False]
    with pytest.raises(ConfigError, match="ACCESS_LOG must be on or off or 1 or 0, not 'yes'"):
        server_settings({"ACCESS_LOG": "yes"})


@pytest.mark.parametrize("label", ["demo", " demo "])
def test_the_demos_token_label_is_the_demos_alone(runner, client, session, world, label):
    """Each demo run revokes the tokens labelled demo: an operator's token so labelled (at the
    command line or through the API) was revoked with them. The label is refused to anyone but
    the demo now, so a demo run revokes only the tokens a demo run made."""
    from registry.models import ApiToken

    before = _count(session, ApiToken)
    _refused(runner.invoke(args=["token", "create", "--role", "partner", "--label", label]),
             "LABEL_RESERVED: the label 'demo' is kept for the demo's tokens")
    answer = client.post("/api/v1/tokens", json={"role": "partner", "label": label}, headers=world.auth("authority"))
    assert answer.status_code == 422, answer.get_json()
    assert (answer.get_json()["error"]["code"], answer.get_json()["error"]["field"]) == ("LABEL_RESERVED", "label")
    assert _count(session, ApiToken) == before
    assert runner.invoke(args=["token", "create", "--role", "partner", "--label", "demo desk"]).exit_code == 0
    out = runner.invoke(args=["demo"])
    assert out.exit_code == 0, out.output
    assert len([line for line in out.output.splitlines() if " token: pov_" in line]) == 4  # the demo's own


def test_a_new_demo_run_replaces_the_demo_tokens_and_says_each_batchs_status(runner, session, world):
    """Each run had added four tokens that never expire and left the previous ones valid."""
    from registry.errors import Unauthorized

    def run() -> tuple[dict[str, str], list[str]]:
        out = runner.invoke(args=["demo"])
        assert out.exit_code == 0, out.output
        lines = out.output.splitlines()
        return {line.split()[0]: line.split()[-1] for line in lines if " token: pov_" in line}, lines

    first, lines = run()
    statuses = [line.split("[", 1)[1].split("]", 1)[0] for line in lines if line.startswith("  ") and "[" in line]
    assert statuses == ["genuine", "recalled", "expired"]
    second, _ = run()
    tokens = TokenService(session)
    for role in ("authority", "inspector", "partner", "producer"):
        with pytest.raises(Unauthorized):
            tokens.authenticate(first[role])
        assert tokens.authenticate(second[role]).role.value == role
    tokens.authenticate(world.tokens["authority"])  # a token not of the demo stays valid
    session.rollback()
    events = [json.loads(line) for line in runner.invoke(args=["audit", "--limit", "200"]).output.splitlines()]
    actions = [e["action"] for e in events if e.get("action") in ("token.create", "token.revoke")]
    assert actions.count("token.create") == 8 and actions.count("token.revoke") == 4


NEW_PASSPHRASE = "a new passphrase, not leaked"


def test_keys_rewrap_moves_every_key_to_the_new_passphrase_and_is_audited(app, runner, session, world, registry):
    """After the run a server on the new KEY_PASSPHRASE signs, with the authority's key and with the
    producer's custodial one; one still on the old passphrase cannot open them."""
    from registry.models import AuditEvent
    from tests.conftest import another_app

    done = runner.invoke(args=["keys", "rewrap"], input=NEW_PASSPHRASE + "\n")
    assert done.exit_code == 0, done.output
    assert done.output.startswith("2 private key(s) encrypted under the new passphrase\n")  # authority, producer
    assert "set KEY_PASSPHRASE to it on every server and restart them" in done.output
    assert NEW_PASSPHRASE not in done.output
    event = session.execute(select(AuditEvent.actor, AuditEvent.target, AuditEvent.detail)
                            .where(AuditEvent.action == "keys.rewrap")).one()
    assert tuple(event) == ("system", "keys", {"rewrapped": 2, "already": 0})
    session.rollback()  # SQLite: the servers below write
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"], KEY_PASSPHRASE=NEW_PASSPHRASE) as new:
        client = new.test_client()
        assert client.get("/readyz").get_json()["checks"]["signing_keys"] == "ok"
        made = client.post("/api/v1/batches", json=batch_data(), headers=world.auth("producer"))
        assert made.status_code == 201, made.get_data(as_text=True)
    with another_app(app.config["INSTANCE_DIR"], app.config["DATABASE_URL"]) as old:  # KEY_PASSPHRASE unchanged
        assert old.test_client().get("/readyz").get_json()["error"]["checks"]["signing_keys"] == "cannot be opened"
    again = runner.invoke(args=["keys", "rewrap"], input=NEW_PASSPHRASE + "\n")  # this process: the new one now
    _refused(again, "KEYS_UNAVAILABLE: the new passphrase is the current one")


@pytest.mark.parametrize("given,says", [
    ("short one\n", "BAD_PASSPHRASE: the new passphrase must have at least 16 characters (stdin's first line had 9)"),
    ("\n", "BAD_PASSPHRASE: the new passphrase must have at least 16 characters (stdin's first line had 0)"),
    (b"\xff not utf-8 at all, but long\n", "BAD_PASSPHRASE: the new passphrase on stdin is not UTF-8 text"),
    ("sixteen chars \x00 and a NUL\n", "NUL_CHARACTER"),
    (TEST_PASSPHRASE + "\n", "KEYS_UNAVAILABLE: the new passphrase is the current one"),
])
def test_keys_rewrap_refuses_a_bad_passphrase_and_changes_nothing(app, runner, given, says):
    folder = app.config["KEY_DIR"]
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    _refused(runner.invoke(args=["keys", "rewrap"], input=given), says)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_scans_write_spool_writes_what_stopped_workers_kept(app, runner, session, world, registry):
    """A server to retire, its workers stopped with events they could not write: the command writes
    them now (a running worker would within 30 s); a file whose process still runs is left."""
    from datetime import datetime, timezone

    from registry.models import ScanEvent
    from registry.scan_spool import ScanSpool, SpooledFlush
    from registry.services import SYSTEM

    batch = registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    session.commit()
    spool = ScanSpool(app.config["SCAN_SPOOL_DIR"])
    event = {"batch_id": batch.id, "serial_id": None, "at": datetime.now(timezone.utc), "channel": "api",
             "client_hash": None, "network_hash": None, "lat": None, "lon": None, "verdict": "genuine"}
    spool.spill("a" * 32, [SpooledFlush(1, [event, event])]).release()  # a worker that stopped
    running = spool.spill("b" * 32, [SpooledFlush(1, [event])])  # one still stopping
    try:
        done = runner.invoke(args=["scans", "write-spool"])
        # written what it could, and says the server is not one to retire yet (it had exited 0)
        assert done.output.startswith(f"2 scan event(s) written from {app.config['SCAN_SPOOL_DIR']}\n")
        _refused(done, "SPOOL_NOT_EMPTY: 1 file(s) left, held by a process still running")
        assert _count(session, ScanEvent) == 2
    finally:
        running.release()
    done = runner.invoke(args=["scans", "write-spool"])
    assert done.exit_code == 0 and done.output == f"1 scan event(s) written from {app.config['SCAN_SPOOL_DIR']}\n"
    assert _count(session, ScanEvent) == 3
    # a file that cannot be read is set aside, named, and the command fails until someone looks at it
    (app.config["SCAN_SPOOL_DIR"] / f"{'c' * 32}-0badf11e.scans.json").write_text("not json")
    done = runner.invoke(args=["scans", "write-spool"])
    _refused(done, "SPOOL_NOT_EMPTY: 1 file(s) set aside", "0badf11e.scans.json.unreadable")
    assert _count(session, ScanEvent) == 3


@pytest.mark.parametrize("value", ["https:// verify.example.vn", "https://verify.example.vn/api?x=1", "https://x.vn#f",
                                   "127.0.0.1:8613", "https://user:pw@x.vn", "ftp://x.vn"])
def test_a_base_url_that_cannot_be_printed_in_codes_stops_the_start(tmp_path, value):
    """BASE_URL is printed in every code on goods: a space, a query or a fragment had gone into the
    demo's codes as they were, and a URL without a scheme had been taken in development."""
    with pytest.raises(ConfigError) as refused:
        load_config({"INSTANCE_DIR": str(tmp_path), "BASE_URL": value})
    assert str(refused.value).startswith("BASE_URL must be the http:// or https:// address") and "pw" not in str(
        refused.value).split("not ")[0]
    assert load_config({"INSTANCE_DIR": str(tmp_path), "BASE_URL": "https://verify.example.vn/"})["BASE_URL"] == \
        "https://verify.example.vn"


def test_app_env_database_urls_and_the_spool_folder_are_checked_at_the_start(tmp_path):
    """APP_ENV=prod had run as development, generating secrets; postgresql:// (without +psycopg) and
    a READ_DATABASE_URL of nonsense had been tracebacks; a SCAN_SPOOL_DIR that cannot be made had
    been found when a stopping worker needed it, its scan events lost."""
    base = {"INSTANCE_DIR": str(tmp_path / "i")}
    with pytest.raises(ConfigError, match="APP_ENV must be development or production, not 'prod'"):
        load_config({**base, "APP_ENV": "prod"})
    assert not (tmp_path / "i" / "dev-secret-key").exists()  # refused before anything was generated
    taken = load_config({**base, "DATABASE_URL": "postgresql://app@/registry?host=/var/run/postgresql",
                         "READ_DATABASE_URL": "postgres://app:pw@replica/registry"})
    assert taken["DATABASE_URL"] == "postgresql+psycopg://app@/registry?host=/var/run/postgresql"
    assert taken["READ_DATABASE_URL"] == "postgresql+psycopg://app:pw@replica/registry"
    for name, value in (("READ_DATABASE_URL", "nonsense"), ("DATABASE_URL", "mysql://app:s3cret@db/registry")):
        with pytest.raises(ConfigError) as refused:
            load_config({**base, name: value})
        assert str(refused.value).startswith(f"{name} must be a SQLite or PostgreSQL URL") and "s3cret" not in str(
            refused.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="SCAN_SPOOL_DIR '.*/file/spool' cannot be made: Not a directory"):
        load_config({**base, "SCAN_SPOOL_DIR": str(tmp_path / "file" / "spool")})
    made = load_config({**base, "SCAN_SPOOL_DIR": str(tmp_path / "new" / "spool")})["SCAN_SPOOL_DIR"]
    assert made.is_dir() and (made.stat().st_mode & 0o777) == 0o700


def test_the_hosts_codes_are_printed_under_are_base_urls_and_the_other_code_hosts(tmp_path):
    """A code on another host is noted OTHER_HOST: a registry that moved keeps its old host's codes
    as its own through OTHER_CODE_HOSTS, and a value that is no host stops the start, naming it."""
    base = {"INSTANCE_DIR": str(tmp_path), "BASE_URL": "https://Verify.Example.vn:443/codes"}
    assert load_config(base)["CODE_HOSTS"] == {"verify.example.vn"}
    assert load_config({**base, "OTHER_CODE_HOSTS": " old.example.vn, 10.0.0.5:8000 ,,OLD2.vn:80"})["CODE_HOSTS"] == {
        "verify.example.vn", "old.example.vn", "10.0.0.5:8000", "old2.vn"}
    for bad in ("https://old.example.vn", "old.example.vn/path", "old example.vn"):
        with pytest.raises(ConfigError, match="OTHER_CODE_HOSTS takes host names"):
            load_config({**base, "OTHER_CODE_HOSTS": bad})
