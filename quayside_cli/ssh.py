"""The SSH connection deploys use, from the command's side: the stack's key in a 0600 temporary file, the host key
pinned in a temporary known_hosts (StrictHostKeyChecking=yes), both removed when the connection closes. Remote
commands are the components' own: `components.remote.script()` lines, quoted by shlex.join."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Final

from components import remote
from quayside_cli.errors import QuaysideError
from quayside_cli.stack import Ssh

# Exit status ssh itself uses for a connection failure (the remote command's status otherwise).
SSH_FAILED: Final = 255


def known_hosts_line(ssh: Ssh) -> str:
    """The known_hosts line pinning the server's key: `[host]:port type base64` (the bare host on port 22)."""
    name = ssh.host if ssh.port == 22 else f"[{ssh.host}]:{ssh.port}"
    kind, blob = ssh.host_key.split()[:2]
    return f"{name} {kind} {blob}\n"


def ssh_argv(ssh: Ssh, key_file: Path, known_hosts: Path, command: str, *, tty: bool) -> list[str]:
    return [
        "ssh", "-i", str(key_file), "-p", str(ssh.port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=20",
        "-t" if tty else "-T", f"{ssh.user}@{ssh.host}", command,
    ]  # fmt: skip


def script(service: str, name: str, args: Iterable[str], *, timeout_seconds: int, tty: bool = False) -> str:
    """components.remote.script(); on a terminal, `timeout --foreground`, so the command keeps the terminal
    (reads it, gets its Ctrl-C) instead of running in a background process group of timeout's."""
    command = remote.script(service, name, args, timeout_seconds=timeout_seconds)
    if not tty:
        return command
    argv = shlex.split(command)
    return shlex.join([argv[0], "--foreground", *argv[1:]])


class Connection:
    """`with Connection(stack.ssh, key) as server: server.capture(command)`; the temporary files go on exit."""

    def __init__(self, ssh: Ssh, private_key: str, stack: str) -> None:
        self.ssh = ssh
        self.stack = stack
        self._private_key = private_key
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Connection:
        self._scratch = tempfile.TemporaryDirectory(prefix="quayside-ssh-")
        directory = Path(self._scratch.name)
        os.chmod(directory, 0o700)
        self.key_file = directory / "key"
        descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key:
            key.write(self._private_key if self._private_key.endswith("\n") else self._private_key + "\n")
        self.known_hosts = directory / "known_hosts"
        self.known_hosts.write_text(known_hosts_line(self.ssh))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def argv(self, command: str, *, tty: bool = False) -> list[str]:
        return ssh_argv(self.ssh, self.key_file, self.known_hosts, command, tty=tty)

    def capture(
        self, command: str, *, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Runs the command; its output is returned. A failed connection (not a failed command) raises."""
        done = subprocess.run(
            self.argv(command), input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )  # fmt: skip
        self._check_connection(done.returncode, done.stderr)
        return done

    def attach(self, command: str, *, tty: bool, stdin: bool = False) -> int:
        """Runs the command with this terminal's (or pipe's) streams; returns its exit code."""
        done = subprocess.run(
            self.argv(command, tty=tty), stdin=None if stdin or tty else subprocess.DEVNULL, check=False
        )
        self._check_connection(done.returncode, "")
        return done.returncode

    def _check_connection(self, code: int, stderr: str) -> None:
        if code != SSH_FAILED:
            return
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else "see ssh's message above"
        where = f"{self.ssh.user}@{self.ssh.host}:{self.ssh.port}"
        hint = (
            "the server shows another host key than the stack's `ssh.host_key` output: check the server, then pulumi up"
            if "HOST IDENTIFICATION" in stderr or "Host key verification failed" in stderr
            else "check the server is up and the stack's SSH key is authorized there"
        )
        raise QuaysideError(f"stack {self.stack}: cannot reach {where} over SSH ({reason}): {hint}")
