"""Private keys at rest: encrypted PKCS8 PEM, wrong passphrase refused, never stored in clear."""

from __future__ import annotations

import stat

import pytest

from keys.errors import KeyStoreError
from keys.storage import KeyStore, development_passphrase


def test_keys_are_encrypted_pkcs8_and_reload(tmp_path):
    store = KeyStore(tmp_path, b"correct horse battery")
    signer = store.generate()
    pem = (tmp_path / f"{signer.kid}.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE((tmp_path / f"{signer.kid}.pem").stat().st_mode) == 0o600
    reloaded = KeyStore(tmp_path, b"correct horse battery").load(signer.kid)
    assert reloaded.kid == signer.kid
    assert reloaded.public_raw == signer.public_raw


def test_wrong_passphrase_is_refused(tmp_path):
    signer = KeyStore(tmp_path, b"right").generate()
    with pytest.raises(KeyStoreError, match="wrong KEY_PASSPHRASE"):
        KeyStore(tmp_path, b"wrong").load(signer.kid)


def test_missing_key_and_bad_names(tmp_path):
    store = KeyStore(tmp_path, b"pw")
    with pytest.raises(KeyStoreError, match="no private key"):
        store.load("abcdefgh")
    with pytest.raises(KeyStoreError):
        store.load("../etc/passwd")


def test_empty_passphrase_refused(tmp_path):
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path, b"")


def test_development_passphrase_is_generated_once_and_warns(tmp_path, caplog):
    first = development_passphrase(tmp_path)
    second = development_passphrase(tmp_path)
    assert first == second and len(first) >= 32
    assert "DEVELOPMENT passphrase" in caplog.text
    assert stat.S_IMODE((tmp_path / "dev-key-passphrase").stat().st_mode) == 0o600
