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


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def test_rewrap_encrypts_every_key_again_under_the_new_passphrase(tmp_path):
    """A leaked KEY_PASSPHRASE, or a development instance moving to a real one: the same keys,
    each file now opened by the new passphrase alone, 0600, no staging file left."""
    store = KeyStore(tmp_path, b"old passphrase 123")
    signers = [store.generate() for _ in range(3)]
    done = store.rewrap(b"new passphrase 456")
    assert sorted(done.rewrapped) == sorted(s.kid for s in signers) and done.already == []
    assert sorted(_files(tmp_path)) == sorted(f"{s.kid}.pem" for s in signers)
    fresh = KeyStore(tmp_path, b"new passphrase 456")
    for signer in signers:
        assert fresh.load(signer.kid).public_raw == signer.public_raw
        assert stat.S_IMODE((tmp_path / f"{signer.kid}.pem").stat().st_mode) == 0o600
        with pytest.raises(KeyStoreError, match="wrong KEY_PASSPHRASE"):
            KeyStore(tmp_path, b"old passphrase 123").load(signer.kid)
    assert store.generate().kid in KeyStore(tmp_path, b"new passphrase 456").kids()  # it now saves under the new one


def test_rewrap_changes_nothing_when_a_key_opens_under_neither(tmp_path):
    store = KeyStore(tmp_path, b"old passphrase 123")
    store.generate()
    stranger = KeyStore(tmp_path, b"someone else's 789").generate()
    before = _files(tmp_path)
    with pytest.raises(KeyStoreError, match=f"1 key\\(s\\) open under neither passphrase \\({stranger.kid}\\): "
                                            "nothing was changed"):
        store.rewrap(b"new passphrase 456")
    assert _files(tmp_path) == before


def test_rewrap_run_again_takes_in_what_is_left_under_the_old_passphrase(tmp_path):
    """A run cut short, or a server still on the old passphrase that made a key after the run: the
    keys already under the new passphrase are counted, the others encrypted again."""
    old = KeyStore(tmp_path, b"old passphrase 123")
    first = old.generate()
    assert KeyStore(tmp_path, b"old passphrase 123").rewrap(b"new passphrase 456").rewrapped == [first.kid]
    late = old.generate()  # a server that still has the old passphrase
    again = KeyStore(tmp_path, b"old passphrase 123").rewrap(b"new passphrase 456")
    assert (again.rewrapped, again.already) == ([late.kid], [first.kid])
    assert KeyStore(tmp_path, b"new passphrase 456").load(late.kid).public_raw == late.public_raw


def test_rewrap_to_the_same_passphrase_is_refused(tmp_path):
    store = KeyStore(tmp_path, b"old passphrase 123")
    store.generate()
    with pytest.raises(KeyStoreError, match="the new passphrase is the current one"):
        store.rewrap(b"old passphrase 123")


def test_two_rewraps_of_one_folder_do_not_run_together(tmp_path):
    """Two operators at once (with two new passphrases, the keys would end up split between them):
    the second is refused while the first holds the folder's lock."""
    import fcntl
    import os

    store = KeyStore(tmp_path, b"old passphrase 123")
    store.generate()
    before = _files(tmp_path)
    fd = os.open(tmp_path / ".rewrap.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the first one, running
        with pytest.raises(KeyStoreError, match="another rewrap of this key folder is running"):
            store.rewrap(b"new passphrase 456")
    finally:
        os.close(fd)
    assert _files(tmp_path) == before
    assert len(store.rewrap(b"new passphrase 456").rewrapped) == 1


def test_a_rewrap_that_cannot_write_changes_nothing_and_leaves_no_staging_file(tmp_path):
    """The disk refuses the second key's new file (here a folder in its way): the first one's,
    already written, is removed, and every key stays under the old passphrase."""
    store = KeyStore(tmp_path, b"old passphrase 123")
    kids = sorted(store.generate().kid for _ in range(2))
    (tmp_path / f"{kids[1]}.rewrap").mkdir()
    before = _files(tmp_path)
    with pytest.raises(KeyStoreError, match="could not be written again .*: nothing was changed"):
        store.rewrap(b"new passphrase 456")
    assert _files(tmp_path) == before
    assert not (tmp_path / f"{kids[0]}.rewrap").exists()
    assert KeyStore(tmp_path, b"old passphrase 123").load(kids[0]).kid == kids[0]
