"""A verifier written only from DESIGN.md's wire formats: JCS, Ed25519, base64url, RFC 9162.

It imports nothing from the service, so it shows an outside party can check what the API serves.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, unquote, urlparse

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_from(b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(b64d(b64))


def kid_of(public_b64: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(b64d(public_b64)).digest()[:6]).rstrip(b"=").decode()


def check_signed(obj: dict, public_b64: str) -> None:
    """Raises cryptography's InvalidSignature when the object was not signed by that key."""
    assert obj["sig"]["kid"] == kid_of(public_b64)
    body = {k: v for k, v in obj.items() if k != "sig"}
    key_from(public_b64).verify(b64d(obj["sig"]["value"]), rfc8785.dumps(body))


def check_code_url(url: str, public_b64: str) -> dict:
    parts = urlparse(url)
    segs = parts.path.split("/")
    i = segs.index("01")
    fields = {"gtin": segs[i + 1], "lot": unquote(segs[i + 3])}
    payload = {"t": "batch", **fields}
    if len(segs) > i + 5 and segs[i + 4] == "21":
        payload = {"t": "unit", **fields, "serial": unquote(segs[i + 5])}
    query = parse_qs(parts.query)
    if "17" in query:
        payload["exp"] = query["17"][0]
    kid, _, sig = query["s"][0].partition(".")
    assert kid == kid_of(public_b64)
    key_from(public_b64).verify(b64d(sig), rfc8785.dumps(payload))
    return payload


def entry_sha256(logged: dict) -> str:
    """How a corrected origin record names the log entry it replaces (``supersedes.sha256``):
    SHA-256 of the entry's data, the JCS bytes of the whole logged object, in base64url."""
    return base64.urlsafe_b64encode(hashlib.sha256(rfc8785.dumps(logged)).digest()).rstrip(b"=").decode()


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def check_inclusion(leaf_obj: dict, index: int, size: int, path: list[str], root_b64: str) -> None:
    """RFC 9162 2.1.3.2 over the JCS bytes of the logged object."""
    fn, sn = index, size - 1
    r = _h(b"\x00" + rfc8785.dumps(leaf_obj))
    for p in map(b64d, path):
        assert sn != 0, "path too long"
        if fn & 1 or fn == sn:
            r = _h(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _h(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    assert sn == 0, "path too short"
    assert r == b64d(root_b64), "inclusion proof does not reach the checkpoint root"


def check_consistency(first: int, second: int, first_root_b64: str, second_root_b64: str, path: list[str]) -> None:
    """RFC 9162 2.1.4.2."""
    nodes = [b64d(p) for p in path]
    first_root, second_root = b64d(first_root_b64), b64d(second_root_b64)
    if first == second:
        assert not nodes and first_root == second_root
        return
    if first & (first - 1) == 0:
        nodes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        assert sn != 0
        if fn & 1 or fn == sn:
            fr, sr = _h(b"\x01" + c + fr), _h(b"\x01" + c + sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _h(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    assert sn == 0 and fr == first_root and sr == second_root, "consistency proof fails"
