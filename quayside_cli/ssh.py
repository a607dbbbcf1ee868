"""The SSH connection deploys use, from the command's side: components.ssh's key files (the stack's key in a 0600
temporary file, the host key pinned in a temporary known_hosts, StrictHostKeyChecking=yes), removed when the
connection closes. Remote commands are the components' own: `components.remote.script()` lines, quoted by shlex.join."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterable
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
    """`with Connection(stack.ssh, key) as server: server.capture(command)`; the temporary files go on exit. `name`:
    the server's name in a stack of several, which its errors give beside its address."""

    def __init__(self, endpoint: ssh.Endpoint, private_key: str, stack: str, name: str | None = None) -> None:
        self.endpoint = endpoint
        self.stack = stack
        self.name = name
        self._private_key = private_key
        self._open = contextlib.ExitStack()
        self._streaming: set[subprocess.Popen[str]] = set()  # `stream`'s ssh processes still running

    def __enter__(self) -> Connection:
        self.files = self._open.enter_context(ssh.key_files(self.endpoint, self._private_key, prefix="quayside-ssh-"))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        # A stream still running (the block left on Ctrl-C) ends with its ssh; its server's terminal goes with it.
        for process in list(self._streaming):
            process.terminate()
        self._open.close()

    def argv(self, command: str, *, tty: bool = False, force_tty: bool = False) -> list[str]:
        """ssh's argv; `force_tty`: a terminal on the server although ssh's own streams are pipes (a second -t)."""
        where = self.endpoint
        return ssh.argv(
            where.host, where.port, where.user, self.files.key, self.files.known_hosts, command,
            tty=tty or force_tty, options=["-t"] if force_tty else [],
        )  # fmt: skip

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

    def stream(
        self, command: str, each_line: Callable[[str], None], *, force_tty: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Runs the command, handing each line of its stdout to `each_line` as it comes (without its line end); its
        exit code and stderr are returned. With `force_tty` the command gets a terminal on the server, which goes
        (and takes the command with it) when this ssh ends. A failed connection raises."""
        with (
            tempfile.TemporaryFile("w+") as errors,
            subprocess.Popen(
                self.argv(command, force_tty=force_tty), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=errors, text=True,
            ) as process,
        ):  # fmt: skip
            assert process.stdout is not None
            self._streaming.add(process)
            try:
                for line in process.stdout:
                    each_line(line.rstrip("\r\n"))
                code = process.wait()
            finally:
                self._streaming.discard(process)
            errors.seek(0)
            stderr = errors.read()
        self._check_connection(code, stderr)
        return subprocess.CompletedProcess(process.args, code, "", stderr)

    def _check_connection(self, code: int, stderr: str) -> None:
        if code != ssh.EXIT_FAILED:
            return
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else "see ssh's message above"
        where = f"{self.endpoint.user}@{self.endpoint.host}:{self.endpoint.port}"
        where = f"{self.name} ({where})" if self.name else where
        presented = ssh.refused_host_key(stderr)
        hint = (
            f"the server shows another host key ({presented}) than the stack's `ssh.host_key` output "
            f"({self.endpoint.fingerprint}): check the server, then pulumi up"
            if presented is not None
            else "check the server is up and the stack's SSH key is authorized there"
        )
        raise QuaysideError(f"stack {self.stack}: cannot reach {where} over SSH ({reason}): {hint}")
