"""The transparency log: an append-only Merkle log (RFC 9162 hashing) with signed checkpoints."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from keys.encoding import b64url_decode, b64url_encode, log_bytes, rfc3339, utcnow
from keys.encoding import MalformedEncoding
from keys.errors import VerificationError
from keys.signing import Signer, public_key_from_raw, sign, verify
from registry.errors import Invalid, NotFound, RegistryError
from registry.merkle import MerkleTree, ProofError, leaf_hash, node_hash, root_from_leaves, verify_consistency
from registry.models import Checkpoint, LogEntry, LogNode, LogState

__all__ = ["TransparencyLog", "LogCheck", "LogMismatch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogCheck:
    """Outcome of recomputing the whole tree from the database."""

    size: int
    checkpoint_size: int
    root_matches: bool
    signature_valid: bool
    problems: tuple[str, ...]
    root: bytes = b""  # recomputed from every entry present

    @property
    def ok(self) -> bool:
        return not self.problems


class LogMismatch(RegistryError):
    """A checkpoint kept from earlier does not fit the log as it is now: ``CHECKPOINT_INVALID`` (not
    a checkpoint the authority signed), ``LOG_ROLLED_BACK`` (it is larger than the log),
    ``LOG_INCONSISTENT`` (the log does not extend it)."""

    code = "LOG_INCONSISTENT"


class TransparencyLog:
    def __init__(self, session: Session, *, authority: Signer | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._session = session
        self._authority = authority
        self._clock = clock

    # -- writing -------------------------------------------------------------------------------
    def lock(self) -> LogState:
        state = self._session.execute(  # read afresh: sessions keep what they loaded across commits
            select(LogState).where(LogState.id == 1).with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if state is None:
            state = LogState(id=1, size=0)
            self._session.add(state)
            self._session.flush()
        return state

    def append(self, obj: dict[str, Any], *, kind: str) -> int:
        """Append a signed object inside the caller's transaction; return its index."""
        state = self.lock()
        index = state.size
        data = log_bytes(obj)
        h = leaf_hash(data)
        self._session.add(LogEntry(index=index, kind=kind, data=data.decode("utf-8"), leaf_hash=h,
                                   created_at=self._clock()))
        nodes = [LogNode(level=0, index=index, hash=h)]
        level, i, current = 0, index, h
        while i & 1:  # this leaf completes a subtree at the next level
            sibling = self._node(level, i - 1)
            current = node_hash(sibling, current)
            level += 1
            i >>= 1
            nodes.append(LogNode(level=level, index=i, hash=current))
        self._session.add_all(nodes)
        state.size = index + 1
        self._session.flush()
        return index

    def sign_checkpoint(self) -> dict[str, Any]:
        """Sign and store a checkpoint for the current size (inside the caller's transaction)."""
        if self._authority is None:
            raise RuntimeError("signing a checkpoint needs the authority key")
        size = self.size()
        existing = self._session.get(Checkpoint, size)
        if existing is not None:
            return existing.signed
        body = {"t": "checkpoint", "size": size, "root": b64url_encode(self.root(size)),
                "timestamp": rfc3339(self._clock())}
        signed = sign(body, self._authority)
        self._session.add(Checkpoint(size=size, signed=signed, created_at=self._clock()))
        self._session.flush()
        return signed

    # -- reading -------------------------------------------------------------------------------
    def size(self) -> int:
        state = self._session.get(LogState, 1)
        return state.size if state else 0

    def _node(self, level: int, index: int) -> bytes:
        node = self._session.get(LogNode, (level, index))
        if node is None:
            raise NotFound(f"log node {level}/{index} missing")
        return node.hash

    def _tree(self) -> MerkleTree:
        cache: dict[tuple[int, int], bytes] = {}

        def complete(level: int, index: int) -> bytes:
            key = (level, index)
            if key not in cache:
                cache[key] = self._node(level, index)
            return cache[key]

        return MerkleTree(complete)

    def root(self, size: int) -> bytes:
        return self._tree().root(size)

    def latest_checkpoint(self) -> dict[str, Any] | None:
        cp = self._session.execute(select(Checkpoint).order_by(Checkpoint.size.desc()).limit(1)).scalar_one_or_none()
        return cp.signed if cp else None

    def checkpoint_at(self, size: int) -> dict[str, Any] | None:
        cp = self._session.get(Checkpoint, size)
        return cp.signed if cp else None

    def entry(self, index: int) -> dict[str, Any]:
        row = self._session.get(LogEntry, index)
        if row is None:
            raise NotFound(f"no log entry {index}")
        return json.loads(row.data)

    def _check_size(self, size: int, field: str = "size") -> None:
        """``size`` (the request's parameter ``field``) within the log as it is."""
        current = self.size()
        if not 0 < size <= current:
            raise Invalid(f"{field} must be between 1 and the log size {current}", code="BAD_LOG_SIZE", field=field)

    def inclusion(self, index: int, size: int) -> dict[str, Any]:
        self._check_size(size)
        if not 0 <= index < size:
            raise Invalid(f"index must be between 0 and size - 1 ({size - 1})", code="BAD_LOG_INDEX", field="index")
        path = self._tree().inclusion_path(index, size)
        return {"index": index, "size": size, "leaf": self.entry(index), "path": [b64url_encode(p) for p in path]}

    def consistency(self, first: int, second: int) -> dict[str, Any]:
        self._check_size(second, "second")
        if not 0 < first <= second:
            raise Invalid("first must be between 1 and second", code="BAD_LOG_SIZE", field="first")
        path = self._tree().consistency_path(first, second)
        return {"first": first, "second": second, "path": [b64url_encode(p) for p in path]}

    def verify_all(self, authority_public_raw: bytes) -> LogCheck:
        """Recompute every leaf and the root from the stored entries; check the latest checkpoint."""
        problems: list[str] = []
        leaves: list[bytes] = []
        for row in self._session.execute(select(LogEntry).order_by(LogEntry.index)).scalars():
            if row.index != len(leaves):
                problems.append(f"log entry {len(leaves)} is missing")
            h = leaf_hash(row.data.encode("utf-8"))
            if h != row.leaf_hash:
                problems.append(f"log entry {row.index}: stored leaf hash does not match its data")
            leaves.append(h)
        size = len(leaves)
        if size != self.size():
            problems.append(f"log state says {self.size()} entries, the table holds {size}")
        root = root_from_leaves(leaves)
        problems += self._node_problems(leaves)
        cp = self.latest_checkpoint()
        root_matches = signature_valid = False
        cp_size = 0
        if cp is None:
            if size:
                problems.append("no checkpoint has been signed")
        else:
            cp_size = int(cp["size"])
            try:
                verify(cp, public_key_from_raw(authority_public_raw))
                signature_valid = True
            except (VerificationError, MalformedEncoding) as exc:
                problems.append(f"checkpoint signature: {exc}")
            if cp_size > size:
                problems.append(f"checkpoint size {cp_size} exceeds the {size} entries present")
            else:
                root_matches = (root if cp_size == size else root_from_leaves(leaves[:cp_size])) == \
                    b64url_decode(cp["root"])
                if not root_matches:
                    problems.append(f"recomputed root of the first {cp_size} entries differs from the checkpoint")
        return LogCheck(size=size, checkpoint_size=cp_size, root_matches=root_matches,
                        signature_valid=signature_valid, problems=tuple(problems), root=root)

    def _node_problems(self, leaves: list[bytes], *, shown: int = 10) -> list[str]:
        """Roots and proofs are served from the stored hashes of complete subtrees (``log_nodes``):
        each is recomputed from the entries' leaf hashes, level by level, and compared."""
        problems: list[str] = []
        wrong = 0
        level, hashes, seen = 0, leaves, 0
        rows = self._session.execute(select(LogNode.level, LogNode.index, LogNode.hash)
                                     .order_by(LogNode.level, LogNode.index).execution_options(yield_per=1000))

        def end_level() -> None:
            nonlocal wrong
            if seen < len(hashes):
                wrong += 1
                problems.append(f"log_nodes: {len(hashes) - seen} subtree hash(es) of level {level} missing")

        for node_level, index, h in rows:
            while node_level > level:
                end_level()
                level, seen = level + 1, 0
                hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes) - 1, 2)]
            seen += index < len(hashes)
            if index >= len(hashes) or h != hashes[index]:
                wrong += 1
                if wrong <= shown:
                    problems.append(f"log node {level}/{index}: " + (
                        "covers entries that are not in the log" if index >= len(hashes)
                        else "stored hash does not match the entries"))
        end_level()
        while len(hashes) > 1:  # levels with no row at all
            level += 1
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes) - 1, 2)]
            if hashes:
                problems.append(f"log_nodes: {len(hashes)} subtree hash(es) of level {level} missing")
        if wrong > shown:
            problems.append(f"log_nodes: {wrong - shown} more subtree hash(es) wrong")
        return problems

    def check_kept_checkpoint(self, checkpoint: Any, authority_public_raw: bytes, check: LogCheck) -> None:
        """Check a checkpoint kept from earlier (``GET /log/checkpoint`` as an auditor or another agency
        saved it) against the tree ``check`` (``verify_all``) recomputed from the entries: the authority's
        signature, then the same root at its size, or the consistency proof this log serves from its size
        to the current one leading to both roots. Only someone who kept a later checkpoint can tell that
        history was cut back or rewritten. Raise ``LogMismatch`` unless the log extends it."""
        if not isinstance(checkpoint, dict) or checkpoint.get("t") != "checkpoint":
            raise LogMismatch('not a checkpoint: a signed {"t": "checkpoint", ...} object is expected',
                              code="CHECKPOINT_INVALID")
        try:
            verify(checkpoint, public_key_from_raw(authority_public_raw))
        except (VerificationError, MalformedEncoding) as exc:
            raise LogMismatch(f"the checkpoint's signature is not the authority's: {exc}",
                              code="CHECKPOINT_INVALID") from None
        kept, root = checkpoint.get("size"), checkpoint.get("root")
        if isinstance(kept, bool) or not isinstance(kept, int) or kept < 1 or not isinstance(root, str):
            raise LogMismatch("the checkpoint needs a positive size and a root", code="CHECKPOINT_INVALID")
        try:
            kept_root = b64url_decode(root)
        except MalformedEncoding as exc:
            raise LogMismatch(f"the checkpoint's root: {exc}", code="CHECKPOINT_INVALID") from None
        if kept > check.size:
            raise LogMismatch(f"the checkpoint is of size {kept} but the log holds {check.size} entries: "
                              f"entries {check.size} to {kept - 1} are gone", code="LOG_ROLLED_BACK")
        try:
            path = [] if kept == check.size else self._tree().consistency_path(kept, check.size)
            verify_consistency(first=kept, second=check.size, first_root=kept_root, second_root=check.root,
                               path=path)
        except (ProofError, NotFound) as exc:
            raise LogMismatch(f"the log of size {check.size} does not extend the checkpoint of size {kept}: "
                              f"{exc}", code="LOG_INCONSISTENT") from None


__all__ += ["ProofError"]
