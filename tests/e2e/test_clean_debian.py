"""A clean Debian server (debootstrap root, sshd, cloud-init, no Docker) made ready by quayside's own program and
deployed to as a non-root user, through the real engine, real SSH, its own dockerd and kamal-proxy. The user data
is quayside's cloud_init(): connections verify the host key cloud-init installed from it. The bootstrap then runs
again over SSH, as a later `pulumi up` with changed settings would run it, and changes nothing."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from components import config
from components import remote as commands
from components.bootstrap import bootstrap_args
from tests.support.clean_debian import CleanDebianServer, clean_debian_server
from tests.support.pulumi_engine import QuaysideProject
from tests.support.stacks import registry_image, unique_service
from tests.support.testbed import registry_address

DEPLOY_USER = "deploy"
SWAP_MB = 64
# What a run that changes nothing must leave as it was.
FINGERPRINT = (
    "sha256sum /etc/passwd /etc/group /etc/fstab /etc/ssh/sshd_config.d/10-quayside.conf "
    "/etc/apt/apt.conf.d/20auto-upgrades /etc/docker/daemon.json /home/deploy/.ssh/authorized_keys; "
    "dpkg-query -W -f '${Package} ${Version}\\n'; pgrep -x dockerd; stat -c '%U %a %n' /var/lib/quayside/*"
)


def stack_config(server: CleanDebianServer, service: str) -> dict[str, Any]:
    return {
        "quayside:service": service,
        "quayside:server": {
            "provider": "existing",
            "host": "127.0.0.1",
            "port": server.ssh_port,
            "user": DEPLOY_USER,
            "private_key_file": str(server.client_key),
            "host_key_file": str(server.host_key_file),
            "bootstrap": {"swap_mb": SWAP_MB},
        },
        "quayside:proxy": {"image": f"{registry_address()}/quayside-test/kamal-proxy", "version": "v0.9.2"},
        "quayside:roles": {
            "web": {"image": registry_image("v1"), "hosts": [f"web.{service}.localhost"], "health": {"path": "/up"}}
        },
    }


def command_output(stack: auto.Stack, name: str) -> str:
    """The stdout a remote command of the stack left in its state."""
    deployment = stack.export_stack().deployment
    assert deployment is not None
    resources = deployment["resources"]
    [found] = [r for r in resources if r["type"] == "command:remote:Command" and r["urn"].endswith(f"::{name}")]
    stdout: str = found["outputs"]["stdout"]
    return stdout


def get(port: int, host: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/", headers={"Host": host})
        reply = connection.getresponse()
        return reply.status, reply.read().decode(errors="replace").split()[0]
    finally:
        connection.close()


def test_a_clean_debian_server_is_bootstrapped_then_deployed_to_as_a_non_root_user(tmp_path: Path) -> None:
    service = unique_service("e2e-clean")
    with clean_debian_server(tmp_path / "server") as server, server.registry_tunnel():
        assert server.run("root", "command -v docker").returncode != 0, "the server must start without Docker"
        stack = QuaysideProject.create(tmp_path).stack("e2e", stack_config(server, service))

        stack.up(color="never")

        first = command_output(stack, f"{service}-bootstrap-run")
        print("first bootstrap, by pulumi up:", first, sep="\n")
        assert "bootstrap: waiting for cloud-init (status: running)" in first, first
        for change in (
            f"made /swapfile ({SWAP_MB} MiB)", "wrote /etc/docker/daemon.json", "installed docker.io",
            "installed unattended-upgrades", f"created user {DEPLOY_USER} (group docker, no password)",
            "password SSH off", f"/var/lib/quayside belongs to {DEPLOY_USER}",
            f"/var/lib/quayside/{service} belongs to {DEPLOY_USER}",
        ):  # fmt: skip
            assert f"bootstrap: {change}" in first, first
        assert server.run("root", "cloud-init status").stdout.strip() == "status: done"
        # cloud-init validated the user data (and the image's own config) at boot, and found nothing wrong.
        assert server.run("root", "grep -ci 'invalid cloud-config' /var/log/cloud-init.log").stdout.strip() == "0"
        assert get(server.http_port, f"web.{service}.localhost") == (200, "v1")

        # Every deploy step ran as the deploy user, whose docker group reaches the server's engine.
        owners = server.run(
            "root", f"stat -c '%U %a' /var/lib/quayside/{service} /var/lib/quayside/{service}/audit.log"
        )
        assert owners.stdout.split("\n")[:2] == [f"{DEPLOY_USER} 700", f"{DEPLOY_USER} 644"], owners
        running = server.run(DEPLOY_USER, f"id -nG; docker ps --filter label=quayside.service={service} -q | wc -l")
        assert running.stdout.split("\n")[:2] == [f"{DEPLOY_USER} docker", "1"], running

        before = server.run("root", FINGERPRINT).stdout
        again_args = bootstrap_args(service, DEPLOY_USER, config.Bootstrap(swap_mb=SWAP_MB))
        again = server.run("root", commands.script(service, "bootstrap.sh", again_args, timeout_seconds=600))
        print("second bootstrap, over SSH:", again.stdout, sep="\n")
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.splitlines()[-1] == f"bootstrap: nothing changed; deploys connect as {DEPLOY_USER}"
        assert server.run("root", FINGERPRINT).stdout == before
        assert get(server.http_port, f"web.{service}.localhost") == (200, "v1")

        # Password SSH is off for every user: the server offers keys only.
        password = server.ssh_argv(
            DEPLOY_USER,
            "true",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        )
        refused = server.run_argv(password)
        assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr, refused

        # Debian's unattended-upgrades, on daily, would take what Debian-Security publishes.
        upgrades = server.run(
            "root", "apt-config dump APT::Periodic; unattended-upgrade --dry-run --debug", timeout=300
        )
        assert upgrades.returncode == 0, upgrades.stdout[-2000:] + upgrades.stderr[-2000:]
        assert 'APT::Periodic::Unattended-Upgrade "1";' in upgrades.stdout
        assert "origin=Debian,codename=bookworm-security,label=Debian-Security" in upgrades.stdout + upgrades.stderr

        # The swap file is a swap area in /etc/fstab (whether the kernel enables it here depends on the filesystem).
        swap = server.run(
            "root",
            "stat -c %s /swapfile; swaplabel /swapfile >/dev/null && echo swap; grep -c '^/swapfile ' /etc/fstab",
        )
        assert swap.stdout.split() == [str(SWAP_MB * 1024 * 1024), "swap", "1"], swap

        # Connections verified the host key cloud-init installed from the user data: the server's only one.
        keys = server.run("root", "cat /etc/ssh/ssh_host_*_key.pub")
        assert keys.stdout.split()[:2] == server.host_key_file.read_text().split()[:2]
        assert len(keys.stdout.strip().splitlines()) == 1

        stack.destroy(color="never")
