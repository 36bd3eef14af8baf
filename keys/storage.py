"""Private keys at rest: encrypted PKCS8 PEM files, one per key id, in a folder of the instance."""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import threading
from dataclasses import dataclass
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

__all__ = ["KeyStore", "Rewrapped", "development_passphrase", "sync_directory", "write_synced"]

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
        os.replace(write_synced(path.with_suffix(".tmp"), pem), path)
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

    def rewrap(self, new_passphrase: bytes) -> Rewrapped:
        """Encrypt every key of the folder again under ``new_passphrase`` (a passphrase that leaked,
        or one to move a development instance to). The keys themselves do not change.

        Every key is opened first, and nothing is written unless all of them open: under the current
        passphrase, or already under the new one (a run cut short, or a server still on the old
        passphrase that made a key meanwhile: run it again). Then each new file is written and
        synced beside its key, and only then put in its place, one rename each."""
        if new_passphrase == self._passphrase:
            raise KeyStoreError("the new passphrase is the current one")
        self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._dir / ".rewrap.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # let go when the file is closed
            except BlockingIOError:
                raise KeyStoreError("another rewrap of this key folder is running: nothing was changed") from None
            return self._rewrap(new_passphrase)
        finally:
            os.close(fd)

    def _rewrap(self, new_passphrase: bytes) -> Rewrapped:
        plan: list[tuple[Path, Ed25519PrivateKey]] = []
        already: list[str] = []
        unopened: list[str] = []
        for path in sorted(self._dir.glob("*.pem")):
            pem = path.read_bytes()
            try:
                plan.append((path, load_pem_private_key(pem, password=self._passphrase)))
                continue
            except (ValueError, TypeError):
                pass
            try:
                load_pem_private_key(pem, password=new_passphrase)
            except (ValueError, TypeError):
                unopened.append(path.stem)
            else:
                already.append(path.stem)
        if unopened:
            raise KeyStoreError(f"{len(unopened)} key(s) open under neither passphrase ({', '.join(unopened)}): "
                                "nothing was changed")
        staged: list[tuple[Path, Path]] = []
        try:
            for path, key in plan:
                pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(new_passphrase))
                staged.append((write_synced(path.with_suffix(".rewrap"), pem), path))
        except OSError as exc:  # a full disk: the keys are as they were, and no staging file stays
            for new, _ in staged:
                new.unlink(missing_ok=True)
            raise KeyStoreError(f"the keys could not be written again ({exc}): nothing was changed") from None
        for new, path in staged:
            os.replace(new, path)
        if staged:
            sync_directory(self._dir)
        self._passphrase = new_passphrase  # the cached signers are the same keys
        return Rewrapped([path.stem for _, path in staged], already)


@dataclass(frozen=True, slots=True)
class Rewrapped:
    """What ``KeyStore.rewrap`` did: the keys it encrypted again, those already under the new passphrase."""

    rewrapped: list[str]
    already: list[str]


def write_synced(path: Path, data: bytes) -> Path:
    """``data`` in a new file (mode 0600), on disk before this returns."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def sync_directory(directory: Path) -> None:
    """A rename or a new name in ``directory`` is on disk too (a crash right after leaves it so)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
