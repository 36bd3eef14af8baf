"""Wire encodings shared by every signer and verifier: base64url, canonical JSON, key ids."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from typing import Any, NewType

import rfc8785

__all__ = ["Kid", "b64url_encode", "b64url_decode", "canonical_bytes", "log_bytes", "kid_for", "MalformedEncoding", "rfc3339", "parse_rfc3339", "utcnow"]

Kid = NewType("Kid", str)


class MalformedEncoding(ValueError):
    """A value that is not in the encoding the contracts fix: base64url (no padding), RFC 3339,
    or JSON that RFC 8785 can put in canonical form (no integer beyond ±2^53, no NaN or infinity)."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise MalformedEncoding("expected base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise MalformedEncoding(f"not base64url: {exc}") from None


def canonical_bytes(obj: dict[str, Any]) -> bytes:
    """RFC 8785 (JCS) form of ``obj`` without its ``sig`` member: the bytes that get signed."""
    unsigned = {k: v for k, v in obj.items() if k != "sig"}
    if all(type(k) is str and k.isascii() and type(v) is str for k, v in unsigned.items()):
        return _flat_strings_jcs(unsigned)
    try:
        return rfc8785.dumps(unsigned)
    except rfc8785.CanonicalizationError as exc:  # integers beyond ±2^53, NaN, infinities
        raise MalformedEncoding(f"not signable JSON (RFC 8785): {exc}") from None


def _flat_strings_jcs(obj: dict[str, str]) -> bytes:
    """JCS of a flat object of strings with ASCII keys (every printed code's payload), by
    ``json.dumps``: for such objects its output is the JCS output byte for byte (keys sorted, the
    same escapes: ``\\"``, ``\\\\``, ``\\b \\t \\n \\f \\r``, other controls as lowercase
    ``\\u00xx``, everything else as UTF-8), checked against ``rfc8785`` by a property test. Three
    times faster than ``rfc8785.dumps``, which was a third of the time of issuing serials.
    A lone surrogate, which JCS refuses, goes to ``rfc8785`` for its error."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return rfc8785.dumps(obj)


def log_bytes(obj: dict[str, Any]) -> bytes:
    """JCS form of the whole object, signature included: the transparency log's leaf data."""
    return rfc8785.dumps(obj)


def kid_for(public_raw: bytes) -> Kid:
    """Key id: first 6 bytes of SHA-256 of the raw 32-byte public key, base64url (8 characters)."""
    if len(public_raw) != 32:
        raise MalformedEncoding("an Ed25519 public key is 32 raw bytes")
    return Kid(b64url_encode(hashlib.sha256(public_raw).digest()[:6]))


def utcnow() -> datetime:
    """Now, in UTC, to the second (wire times have no fractions)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def rfc3339(moment: datetime) -> str:
    """``2026-11-22T06:46:31Z``; a naive datetime is taken as UTC."""
    if moment.tzinfo is not timezone.utc:
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return moment.replace(tzinfo=None, microsecond=0).isoformat() + "Z"  # strftime took 5x as long


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 time into an aware UTC datetime; raise ``MalformedEncoding``."""
    if not isinstance(text, str) or "T" not in text.upper():
        raise MalformedEncoding(f"not an RFC 3339 time: {text!r}")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEncoding(f"not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        raise MalformedEncoding(f"RFC 3339 time needs a zone: {text!r}")
    return moment.astimezone(timezone.utc)
