"""The SSH connection deploys use, from the command's side: components.ssh's key files (the stack's key in a 0600
temporary file, the host key pinned in a temporary known_hosts, StrictHostKeyChecking=yes), removed when the
connection closes. Remote commands are the components' own: `components.remote.script()` lines, quoted by shlex.join."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
from collections.abc import Iterable
from types import TracebackType

from components import remote, ssh
from quayside_cli.errors import QuaysideError


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

    def __init__(self, endpoint: ssh.Endpoint, private_key: str, stack: str) -> None:
        self.endpoint = endpoint
        self.stack = stack
        self._private_key = private_key
        self._open = contextlib.ExitStack()

    def __enter__(self) -> Connection:
        self.files = self._open.enter_context(ssh.key_files(self.endpoint, self._private_key, prefix="quayside-ssh-"))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._open.close()

    def argv(self, command: str, *, tty: bool = False) -> list[str]:
        where = self.endpoint
        return ssh.argv(where.host, where.port, where.user, self.files.key, self.files.known_hosts, command, tty=tty)

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
        if code != ssh.EXIT_FAILED:
            return
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else "see ssh's message above"
        where = f"{self.endpoint.user}@{self.endpoint.host}:{self.endpoint.port}"
        hint = (
            "the server shows another host key than the stack's `ssh.host_key` output: check the server, then pulumi up"
            if "HOST IDENTIFICATION" in stderr or "Host key verification failed" in stderr
            else "check the server is up and the stack's SSH key is authorized there"
        )
        raise QuaysideError(f"stack {self.stack}: cannot reach {where} over SSH ({reason}): {hint}")
