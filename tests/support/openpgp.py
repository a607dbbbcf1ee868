"""OpenPGP key pairs made with the machine's gpg, as a user makes the backups' key: the public half goes in the stack
(accessories.backup.public_key), the private half stays with the test, which decrypts with it."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class KeyPair:
    public: str  # gpg --armor --export
    private: str  # gpg --armor --export-secret-keys, protected by `passphrase`
    passphrase: str
    fingerprint: str
    home: Path  # the GNUPGHOME that holds it, for the test to decrypt with


KEY_PASSPHRASE = "the backup key's own passphrase"


def gpg(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("gpg") is None:
        pytest.fail("no gpg on this machine: run scripts/setup.d/packages.sh (installs Debian's gpg)")
    argv = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0", *args]
    done = subprocess.run(argv, input=stdin if stdin is not None else KEY_PASSPHRASE, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def key_pair(home: Path, *, encrypts: bool = True) -> KeyPair:
    home.mkdir(mode=0o700)
    gpg(home, "--quick-gen-key", "Acme backups <backups@acme.test>", "ed25519", "cert", "never")
    listing = gpg(home, "--with-colons", "--list-keys").stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    if encrypts:
        gpg(home, "--quick-add-key", fingerprint, "cv25519", "encr", "never")
    return KeyPair(
        public=gpg(home, "--armor", "--export", fingerprint).stdout,
        private=gpg(home, "--armor", "--export-secret-keys", fingerprint).stdout,
        passphrase=KEY_PASSPHRASE, fingerprint=fingerprint, home=home,
    )  # fmt: skip


def write_private(path: Path, text: str) -> Path:
    """`text` in a file only its owner reads, as a user keeps a key or a passphrase."""
    path.touch(mode=0o600)
    path.write_text(text)
    return path


def dump_of(stored: bytes, key: KeyPair) -> bytes:
    """The backup as the holder of the private key decrypts it, on the deploying machine."""
    passphrase = write_private(key.home / "passphrase", key.passphrase)
    argv = ["gpg", "--homedir", str(key.home), "--batch", "--pinentry-mode", "loopback", "--passphrase-file",
            str(passphrase), "--decrypt"]  # fmt: skip
    done = subprocess.run(argv, input=stored, capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout
