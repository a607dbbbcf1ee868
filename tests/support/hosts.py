"""The multi-host test bed that scripts/setup.d/test-hosts.sh makes, as tests see it: N hosts, each a network
namespace at its own address on a private bridge, with its own sshd (port 22, root by the bed's key) driving its own
Docker engine, and its own /var/lib/quayside, /etc/docker, /run, /var/log and /tmp.

    bed = HostBed.from_testbed()          # fails (never skips) naming the set-up step when the bed is missing
    web, worker = bed.hosts[:2]
    web.run("docker ps")                  # over SSH at the host's address, as pulumi-command connects
    urllib.request.urlopen(f"http://{web.address}:{port}/")   # from this (the root) namespace, over the bridge

A host is a TestServer: whatever takes the loopback server (its key, its host key file, `run`) takes a host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from quayside_cli.local_stack import TESTBED
from tests.support.polling import wait_for
from tests.support.testbed import BenchMissing, TestServer, read_env_file

ENV_FILE: Final = "test-hosts.env"
SETUP_SCRIPT: Final = Path(__file__).resolve().parents[2] / "scripts" / "setup.d" / "test-hosts.sh"
# scripts/setup's step test-hosts: makes what is missing, starts what stopped.
SETUP_STEP: Final = "bash scripts/setup.d/test-hosts.sh (or scripts/setup)"
# How long a host may take to answer SSH before the bed counts as down.
ANSWER_SECONDS: Final = 15


@dataclass(frozen=True)
class TestHost(TestServer):
    """One host of the bed: sshd on port 22 at its address, root by the bed's key, driving the host's own engine."""

    name: str
    host_key: Path
    directory: Path

    @property
    def address(self) -> str:
        return self.host

    @property
    def host_key_file(self) -> Path:
        """The host's public host key (`ssh-ed25519 AAAA... name`), for pulumi's server.host_key_file."""
        return self.host_key

    def server_config(self) -> dict[str, Any]:
        """The host as a stack's `server:` (or one of its `servers:`) names it: an existing server, Docker there."""
        return {
            "provider": "existing", "host": self.address, "port": self.port, "user": self.user,
            "install_docker": False, "private_key_file": str(self.private_key),
            "host_key_file": str(self.host_key_file),
        }  # fmt: skip

    def seen_from_root(self, path: str) -> Path:
        """Where this (the root) namespace sees the host's own `path` (one of the paths the host has of its own)."""
        return self.directory / "fs" / path.lstrip("/")


@dataclass(frozen=True)
class HostBed:
    """The hosts, the registry they pull from, and what the root namespace's engine was when the bed was made."""

    hosts: tuple[TestHost, ...]
    gateway: str
    registry: str
    root_engine_id: str
    root_docker0_index: int
    root_docker0_address: str

    @classmethod
    def from_testbed(cls) -> HostBed:
        """The bed as the set-up step wrote it, each host answering SSH; BenchMissing names the step otherwise."""
        if not (TESTBED / ENV_FILE).is_file():
            raise BenchMissing(f"{TESTBED / ENV_FILE} is missing: the test hosts are not made; run {SETUP_STEP}")
        env = read_env_file(ENV_FILE)
        bed = cls(
            hosts=tuple(_host(env, index) for index in range(1, int(env["QUAYSIDE_HOSTS_COUNT"]) + 1)),
            gateway=env["QUAYSIDE_HOSTS_GATEWAY"],
            registry=env["QUAYSIDE_HOSTS_REGISTRY"],
            root_engine_id=env["QUAYSIDE_HOSTS_ROOT_ENGINE"],
            root_docker0_index=int(env["QUAYSIDE_HOSTS_ROOT_DOCKER0_INDEX"]),
            root_docker0_address=env["QUAYSIDE_HOSTS_ROOT_DOCKER0_ADDRESS"],
        )
        with ThreadPoolExecutor(max_workers=len(bed.hosts)) as pool:
            silences = dict(zip(bed.hosts, pool.map(_silence, bed.hosts), strict=True))
        silent = "; ".join(f"{host.name} at {host.address} ({said})" for host, said in silences.items() if said)
        if silent:
            raise BenchMissing(f"no answer of SSH and Docker in {ANSWER_SECONDS} s from {silent}: run {SETUP_STEP}")
        return bed

    @contextlib.contextmanager
    def engine_stopped(self, host: TestHost) -> Iterator[None]:
        """The host's Docker engine stopped as an upgrade of docker.io stops it (SIGTERM), its containers with it,
        until the block ends; then the set-up step starts it again, and the containers come back by themselves."""
        os.kill(int(host.seen_from_root("/run/docker.pid").read_text()), signal.SIGTERM)
        try:
            yield
        finally:
            subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, check=True, timeout=180)

    @contextlib.contextmanager
    def sshd_stopped(self, host: TestHost) -> Iterator[None]:
        """The host's sshd stopped (its Docker engine and containers run on) until the block ends; then the set-up
        step starts it again."""
        pid = int(host.seen_from_root("/run/sshd.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        wait_for(f"{host.name}'s sshd gone", lambda: _silence_once(host) != "", seconds=15)
        try:
            yield
        finally:
            subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, check=True, timeout=120)


def bed_addresses() -> frozenset[str]:
    """The hosts' addresses as the set-up step wrote them (none while the bed is not made): the only addresses beside
    loopback that a test sends traffic to."""
    if not (TESTBED / ENV_FILE).is_file():
        return frozenset()
    env = read_env_file(ENV_FILE)
    return frozenset(env[f"QUAYSIDE_HOST_{index}_ADDRESS"] for index in range(1, int(env["QUAYSIDE_HOSTS_COUNT"]) + 1))


def _host(env: dict[str, str], index: int) -> TestHost:
    prefix = f"QUAYSIDE_HOST_{index}_"
    return TestHost(
        name=env[prefix + "NAME"],
        host=env[prefix + "ADDRESS"],
        port=int(env["QUAYSIDE_HOSTS_PORT"]),
        user=env["QUAYSIDE_HOSTS_USER"],
        private_key=Path(env["QUAYSIDE_HOSTS_KEY"]),
        known_hosts=Path(env[prefix + "KNOWN_HOSTS"]),
        host_key=Path(env[prefix + "HOST_KEY"]),
        directory=Path(env[prefix + "DIR"]),
    )


def _silence_once(host: TestHost) -> str:
    """Nothing when the host answers SSH now; else what ssh said."""
    argv = host.ssh_argv("true")
    argv[1:1] = ["-o", "ConnectTimeout=3"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    return "" if done.returncode == 0 else done.stderr.strip() or f"ssh exited {done.returncode}"


def _silence(host: TestHost) -> str:
    """Nothing once the host answers SSH and its Docker engine answers there (tried again until ANSWER_SECONDS have
    passed); else what ssh or docker said last."""
    argv = host.ssh_argv("docker info --format '{{.ID}}' >/dev/null")
    argv[1:1] = ["-o", f"ConnectTimeout={ANSWER_SECONDS}"]
    deadline = time.monotonic() + ANSWER_SECONDS
    while True:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=ANSWER_SECONDS)
        except subprocess.TimeoutExpired:
            said = "timed out"
        else:
            if done.returncode == 0:
                return ""
            said = done.stderr.strip() or f"ssh exited {done.returncode}"
        if time.monotonic() > deadline:
            return said
        time.sleep(0.5)
