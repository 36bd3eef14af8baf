"""The one ``sign()`` / ``verify()`` pair: Ed25519 over the JCS form of an object without ``sig``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open
from nacl.exceptions import CryptoError

from keys.encoding import Kid, MalformedEncoding, b64url_decode, b64url_encode, canonical_bytes, kid_for
from keys.errors import BadSignature

__all__ = [
    "Signer",
    "public_raw",
    "public_key_from_raw",
    "check_public_key",
    "sign",
    "verify",
    "verify_bytes",
    "sign_code",
    "verify_code",
    "code_payload",
    "code_bytes",
    "split_code_signature",
]


def public_raw(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise MalformedEncoding("an Ed25519 public key is 32 raw bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def check_public_key(raw: bytes) -> Ed25519PublicKey:
    """A key offered for certification: 32 bytes that encode a point of the curve's prime-order
    subgroup, not of small order (libsodium's check). A small-order key such as 32 zero bytes has
    no private key behind it, and signatures "by" it can be made without one."""
    key = public_key_from_raw(raw)
    if not crypto_core_ed25519_is_valid_point(raw):
        raise MalformedEncoding("not a valid Ed25519 public key (a small-order or off-curve point)")
    return key


@dataclass(frozen=True)
class Signer:
    """A private key with its key id; the only thing that produces signatures."""

    private_key: Ed25519PrivateKey
    kid: Kid

    @classmethod
    def from_private_key(cls, private_key: Ed25519PrivateKey) -> "Signer":
        return cls(private_key=private_key, kid=kid_for(public_raw(private_key)))

    @classmethod
    def generate(cls) -> "Signer":
        return cls.from_private_key(Ed25519PrivateKey.generate())

    @property
    def public_raw(self) -> bytes:
        return public_raw(self.private_key)

    def sign_bytes(self, data: bytes) -> str:
        return b64url_encode(self.private_key.sign(data))


def sign(obj: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """Return ``obj`` with ``"sig": {"kid", "value"}`` over its canonical bytes."""
    signed = {k: v for k, v in obj.items() if k != "sig"}
    signed["sig"] = {"kid": signer.kid, "value": signer.sign_bytes(canonical_bytes(signed))}
    return signed


@lru_cache(maxsize=65_536)
def _verified(public_raw_key: bytes, signature: bytes, data: bytes) -> bool:
    """Ed25519 is deterministic to check: remember recent successes (popular codes are re-scanned).

    Checked with libsodium (PyNaCl), which verifies about twice as fast as OpenSSL through
    pyca/cryptography on these machines (bench: "raw Ed25519 verify"); it is also the stricter
    of the two (it refuses non-canonical and small-order points). Keys, signing and storage stay
    with pyca/cryptography."""
    try:
        crypto_sign_open(signature + data, public_raw_key)
    except (CryptoError, ValueError, TypeError):  # BadSignatureError is a CryptoError
        return False
    return True


def verify_bytes(public_key: Ed25519PublicKey | bytes, signature_b64: str, data: bytes) -> None:
    """``public_key`` as a key object, or as its 32 raw bytes (what verification holds per key)."""
    try:
        signature = b64url_decode(signature_b64)
    except MalformedEncoding as exc:
        raise BadSignature(f"signature is not base64url: {exc}") from None
    if len(signature) != 64:
        raise BadSignature("an Ed25519 signature is 64 bytes")
    raw = public_key if isinstance(public_key, bytes) else public_raw(public_key)
    if not _verified(raw, signature, data):
        raise BadSignature("signature does not verify")


def verify(obj: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    """Raise ``BadSignature`` unless ``obj["sig"]`` is a valid signature by ``public_key``."""
    sig = obj.get("sig")
    if not isinstance(sig, dict) or not isinstance(sig.get("value"), str):
        raise BadSignature("object carries no signature")
    if sig.get("kid") != kid_for(public_raw(public_key)):
        raise BadSignature("signature names a different key")
    verify_bytes(public_key, sig["value"], canonical_bytes(obj))


def code_payload(*, gtin: str, lot: str, serial: str | None = None, exp: str | None = None) -> dict[str, str]:
    """The object a printed code's ``s`` parameter signs."""
    payload = {"t": "unit" if serial is not None else "batch", "gtin": gtin, "lot": lot}
    if serial is not None:
        payload["serial"] = serial
    if exp is not None:
        payload["exp"] = exp
    return payload


def code_bytes(*, gtin: str, lot: str, serial: str | None = None, exp: str | None = None) -> bytes:
    """``canonical_bytes(code_payload(...))``, written out directly when every value is printable
    ASCII without a quote or a backslash (GS1's character set 82 in practice): JCS then leaves the
    values as they are and the members in the order ``exp, gtin, lot, serial, t``. A fifth of
    the time of going through ``json.dumps``, paid by every verification and every issued serial;
    checked against the general path by a property test. Anything else takes the general path."""
    values = (gtin, lot) if serial is None else (gtin, lot, serial)
    if exp is not None:
        values += (exp,)
    if all(v.isascii() and v.isprintable() and '"' not in v and "\\" not in v for v in values):
        head = f'{{"exp":"{exp}",' if exp is not None else "{"
        tail = f'"serial":"{serial}","t":"unit"}}' if serial is not None else '"t":"batch"}'
        return f'{head}"gtin":"{gtin}","lot":"{lot}",{tail}'.encode("ascii")
    return canonical_bytes(code_payload(gtin=gtin, lot=lot, serial=serial, exp=exp))


def sign_code(signer: Signer, *, gtin: str, lot: str, serial: str | None = None, exp: str | None = None) -> str:
    """The ``s`` value: ``{kid}.{signature}``."""
    return f"{signer.kid}.{signer.sign_bytes(code_bytes(gtin=gtin, lot=lot, serial=serial, exp=exp))}"


def split_code_signature(s: str) -> tuple[Kid, str]:
    kid, dot, value = s.partition(".")
    if not dot or len(kid) != 8 or not value:
        raise BadSignature("the s parameter is not {kid}.{signature}")
    return Kid(kid), value


def verify_code(public_key: Ed25519PublicKey | bytes, s: str, *, gtin: str, lot: str, serial: str | None = None,
                exp: str | None = None) -> None:
    _, value = split_code_signature(s)
    verify_bytes(public_key, value, code_bytes(gtin=gtin, lot=lot, serial=serial, exp=exp))
