"""The backups' OpenPGP key pair, as a user keeps one: the public half goes in the stack
(accessories.backup.public_key), the private half stays with the test, which decrypts with it.

The keys in openpgp-keys/ were made once with gpg (see its README) and are kept rather than made by each run: Debian's
gpg 2.2.40 now and then fails to make an ed25519 key ("signing failed: Corrupted protection"), which made a test fail
for a reason that is not quayside's."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest


@dataclass(frozen=True)
class KeyPair:
    public: str  # gpg --armor --export
    private: str  # gpg --armor --export-secret-keys, protected by `passphrase`
    passphrase: str
    fingerprint: str
    home: Path  # the GNUPGHOME that holds it, for the test to decrypt with


KEPT: Final = Path(__file__).with_name("openpgp-keys")
KEY_PASSPHRASE: Final = "the backup key's own passphrase"


def gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("gpg") is None:
        pytest.fail("no gpg on this machine: run scripts/setup.d/packages.sh (installs Debian's gpg)")
    argv = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0", *args]
    done = subprocess.run(argv, input=KEY_PASSPHRASE, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def key_pair(home: Path) -> KeyPair:
    """The kept key pair (an ed25519 key with a cv25519 encryption subkey), in a keyring of its own at `home`."""
    home.mkdir(mode=0o700)
    gpg(home, "--import", str(KEPT / "backups.key.asc"))
    listing = gpg(home, "--with-colons", "--list-secret-keys").stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    return KeyPair(
        public=(KEPT / "backups.pub.asc").read_text(), private=(KEPT / "backups.key.asc").read_text(),
        passphrase=KEY_PASSPHRASE, fingerprint=fingerprint, home=home,
    )  # fmt: skip


def public_key_that_cannot_encrypt() -> str:
    """An ed25519 key that only certifies: it has no encryption subkey."""
    return (KEPT / "signing-only.pub.asc").read_text()


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
