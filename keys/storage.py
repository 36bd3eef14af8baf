"""Private keys at rest: encrypted PKCS8 PEM files, one per key id, in a folder of the instance."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)

from keys.encoding import Kid
from keys.errors import KeyStoreError
from keys.signing import Signer

__all__ = ["KeyStore", "development_passphrase"]

log = logging.getLogger(__name__)


def development_passphrase(instance_dir: Path) -> bytes:
    """The development passphrase: generated once under the instance folder, never for production."""
    path = Path(instance_dir) / "dev-key-passphrase"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    log.warning(
        "KEY_PASSPHRASE is not set: private keys are encrypted with a DEVELOPMENT passphrase kept in %s. "
        "Never run production like this.",
        path,
    )
    return path.read_text().strip().encode()


class KeyStore:
    """Stores Ed25519 private keys as ``{kid}.pem`` (PKCS8, encrypted) and caches loaded signers."""

    def __init__(self, directory: Path, passphrase: bytes) -> None:
        if not passphrase:
            raise KeyStoreError("a key passphrase is required")
        self._dir = Path(directory)
        self._passphrase = passphrase
        self._cache: dict[str, Signer] = {}
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise KeyStoreError("bad key name")
        return self._dir / f"{name}.pem"

    def has(self, kid: str) -> bool:
        return self._path(kid).exists()

    def generate(self, name: str | None = None) -> Signer:
        """Make a new key, write it encrypted, and return its signer. ``name`` defaults to its kid."""
        signer = Signer.generate()
        self.save(name or signer.kid, signer)
        return signer

    def save(self, name: str, signer: Signer) -> None:
        """Write ``signer``'s private key encrypted under ``name`` (atomically, mode 0600)."""
        pem = signer.private_key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(self._passphrase)
        )
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        with self._lock:
            self._cache[name] = signer

    def load(self, name: str) -> Signer:
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None:
            return cached
        path = self._path(name)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(f"no private key {name!r} in the key store") from None
        try:
            key = load_pem_private_key(pem, password=self._passphrase)
        except (ValueError, TypeError):
            raise KeyStoreError(f"private key {name!r} cannot be decrypted: wrong KEY_PASSPHRASE?") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"private key {name!r} is not Ed25519")
        signer = Signer.from_private_key(key)
        with self._lock:
            self._cache[name] = signer
        return signer

    def load_or_create(self, name: str) -> Signer:
        if self._path(name).exists():
            return self.load(name)
        return self.generate(name)

    def kids(self) -> list[Kid]:
        return [Kid(p.stem) for p in sorted(self._dir.glob("*.pem"))]
