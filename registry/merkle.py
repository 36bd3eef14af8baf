"""Merkle tree hashing and proofs as in RFC 9162 (Certificate Transparency 2.0), section 2.1.

Pure functions: the tree is reached through ``subtree_hash(start, end)``, so the registry can serve
hashes from stored complete subtrees and tests can build a reference tree in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = [
    "ProofError",
    "leaf_hash",
    "node_hash",
    "largest_power_of_two_below",
    "root_from_leaves",
    "MerkleTree",
    "verify_inclusion",
    "verify_consistency",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(Exception):
    """A proof does not verify, or its parameters are out of range."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, straight from the RFC's recursive definition."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = largest_power_of_two_below(n)
    return node_hash(root_from_leaves(leaf_hashes[:k]), root_from_leaves(leaf_hashes[k:]))


class MerkleTree:
    """Proof construction over a tree whose complete subtrees are fetched by ``complete(level, index)``.

    ``complete(level, index)`` returns the hash of leaves ``[index * 2**level, (index + 1) * 2**level)``.
    """

    def __init__(self, complete: Callable[[int, int], bytes]) -> None:
        self._complete = complete

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]); ``start`` is aligned to the size of the left part, as in every proof."""
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self._complete(n.bit_length() - 1, start // n)
        k = largest_power_of_two_below(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, size: int) -> bytes:
        return self.subtree(0, size)

    def inclusion_path(self, index: int, size: int) -> list[bytes]:
        if not 0 <= index < size:
            raise ProofError(f"index {index} is outside a tree of size {size}")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = largest_power_of_two_below(end - start)
            if index < start + k:
                path.append(self.subtree(start + k, end))
                end = start + k
            else:
                path.append(self.subtree(start, start + k))
                start = start + k
        path.reverse()
        return path

    def consistency_path(self, first: int, second: int) -> list[bytes]:
        if not 0 < first <= second:
            raise ProofError(f"no consistency proof from size {first} to size {second}")
        return self._subproof(first, 0, second, True)

    def _subproof(self, m: int, start: int, end: int, complete_first: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete_first else [self.subtree(start, end)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return self._subproof(m, start, start + k, complete_first) + [self.subtree(start + k, end)]
        return self._subproof(m - k, start + k, end, False) + [self.subtree(start, start + k)]


def verify_inclusion(*, leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2; ``leaf`` is the leaf hash. Raise ``ProofError`` unless the proof holds."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("inclusion path is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion path is too short")
    if r != root:
        raise ProofError("inclusion path does not lead to the root")


def verify_consistency(*, first: int, second: int, first_root: bytes, second_root: bytes,
                       path: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2. Raise ``ProofError`` unless the tree of size ``second`` extends ``first``."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == second:
        if path:
            raise ProofError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("equal sizes with different roots")
        return
    if not path:
        raise ProofError("consistency path is empty")
    nodes = list(path)
    if first & (first - 1) == 0:
        nodes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise ProofError("consistency path is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency path is too short")
    if fr != first_root:
        raise ProofError("consistency path does not lead to the first root")
    if sr != second_root:
        raise ProofError("consistency path does not lead to the second root")
