"""One error family for key and signature checks (kept apart from parse errors)."""

from __future__ import annotations

__all__ = ["VerificationError", "BadSignature", "UnknownKey", "KeyRevoked", "CertificateInvalid", "KeyStoreError"]


class VerificationError(Exception):
    """A signed object did not verify. ``code`` is the stable machine reason."""

    code = "SIGNATURE_INVALID"


class BadSignature(VerificationError):
    code = "SIGNATURE_INVALID"


class UnknownKey(VerificationError):
    code = "KEY_UNKNOWN"


class KeyRevoked(VerificationError):
    code = "KEY_REVOKED"


class CertificateInvalid(VerificationError):
    code = "CERTIFICATE_INVALID"


class KeyStoreError(Exception):
    """A private key could not be stored or loaded (wrong passphrase, missing file, bad PEM)."""
