"""``python -m app evidence-check``: an inspection's evidence file checked away from the service, with
the authority's public key (what a court or the inspected business is given)."""

from __future__ import annotations

import json

import pytest

from keys.encoding import b64url_encode
from keys.signing import Signer, sign
from registry.inspections import InspectionService
from registry.services import Actor, Role
from tests.conftest import batch_data

INSPECTOR = Actor(role=Role.INSPECTOR, name="user:minh")


@pytest.fixture
def evidence(session, registry, world, tmp_path):
    registry.register_batch(Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="p"), batch_data())
    service = InspectionService(session, authority=registry.authority)
    inspection = service.open(INSPECTOR, place="Chợ Bến Thành")
    service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine", "reasons": []})
    service.add_check(INSPECTOR, inspection.id, result={"verdict": "counterfeit", "reasons": []})
    service.close(INSPECTOR, inspection.id)
    document = service.evidence(INSPECTOR, inspection.id)
    session.commit()
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path, document, registry.trust_list()["authority"]["public_key"]


def test_a_genuine_file_verifies_with_the_authoritys_key(runner, evidence):
    path, document, key = evidence
    out = runner.invoke(args=["evidence-check", str(path), "--authority-key", key])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("valid: signed by the authority; inspection") and "2 checks (1 counterfeit, 1 genuine)" \
        in out.output
    attested = json.loads(runner.invoke(args=["evidence-check", str(path), "--json"]).output)  # the instance's key
    assert attested["valid"] is True and attested["inspector"] == "user:minh" and attested["checks"] == 2
    assert attested["checkpoint"]["size"] == document["checkpoint"]["size"]


@pytest.mark.parametrize("change", [
    lambda d: d["checks"][1].__setitem__("verdict", "genuine"),
    lambda d: d["inspection"].__setitem__("place", "nơi khác"),
    lambda d: d["checkpoint"].__setitem__("size", d["checkpoint"]["size"] + 1),
])
def test_an_altered_file_is_refused(runner, evidence, change):
    path, document, key = evidence
    change(document)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    out = runner.invoke(args=["evidence-check", str(path), "--authority-key", key])
    assert out.exit_code != 0 and "EVIDENCE_INVALID" in out.output and "Traceback" not in out.output


def test_a_file_signed_by_another_key_is_refused_whatever_key_it_names(runner, evidence):
    path, document, key = evidence
    forger = Signer.generate()
    forged = sign({k: v for k, v in document.items() if k != "sig"}, forger)
    path.write_text(json.dumps(forged), encoding="utf-8")
    refused = runner.invoke(args=["evidence-check", str(path), "--authority-key", key])
    assert refused.exit_code != 0 and "EVIDENCE_INVALID" in refused.output
    # the forger's own key is no authority's: checked with it, the file's checkpoint still fails
    own = runner.invoke(args=["evidence-check", str(path), "--authority-key", b64url_encode(forger.public_raw)])
    assert own.exit_code != 0 and "checkpoint" in own.output


@pytest.mark.parametrize("content, code", [("not json", "EVIDENCE_INVALID"), ('{"t": "checkpoint"}', "EVIDENCE_INVALID"),
                                           ("[1]", "EVIDENCE_INVALID")])
def test_what_is_not_an_evidence_file_is_named_so(runner, evidence, tmp_path, content, code):
    _, _, key = evidence
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    out = runner.invoke(args=["evidence-check", str(bad), "--authority-key", key])
    assert out.exit_code != 0 and code in out.output and "Traceback" not in out.output
    malformed = runner.invoke(args=["evidence-check", str(bad), "--authority-key", "abc"])
    assert malformed.exit_code != 0 and "BAD_AUTHORITY_KEY" in malformed.output


def test_a_machine_without_the_service_checks_a_file_with_the_key_alone(evidence, tmp_path):
    """Whoever is handed the file runs no registry: before any `init`, the key is all it takes."""
    from app import create_app
    from tests.conftest import TEST_PASSPHRASE

    path, _, key = evidence
    bare = create_app({"INSTANCE_DIR": tmp_path / "court", "KEY_PASSPHRASE": TEST_PASSPHRASE, "SECRET_KEY": "t" * 32,
                       "SCAN_SALT": "s", "DATABASE_URL": f"sqlite:///{tmp_path / 'court.db'}"})
    try:
        out = bare.test_cli_runner().invoke(args=["evidence-check", str(path), "--authority-key", key])
        assert out.exit_code == 0 and out.output.startswith("valid:"), out.output
        unkeyed = bare.test_cli_runner().invoke(args=["evidence-check", str(path)])
        assert unkeyed.exit_code != 0 and "AUTHORITY_KEY_REQUIRED" in unkeyed.output
        assert not (tmp_path / "court.db").exists()
    finally:
        bare.extensions["scan_writer"].close()
        bare.extensions["engine"].dispose()


def test_a_check_made_offline_before_the_close_and_received_after_it_is_named(runner, session, registry, world,
                                                                                  tmp_path):
    """An inspector's phone sends a check made in a basement after the inspection was closed on the
    web: the registry takes it (it was made during the inspection), so a file issued later holds one
    check more than the file issued at the close. The later file says which check came late."""
    from datetime import datetime, timedelta, timezone

    now = [datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)]
    service = InspectionService(session, authority=registry.authority, clock=lambda: now[0])
    inspection = service.open(INSPECTOR, place="Chợ Bến Thành")
    service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine", "reasons": []})
    now[0] += timedelta(minutes=30)
    service.close(INSPECTOR, inspection.id)
    at_close = service.evidence(INSPECTOR, inspection.id)
    now[0] += timedelta(hours=2)  # back above ground
    late = service.add_check(INSPECTOR, inspection.id, result={"verdict": "genuine"}, offline=True, code="x",
                             at=now[0] - timedelta(hours=2, minutes=10),
                             recheck=lambda code, at: {"verdict": "counterfeit", "reasons": []})
    later = service.evidence(INSPECTOR, inspection.id)
    session.commit()
    assert [c["id"] for c in later["checks"]] == [c["id"] for c in at_close["checks"]] + [late.id]
    assert later["checks"][-1]["received_at"] == "2026-12-07T11:30:00Z" > later["inspection"]["closed_at"]
    assert [c.get("received_after_close") for c in later["checks"]] == [None, True]
    for document, named in ((at_close, ""), (later, f"checks {late.id}")):
        path = tmp_path / "evidence.json"
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        out = runner.invoke(args=["evidence-check", str(path), "--json"])
        assert json.loads(out.output)["received_after_close"] == ([late.id] if named else [])
        text = runner.invoke(args=["evidence-check", str(path)]).output
        assert ("received after it" in text) == bool(named) and named in text
