"""A checkpoint kept from earlier (an auditor's) against the log as it is now
(``TransparencyLog.check_kept_checkpoint``): a log cut back, or cut back and grown again, is caught
even when everything in the database agrees with itself."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update

from keys.encoding import b64url_encode
from keys.signing import Signer, sign
from registry.log import LogMismatch
from registry.models import Checkpoint, LogEntry, LogNode, LogState
from registry.services import SYSTEM
from tests.conftest import append_only_lifted, batch_data


def cut_back(session, size: int) -> None:
    """What someone with write access to the database does to take the last entries away: the
    entries, the subtree hashes that cover them, the checkpoints past them, and the log's size. An
    owner of the schema can: the triggers that keep the log append-only stop anyone else."""
    with append_only_lifted(session):  # and puts the guards back, so that nothing else shows it
        session.execute(delete(LogEntry).where(LogEntry.index >= size))
        for level in range(32):  # a node covers leaves [index * 2**level, (index + 1) * 2**level)
            session.execute(delete(LogNode).where(LogNode.level == level, LogNode.index >= size >> level))
        session.execute(delete(Checkpoint).where(Checkpoint.size > size))
    session.execute(update(LogState).where(LogState.id == 1).values(size=size))
    session.commit()


@pytest.fixture
def logged(registry, session, world):
    """A log of a few entries ending with a key revocation; its latest checkpoint as an auditor kept it."""
    registry.register_batch(SYSTEM, batch_data(lot="LOT-1"), producer_id=world.producer_id)
    registry.register_batch(SYSTEM, batch_data(lot="LOT-2"), producer_id=world.producer_id)
    registry.log().sign_checkpoint()
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    session.commit()
    return registry.log().latest_checkpoint()


def check(registry, kept):
    tlog = registry.log()
    result = tlog.verify_all(registry.authority.public_raw)
    assert result.ok, result.problems
    tlog.check_kept_checkpoint(kept, registry.authority.public_raw, result)
    return result


def test_the_log_extends_a_checkpoint_of_its_own_size_or_an_earlier_one(registry, session, world, logged):
    check(registry, logged)
    earlier = registry.log().checkpoint_at(2)  # the certification and the first registration
    check(registry, earlier)
    registry.recall(SYSTEM, batch_data()["gtin"], "LOT-2", reason="mould")
    session.commit()
    for size in range(1, int(logged["size"]) + 1):  # a checkpoint of every earlier size
        cp = registry.log().checkpoint_at(size) or sign(
            {"t": "checkpoint", "size": size, "root": b64url_encode(registry.log().root(size)),
             "timestamp": "2026-01-01T00:00:00Z"}, registry.authority)
        assert check(registry, cp).size == int(logged["size"]) + 1


def test_a_log_cut_back_is_rolled_back_against_the_kept_checkpoint(registry, session, logged):
    size = int(logged["size"])
    cut_back(session, size - 1)  # the revocation is gone
    result = registry.log().verify_all(registry.authority.public_raw)
    assert result.ok and result.size == size - 1  # nothing inside the database shows it
    with pytest.raises(LogMismatch) as exc:
        registry.log().check_kept_checkpoint(logged, registry.authority.public_raw, result)
    assert exc.value.code == "LOG_ROLLED_BACK"
    assert f"size {size}" in exc.value.message and f"holds {size - 1} entries" in exc.value.message


@pytest.mark.parametrize("grown", [0, 1])
def test_a_log_cut_back_and_grown_again_is_inconsistent_with_the_kept_checkpoint(registry, session, world,
                                                                                 logged, grown):
    size = int(logged["size"])
    cut_back(session, size - 1)
    for _ in range(1 + grown):  # other entries where the revocation was, and maybe past it
        registry.certify_key(SYSTEM, world.producer_id)
    session.commit()
    with pytest.raises(LogMismatch) as exc:
        check(registry, logged)
    assert exc.value.code == "LOG_INCONSISTENT"
    assert f"log of size {size + grown} does not extend the checkpoint of size {size}" in exc.value.message


def test_a_checkpoint_the_authority_did_not_sign_is_refused(registry, session, logged):
    forged = sign({k: v for k, v in logged.items() if k != "sig"}, Signer.generate())
    altered = {**logged, "size": int(logged["size"]) - 1}
    too_large = {**logged, "size": 2**60}  # no JCS form: past the numbers JSON carries exactly
    for bad in (forged, altered, too_large, {"t": "trust-list"}, []):
        with pytest.raises(LogMismatch) as exc:
            check(registry, bad)
        assert exc.value.code == "CHECKPOINT_INVALID"


def test_subtree_hashes_that_drift_from_the_entries_fail_the_log_check(registry, session, logged):
    """Proofs and roots are served from ``log_nodes``: a node changed or gone is a problem even though
    every entry and the latest checkpoint still agree."""
    assert registry.log().verify_all(registry.authority.public_raw).ok
    node = session.get(LogNode, (1, 0))
    with append_only_lifted(session):
        node.hash = bytes(32)
        session.flush()
    session.commit()
    check = registry.log().verify_all(registry.authority.public_raw)
    assert check.problems == ("log node 1/0: stored hash does not match the entries",)
    with append_only_lifted(session):
        session.delete(node)
        session.flush()
    session.commit()
    check = registry.log().verify_all(registry.authority.public_raw)
    assert check.problems == ("log_nodes: 1 subtree hash(es) of level 1 missing",)
    session.add(LogNode(level=0, index=check.size, hash=bytes(32)))
    session.commit()
    assert f"log node 0/{check.size}: covers entries that are not in the log" in \
        registry.log().verify_all(registry.authority.public_raw).problems
