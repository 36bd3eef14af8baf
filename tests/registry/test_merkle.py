"""RFC 9162 proofs checked against a reference tree built here from the RFC's definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.merkle import MerkleTree, ProofError, verify_consistency, verify_inclusion


# -- reference implementation: RFC 9162 section 2.1, written from the text, lists only ---------
def ref_leaf(d: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + d).digest()


def ref_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return ref_leaf(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return ref_path(m, leaves[:k]) + [ref_mth(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, leaves[:k], b) + [ref_mth(leaves[k:])]
    return ref_subproof(m - k, leaves[k:], False) + [ref_mth(leaves[:k])]


def tree_over(data: list[bytes]) -> MerkleTree:
    def complete(level: int, index: int) -> bytes:
        return ref_mth(data[index << level:(index + 1) << level])

    return MerkleTree(complete)


DATA = [f"entry {i}".encode() for i in range(70)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 31, 33, 64, 70])
def test_roots_and_inclusion_paths_match_the_reference(size):
    data = DATA[:size]
    tree = tree_over(data)
    root = tree.root(size)
    assert root == ref_mth(data)
    for m in range(size):
        path = tree.inclusion_path(m, size)
        assert path == ref_path(m, data)
        verify_inclusion(leaf=ref_leaf(data[m]), index=m, size=size, path=path, root=root)


@pytest.mark.parametrize("second", [1, 2, 3, 6, 7, 8, 11, 16, 21, 70])
def test_consistency_paths_match_the_reference(second):
    data = DATA[:second]
    tree = tree_over(data)
    for first in range(1, second + 1):
        path = tree.consistency_path(first, second)
        assert path == ref_subproof(first, data, True)
        verify_consistency(first=first, second=second, first_root=ref_mth(data[:first]),
                           second_root=ref_mth(data), path=path)


@given(st.integers(1, 200), st.data())
def test_inclusion_for_random_sizes(size, draw):
    data = [i.to_bytes(4, "big") for i in range(size)]
    tree = tree_over(data)
    m = draw.draw(st.integers(0, size - 1))
    verify_inclusion(leaf=ref_leaf(data[m]), index=m, size=size, path=tree.inclusion_path(m, size),
                     root=ref_mth(data))


# -- one test per way a proof can fail -------------------------------------------------------------
SIZE = 13
TREE = tree_over(DATA[:SIZE])
ROOT = ref_mth(DATA[:SIZE])


def test_inclusion_wrong_leaf_fails():
    with pytest.raises(ProofError):
        verify_inclusion(leaf=ref_leaf(b"forged"), index=5, size=SIZE, path=TREE.inclusion_path(5, SIZE), root=ROOT)


def test_inclusion_wrong_index_fails():
    with pytest.raises(ProofError):
        verify_inclusion(leaf=ref_leaf(DATA[5]), index=6, size=SIZE, path=TREE.inclusion_path(5, SIZE), root=ROOT)


def test_inclusion_wrong_root_fails():
    with pytest.raises(ProofError):
        verify_inclusion(leaf=ref_leaf(DATA[5]), index=5, size=SIZE, path=TREE.inclusion_path(5, SIZE),
                         root=ref_mth(DATA[:SIZE - 1]))


def test_inclusion_truncated_path_fails():
    with pytest.raises(ProofError, match="too short"):
        verify_inclusion(leaf=ref_leaf(DATA[5]), index=5, size=SIZE, path=TREE.inclusion_path(5, SIZE)[:-1],
                         root=ROOT)


def test_inclusion_extended_path_fails():
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(leaf=ref_leaf(DATA[5]), index=5, size=SIZE,
                         path=TREE.inclusion_path(5, SIZE) + [ROOT], root=ROOT)


def test_inclusion_tampered_path_element_fails():
    path = TREE.inclusion_path(5, SIZE)
    path[1] = bytes(32)
    with pytest.raises(ProofError):
        verify_inclusion(leaf=ref_leaf(DATA[5]), index=5, size=SIZE, path=path, root=ROOT)


def test_inclusion_index_out_of_range_fails():
    with pytest.raises(ProofError):
        verify_inclusion(leaf=ref_leaf(DATA[5]), index=SIZE, size=SIZE, path=[], root=ROOT)


def test_consistency_wrong_first_root_fails():
    path = TREE.consistency_path(6, SIZE)
    with pytest.raises(ProofError, match="first root"):
        verify_consistency(first=6, second=SIZE, first_root=ref_mth(DATA[:5]), second_root=ROOT, path=path)


def test_consistency_rewritten_history_fails():
    rewritten = DATA[:3] + [b"rewritten"] + DATA[4:SIZE]
    path = tree_over(rewritten).consistency_path(6, SIZE)
    with pytest.raises(ProofError):
        verify_consistency(first=6, second=SIZE, first_root=ref_mth(DATA[:6]), second_root=ref_mth(rewritten),
                           path=path)


def test_consistency_truncated_path_fails():
    with pytest.raises(ProofError):
        verify_consistency(first=6, second=SIZE, first_root=ref_mth(DATA[:6]), second_root=ROOT,
                           path=TREE.consistency_path(6, SIZE)[:-1])


def test_consistency_empty_path_fails():
    with pytest.raises(ProofError, match="empty"):
        verify_consistency(first=6, second=SIZE, first_root=ref_mth(DATA[:6]), second_root=ROOT, path=[])


def test_consistency_bad_sizes_fail():
    with pytest.raises(ProofError):
        verify_consistency(first=SIZE + 1, second=SIZE, first_root=ROOT, second_root=ROOT, path=[ROOT])
    with pytest.raises(ProofError):
        verify_consistency(first=0, second=SIZE, first_root=ROOT, second_root=ROOT, path=[ROOT])


def test_consistency_equal_sizes():
    verify_consistency(first=SIZE, second=SIZE, first_root=ROOT, second_root=ROOT, path=[])
    with pytest.raises(ProofError):
        verify_consistency(first=SIZE, second=SIZE, first_root=ROOT, second_root=bytes(32), path=[])
