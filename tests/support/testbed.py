"""The bench that scripts/setup starts: the loopback test server and the registry, as tests see them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from components import ssh
from quayside_cli.local_stack import TESTBED

SETUP_HINT: Final = "run scripts/setup (it installs and starts the test server, registry and images)"


class BenchMissing(RuntimeError):
    """A part of the bench is not there; the message says which setup step provides it."""


def read_env_file(name: str) -> dict[str, str]:
    path = TESTBED / name
    if not path.is_file():
        raise BenchMissing(f"{path} is missing: {SETUP_HINT}")
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


@dataclass(frozen=True)
class TestServer:
    """sshd on loopback, root by key, driving this machine's Docker engine."""

    __test__: ClassVar[bool] = False  # a bench part, not a pytest class

    host: str
    port: int
    user: str
    private_key: Path
    known_hosts: Path

    @classmethod
    def from_testbed(cls) -> TestServer:
        env = read_env_file("test-server.env")
        return cls(
            host=env["QUAYSIDE_SSH_HOST"],
            port=int(env["QUAYSIDE_SSH_PORT"]),
            user=env["QUAYSIDE_SSH_USER"],
            private_key=Path(env["QUAYSIDE_SSH_KEY"]),
            known_hosts=Path(env["QUAYSIDE_SSH_KNOWN_HOSTS"]),
        )

    def ssh_argv(self, remote_command: str) -> list[str]:
        return ssh.argv(self.host, self.port, self.user, self.private_key, self.known_hosts, remote_command)

    def run(
        self, remote_command: str, *, stdin: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Runs one command over SSH, as pulumi-command's remote.Command does."""
        return subprocess.run(
            self.ssh_argv(remote_command),
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    @property
    def host_key_file(self) -> Path:
        """The server's public host key (test-server.sh generates it beside the client key)."""
        return self.private_key.parent / "host_ed25519.pub"

    @property
    def private_key_text(self) -> str:
        return self.private_key.read_text()


def registry_address() -> str:
    return read_env_file("registry.env")["QUAYSIDE_REGISTRY"]
