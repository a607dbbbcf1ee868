"""A clean Debian server of its own for e2e tests: a container of quayside-clean-debian/server (built by
scripts/setup.d/clean-debian.sh) with sshd on 127.0.0.1:2301-2309 and its port 80 on 127.0.0.1:8301-8309.

It boots as a Hetzner server does: cloud-init reads a NoCloud seed with root's key (meta-data) and the user data
quayside's own cloud_init() renders (the host key), so connections verify a host key that cloud-init installed.
No Docker at first: the bootstrap installs Debian's docker.io and starts its dockerd inside (no systemd there).
The container is not --privileged (this machine lacks CAP_SYS_RESOURCE, which --privileged asks for): every other
capability, no seccomp or AppArmor profile, its own cgroup namespace, /var/lib/docker on a volume (or a tmpfs of
a set size, for a test to fill).

    with clean_debian_server(tmp_path) as server, server.registry_tunnel():
        server.run("root", "cloud-init status")
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from components import ssh
from components.server import HOST_KEYGEN, cloud_init, split_key_pair
from tests.support import images
from tests.support.docker import docker
from tests.support.polling import wait_for
from tests.support.testbed import registry_address

PREFIX: Final = "quayside-clean-debian"
SSH_PORTS: Final = range(2301, 2310)
HTTP_PORTS: Final = range(8301, 8310)
SETUP_STEP: Final = "scripts/setup.d/clean-debian.sh"
# cloud-init's config and final stages start this long after sshd: the first SSH session finds it running.
CLOUD_INIT_LATE_SECONDS: Final = 40
# What --privileged gives, but for CAP_SYS_RESOURCE (see the module's docstring).
RUN_OPTIONS: Final = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
    "--device-cgroup-rule", "a *:* rwm", "--cgroupns", "private",
)  # fmt: skip


def free_port(ports: range) -> int:
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"every port of 127.0.0.1:{ports.start}-{ports.stop - 1} is taken: remove old {PREFIX}-*")


@dataclass(frozen=True)
class CleanDebianServer:
    container: str
    ssh_port: int
    http_port: int
    client_key: Path  # root's key, and the deploy user's after the bootstrap
    host_key_file: Path  # the public half of the host key in the user data
    known_hosts: Path

    def ssh_argv(self, user: str, command: str, *options: str, forwards: Sequence[str] = ()) -> list[str]:
        return ssh.argv(
            "127.0.0.1", self.ssh_port, user, self.client_key, self.known_hosts, command,
            options=options, forwards=forwards,
        )  # fmt: skip

    def run(self, user: str, command: str, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """One command over SSH; never raises on its exit code."""
        return self.run_argv(self.ssh_argv(user, command), timeout=timeout)

    def run_argv(self, argv: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    @contextlib.contextmanager
    def registry_tunnel(self) -> Iterator[None]:
        """The loopback registry at 127.0.0.1:5000 inside the server too, over an SSH tunnel of root's: the
        server's dockerd pulls from it as from the registry of a real deploy."""
        registry = registry_address()
        port = registry.rsplit(":", 1)[1]
        argv = self.ssh_argv(
            "root", "", "-N", "-o", "ExitOnForwardFailure=yes", forwards=["-R", f"127.0.0.1:{port}:{registry}"]
        )
        tunnel = subprocess.Popen(argv[:-1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Up once the server's loopback port takes a connection (bash's /dev/tcp), or over when ssh exits.
        listening = f"exec 3<>/dev/tcp/127.0.0.1/{port}"
        try:
            wait_for(
                f"the registry tunnel listening on the server's 127.0.0.1:{port}",
                lambda: tunnel.poll() is not None or self.run("root", listening, timeout=15).returncode == 0,
                seconds=30,
                every=0.2,
            )
            if tunnel.poll() is not None:
                raise RuntimeError(f"the registry tunnel ended: {tunnel.stderr.read() if tunnel.stderr else ''}")
            yield
        finally:
            tunnel.terminate()
            tunnel.wait(timeout=10)


def seed(directory: Path, client_public_key: str, user_data: str) -> Path:
    """A NoCloud seed: meta-data with root's key (as Hetzner's metadata gives it), and the user data."""
    directory.mkdir(parents=True)
    instance = uuid.uuid4().hex[:8]
    (directory / "meta-data").write_text(
        f"instance-id: {PREFIX}-{instance}\nlocal-hostname: clean-debian\npublic-keys:\n  - {client_public_key}\n"
    )
    (directory / "user-data").write_text(user_data)
    return directory


def wait_for_ssh(server: CleanDebianServer, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        done = server.run("root", "true", timeout=15)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            logs = docker("logs", "--tail", "20", server.container, check=False)
            raise RuntimeError(f"no SSH to {server.container} within {seconds:.0f}s: {done.stderr.strip()}\n{logs}")
        time.sleep(0.5)


@contextlib.contextmanager
def clean_debian_server(directory: Path, *, docker_disk_mb: int | None = None) -> Iterator[CleanDebianServer]:
    """With `docker_disk_mb`, Docker's data root is a disk of its own of that size (a tmpfs), which a test may fill;
    else a volume."""
    if not docker("image", "inspect", "--format", "{{.Id}}", images.CLEAN_DEBIAN, check=False):
        pytest.fail(f"image {images.CLEAN_DEBIAN} is missing: run {SETUP_STEP}")
    directory.mkdir(parents=True, exist_ok=True)
    client_key = directory / "client_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)], check=True)
    keygen = subprocess.run(["sh", "-c", HOST_KEYGEN], capture_output=True, text=True, check=True)
    host_private, host_public = split_key_pair(keygen.stdout)
    host_key_file = directory / "host_ed25519.pub"
    host_key_file.write_text(host_public + "\n")
    seed_dir = seed(
        directory / "seed", client_key.with_suffix(".pub").read_text().strip(), cloud_init(host_private, host_public)
    )

    name = f"{PREFIX}-{uuid.uuid4().hex[:8]}"
    ssh_port, http_port = free_port(SSH_PORTS), free_port(HTTP_PORTS)
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{ssh_port} {host_public}\n")
    # Its own network: the engine's default bridge is not needed (nor always there on a shared machine).
    docker("network", "create", name)
    docker_disk = (
        ["--tmpfs", f"/var/lib/docker:rw,exec,dev,suid,size={docker_disk_mb}m"] if docker_disk_mb
        else ["--volume", "/var/lib/docker"]
    )  # fmt: skip
    try:
        docker(
            "run", "--detach", "--name", name, "--hostname", "clean-debian", "--network", name, *RUN_OPTIONS,
            "--env", f"CLOUD_INIT_LATE_SECONDS={CLOUD_INIT_LATE_SECONDS}",
            "--publish", f"127.0.0.1:{ssh_port}:22", "--publish", f"127.0.0.1:{http_port}:80",
            *docker_disk, "--volume", f"{seed_dir}:/var/lib/cloud/seed/nocloud:ro", images.CLEAN_DEBIAN,
        )  # fmt: skip
        server = CleanDebianServer(name, ssh_port, http_port, client_key, host_key_file, known_hosts)
        wait_for_ssh(server)
        yield server
    finally:
        docker("rm", "--force", "--volumes", name, check=False, timeout=180)
        docker("network", "rm", name, check=False)
