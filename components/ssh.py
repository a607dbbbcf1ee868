"""How the deploying machine reaches a server over SSH, for every caller that runs `ssh` itself (the `quayside`
command, the image sender, the tests): ssh's argv, the known_hosts line pinning the server's host key, and the
private key in a 0600 file of a 0700 temporary directory, removed afterwards. The key is passed by path, never on a
command line; a SIGTERM or SIGHUP while it exists raises Terminated, so that it goes then too (a SIGKILL leaves it, in
its 0700 directory). The standard library only: the image sender runs under any python3, the command without Pulumi.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

# How long ssh waits for a server to answer before it gives up (ConnectTimeout), and its exit status then, or on any
# other failure of its own (the remote command's status otherwise).
CONNECT_TIMEOUT_SECONDS: Final = 20
EXIT_FAILED: Final = 255
# ssh's last line when the server shows another host key than the one pinned (StrictHostKeyChecking=yes), and its
# words for the key the server sent.
HOST_KEY_REFUSED: Final = "Host key verification failed."
KEY_SENT: Final = re.compile(r"fingerprint for the (\S+) key sent by the remote host is\s+(SHA256:[A-Za-z0-9+/]+)")


@dataclass(frozen=True)
class Endpoint:
    """Where a server is and the host key it must show (the stack's `ssh` output); none of it is secret."""

    host: str
    port: int
    user: str
    host_key: str  # `type base64`, or ssh-keyscan's `host type base64`

    @property
    def known_hosts_line(self) -> str:
        """`[host]:port type base64` (the bare host on port 22), as ssh looks the server up."""
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {' '.join(self.key_type_and_blob)}\n"

    @property
    def key_type_and_blob(self) -> tuple[str, str]:
        fields = self.host_key.split()
        start = 0 if fields[0].startswith(("ssh-", "ecdsa-")) else 1  # ssh-keyscan puts the host name first
        return fields[start], fields[start + 1]

    @property
    def fingerprint(self) -> str:
        """The pinned key as ssh names one: `SHA256:` and the unpadded base64 of its blob's SHA-256."""
        blob = self.key_type_and_blob[1]
        # Padded here, so that a key cut short in a config names some fingerprint rather than end in a traceback.
        digest = hashlib.sha256(base64.b64decode(blob + "=" * (-len(blob) % 4))).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def refused_host_key(stderr: str) -> str | None:
    """When ssh refused the server for its host key: the key the server sent as ssh named it (`ED25519 SHA256:...`,
    or `a key of another type` when it named none). None when ssh refused nothing: any other failure may pass (a
    server still booting), this one no retry changes."""
    if HOST_KEY_REFUSED not in stderr:
        return None
    sent = KEY_SENT.search(stderr)
    return f"{sent[1]} {sent[2]}" if sent else "a key of another type"


@dataclass(frozen=True)
class KeyFiles:
    """The temporary directory (0700), the private key in it (0600) and the known_hosts file pinning the host key."""

    directory: Path
    key: Path
    known_hosts: Path


# What no quayside connection takes from the user's ssh config (~/.ssh/config, /etc/ssh/ssh_config), which stays
# read for the rest (ProxyJump to a bastion, algorithms): ssh keeps the first value it obtains, and the command line
# comes first. No agent or X11 forwarding and no port forwarding the config adds (the server could use them), no
# agent or other identity (this key only), no local command run on connecting.
HARDENING: Final = (
    "-o", "ForwardAgent=no", "-o", "ForwardX11=no", "-o", "ForwardX11Trusted=no", "-o", "IdentitiesOnly=yes",
    "-o", "IdentityAgent=none", "-o", "PermitLocalCommand=no",
)  # fmt: skip


def argv(
    host: str, port: int, user: str, key: Path, known_hosts: Path, command: str, *,
    tty: bool = False, options: Sequence[str] = (), forwards: Sequence[str] = (),
    connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
) -> list[str]:  # fmt: skip
    """`ssh` running `command` as user@host with that key only, the host key checked strictly against `known_hosts`,
    nothing forwarded (HARDENING); `options` (more `-o` settings, `-N`) go before the destination. Without `forwards` (a
    tunnel's `-R ...`, which the tests' tunnels use), ClearAllForwardings drops every port forwarding the config adds;
    it would drop the tunnel's too, so a tunnel keeps the config's. A connection shares no multiplexed master of the
    user's config (ControlPath=none, unless `options` name a ControlPath first)."""
    return [
        "ssh", "-i", str(key), "-p", str(port), *HARDENING,
        *(forwards or ("-o", "ClearAllForwardings=yes")),
        "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={connect_timeout}",
        *options, "-o", "ControlPath=none", "-t" if tty else "-T", f"{user}@{host}", command,
    ]  # fmt: skip


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP while key files exist, raised where the program is, as Ctrl-C raises KeyboardInterrupt: the
    `finally` blocks and `with` exits run, and the key files go. A KeyboardInterrupt, so that a `with Popen` block
    left by it does not wait for its child to end. `status` is the exit status a program ends with for it."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"{signal.Signals(signal_number).name}: the temporary key files are removed")
        self.status = 128 + signal_number


# The signals whose default ends the process at once, files left behind; SIGINT raises KeyboardInterrupt already.
TERMINATING: Final = (signal.SIGTERM, signal.SIGHUP)


def _raise_terminated(signal_number: int, frame: FrameType | None) -> None:
    raise Terminated(signal_number)


@contextlib.contextmanager
def terminations_raise() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise Terminated. Only where they would end the process at once: a handler the
    program set, or a signal ignored (nohup), stays; and only the main thread can set a handler (elsewhere, as
    inside an outer block, the handler of the main thread's block is in place already, or none can be)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = [number for number in TERMINATING if signal.getsignal(number) == signal.SIG_DFL]
    for number in taken:
        signal.signal(number, _raise_terminated)
    try:
        yield
    finally:
        for number in taken:
            signal.signal(number, signal.SIG_DFL)


@contextlib.contextmanager
def key_files(endpoint: Endpoint, private_key: str, *, prefix: str) -> Iterator[KeyFiles]:
    """The private key and the endpoint's known_hosts line in a fresh 0700 directory, removed with all it holds when
    the block ends, on SIGTERM and SIGHUP too (terminations_raise), and on Ctrl-C (the caller may keep more scratch
    files there)."""
    with terminations_raise(), tempfile.TemporaryDirectory(prefix=prefix) as name:
        directory = Path(name)
        os.chmod(directory, 0o700)
        key = directory / "key"
        descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(private_key if private_key.endswith("\n") else private_key + "\n")
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(endpoint.known_hosts_line)
        yield KeyFiles(directory, key, known_hosts)
