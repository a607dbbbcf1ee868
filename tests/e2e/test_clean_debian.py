"""A clean Debian server (debootstrap root, sshd, cloud-init, no Docker) made ready by quayside's own program and
deployed to as a non-root user, through the real engine, real SSH, its own dockerd and kamal-proxy. The user data
is quayside's cloud_init(): connections verify the host key cloud-init installed from it. The bootstrap then runs
again over SSH, as a later `pulumi up` with changed settings would run it, and changes nothing.

On such a server whose Docker data root is a small disk of its own, a full disk fails a deploy before its image comes
(pulled from a registry, or sent without one), in one line with the figures, while the old version serves."""

from __future__ import annotations

import contextlib
import http.client
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from components import config
from components import remote as commands
from components.bootstrap import bootstrap_args
from tests.support import images
from tests.support.clean_debian import CleanDebianServer, clean_debian_server, free_port
from tests.support.docker import docker, listens
from tests.support.load import Load, LoadReport
from tests.support.polling import wait_for
from tests.support.pulumi_engine import QuaysideProject
from tests.support.stacks import registry_image, unique_service
from tests.support.testbed import registry_address

DEPLOY_USER = "deploy"
METADATA = "169.254.169.254"
SWAP_MB = 64
# The disk under Docker's data root in the full-disk test, the download of the image it deploys there, and what it
# leaves free: less than the 3 x download a pull takes.
DOCKER_DISK_MB = 512
BALLAST_MB = 40
LEFT_FREE_MB = 80
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


@contextlib.contextmanager
def metadata_stand_in(server: CleanDebianServer) -> Iterator[int]:
    """The cloud's metadata address (169.254.169.254) answering on the server's network, outside the server, as on a
    cloud: on this machine's side of the server's network, for the test's own time. Yields its port."""
    network_id = docker("network", "inspect", "--format", "{{.Id}}", server.container)
    bridge = f"br-{network_id[:12]}"
    subprocess.run(["ip", "address", "add", f"{METADATA}/32", "dev", bridge], check=True)
    port = free_port(range(8310, 8399))
    answer = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", METADATA, str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for("the metadata stand-in answering", lambda: listens(port, METADATA), seconds=20)
        yield port
    finally:
        answer.terminate()
        answer.wait(timeout=10)
        subprocess.run(["ip", "address", "del", f"{METADATA}/32", "dev", bridge], check=False)


@dataclass(frozen=True)
class Neighbour:
    """Another host on the server's network that routes the service network's addresses through the server."""

    server: CleanDebianServer
    subnet: str  # the service network's, on the server
    server_ip: str  # the server's address on its network

    @classmethod
    def of(cls, server: CleanDebianServer, service: str) -> Neighbour:
        subnet = server.run("root", f"docker network inspect -f '{{{{(index .IPAM.Config 0).Subnet}}}}' {service}")
        server_ip = docker(
            "inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{server.container}\").IPAddress}}}}",
            server.container,
        )  # fmt: skip
        return cls(server, subnet.stdout.strip(), server_ip)

    def reaches(self, target: str) -> bool:
        """Whether it connects to `target`:80, a container's address on the service network."""
        done = subprocess.run(
            ["docker", "run", "--rm", "--network", self.server.container, "--cap-add", "NET_ADMIN",
             "--entrypoint", "bash", images.CLEAN_DEBIAN, "-c",
             f"ip route add {self.subnet} via {self.server_ip} && timeout 5 bash -c 'exec 3<>/dev/tcp/{target}/80'"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "RTNETLINK" not in done.stderr, done.stderr
        return done.returncode == 0


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
        project = QuaysideProject.create(tmp_path)
        stack = project.stack("e2e", stack_config(server, service))

        stack.up(color="never")

        first = command_output(stack, f"{service}-bootstrap-run")
        print("first bootstrap, by pulumi up:", first, sep="\n")
        assert "bootstrap: waiting for cloud-init (status: running)" in first, first
        for change in (
            f"made /swapfile ({SWAP_MB} MiB)", "wrote /etc/docker/daemon.json", "installed docker.io",
            "installed unattended-upgrades", f"created user {DEPLOY_USER} (group docker, no password)",
            "installed /usr/local/lib/quayside/container-firewall.sh",
            "containers reach no metadata service, and no neighbour reaches them but through a published port",
            "no neighbour reaches a port published on 127.0.0.1",
            "password SSH off", f"/var/lib/quayside belongs to {DEPLOY_USER}",
            f"/var/lib/quayside/{service} belongs to {DEPLOY_USER}",
        ):  # fmt: skip
            assert f"bootstrap: {change}" in first, first
        assert f"bootstrap: {DEPLOY_USER} may run iptables as root, for a kamal-proxy upgrade's handover" in first
        handover = server.run(DEPLOY_USER, "sudo -n iptables -w -t nat -S OUTPUT")
        assert handover.returncode == 0, handover.stderr
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

        # The deploy user hands kamal-proxy's ports over to a new build through sudo iptables.
        upgraded = stack_config(server, service)
        upgraded["quayside:proxy"]["version"] = images.KAMAL_PROXY_NEXT.split(":")[1]
        project.stack("e2e", upgraded).up(color="never")
        assert "handed over" in command_output(stack, f"{service}-proxy-container")
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

        # The containers' firewall: no metadata service for them, no way in for a neighbour but a published port.
        app = registry_image("v1")
        address = f'{{{{(index .NetworkSettings.Networks "{service}").IPAddress}}}}'
        target = server.run(
            "root", f"docker inspect -f '{address}' $(docker run -d -p 127.0.0.1:8999:80 --network {service} {app})"
        ).stdout.strip()
        neighbour = Neighbour.of(server, service)
        with metadata_stand_in(server) as port:

            def container_reaches_metadata() -> bool:
                reached = server.run("root", f"docker run --rm --network {service} {app} nc -w 3 {METADATA} {port}")
                return reached.returncode == 0

            from_the_server = server.run("root", f"exec 3<>/dev/tcp/{METADATA}/{port}", timeout=30)
            assert from_the_server.returncode == 0, from_the_server.stderr
            assert not container_reaches_metadata()
            assert not neighbour.reaches(target), "a neighbour reached a port on 127.0.0.1 only"
            # The checks' teeth: without the firewall's chain, both get through.
            server.run("root", "iptables -D DOCKER-USER -j QUAYSIDE-CONTAINERS")
            assert container_reaches_metadata() and neighbour.reaches(target)
            restored = server.run("root", "/usr/local/lib/quayside/container-firewall.sh")
            assert restored.stdout.startswith("container-firewall: containers reach no metadata"), restored
            assert not container_reaches_metadata() and not neighbour.reaches(target)
        # A packet for 127.0.0.0/8 from another interface is dropped before Docker's DNAT could take it.
        assert server.run("root", "iptables -t raw -C PREROUTING ! -i lo -d 127.0.0.0/8 -j DROP").returncode == 0

        # Connections verified the host key cloud-init installed from the user data: the server's only one.
        keys = server.run("root", "cat /etc/ssh/ssh_host_*_key.pub")
        assert keys.stdout.split()[:2] == server.host_key_file.read_text().split()[:2]
        assert len(keys.stdout.strip().splitlines()) == 1

        stack.destroy(color="never")


def with_ballast(tag: str, megabytes: int, directory: Path) -> str:
    """The demo app's `tag` with a layer of `megabytes` of random bytes (which compress to no less), in this
    machine's engine under a tag of its own."""
    ballast = directory / f"ballast-{tag}"
    ballast.write_bytes(random_bytes(megabytes * 1024 * 1024))
    container = docker("create", registry_image(tag))
    image = f"quayside-test/app:{tag}-ballast-{container[:8]}"
    try:
        docker("cp", str(ballast), f"{container}:/ballast")
        docker("commit", container, image)
    finally:
        docker("rm", container, check=False)
    return image


def pushed_as_list(image: str) -> str:
    """`image` pushed to the loopback registry behind a list of manifests (as most published images are)."""
    pushed = f"{registry_address()}/{image}"
    listed = f"{pushed}-list"
    docker("tag", image, pushed)
    try:
        docker("push", "--quiet", pushed, timeout=300)
        docker("manifest", "create", "--insecure", listed, pushed)
        docker("manifest", "push", "--insecure", "--purge", listed, timeout=120)
    finally:
        docker("image", "rm", pushed, check=False)
    return listed


@contextlib.contextmanager
def removed_after(local_images: list[str]) -> Iterator[None]:
    """This machine's engine keeps none of `local_images` after the test, however it ends."""
    try:
        yield
    finally:
        for image in local_images:
            docker("image", "rm", image, check=False)


def random_bytes(count: int) -> bytes:
    with open("/dev/urandom", "rb") as source:
        return source.read(count)


def fill_leaving(server: CleanDebianServer, megabytes: int) -> None:
    """Fills the disk under the server's Docker data root until `megabytes` MiB are free."""
    free_kb = int(server.run("root", "df -Pk /var/lib/docker | awk 'NR == 2 { print $4 }'").stdout)
    filled = server.run("root", f"fallocate -l {free_kb - megabytes * 1024}K /var/lib/docker/filler")
    assert filled.returncode == 0, filled.stderr


def up_on_a_full_disk(
    project: QuaysideProject, values: dict[str, Any], server: CleanDebianServer, left_free_mb: int
) -> tuple[auto.Stack, str, LoadReport]:
    """A `pulumi up` of `values` that must fail, with `left_free_mb` MiB free under the server's Docker data root and
    load on web from before it starts until 100 responses after it ends: the stack, its message, the load's report."""
    fill_leaving(server, left_free_mb)
    stack = project.stack("e2e", values)
    with Load(server.http_port, f"web.{values['quayside:service']}.localhost") as load:
        load.wait_for_requests(100)
        with pytest.raises(auto.errors.CommandError) as failed:
            stack.up(color="never")
        load.wait_for_requests(load.report.total + 100)
    return stack, str(failed.value), load.report


def up_once_freed(stack: auto.Stack, server: CleanDebianServer, service: str) -> tuple[int, str]:
    """The next `pulumi up` once the filling is gone; what web answers then."""
    server.run("root", "rm /var/lib/docker/filler")
    stack.up(color="never")
    return get(server.http_port, f"web.{service}.localhost")


def refusal(message: str, verb: str, image: str, why: str) -> tuple[float, float, float]:
    """(MiB free, MiB the image takes, MiB of its size) as the one line refusing to `verb` `image` says them; `why`
    is a pattern of the reason's figure (e.g. `3 x its (...) MiB download`)."""
    said = re.search(
        rf"the server's disk is too full to {verb} {image}: ([0-9.]+) MiB free under /var/lib/docker, and {verb}ing "
        rf"it takes about ([0-9.]+) MiB \({why}\): free space on the server \(docker system df shows what Docker "
        r"holds\) and deploy again",
        message,
    )
    assert said is not None, message
    print(said.group(0))
    free, needs, size = (float(figure) for figure in said.groups())
    return free, needs, size


def test_a_full_disk_fails_a_deploy_before_its_image_comes_saying_what_it_needs_and_the_old_version_serves(
    tmp_path: Path,
) -> None:
    service = unique_service("e2e-disk")
    local_images = [with_ballast("v2", BALLAST_MB, tmp_path), with_ballast("v3", BALLAST_MB, tmp_path)]
    with (
        removed_after(local_images),
        clean_debian_server(tmp_path / "server", docker_disk_mb=DOCKER_DISK_MB) as server,
        server.registry_tunnel(),
    ):
        project = QuaysideProject.create(tmp_path)
        values = stack_config(server, service)
        project.stack("e2e", values).up(color="never")

        # Pulled from a registry: refused before the pull.
        pulled = pushed_as_list(local_images[0])
        values["quayside:roles"]["web"]["image"] = pulled
        stack, message, report = up_on_a_full_disk(project, values, server, LEFT_FREE_MB)

        print(f"web's pulled image on a full disk: {report.tally()}")
        assert f"swap failed: role web on clean-debian: the server's disk is too full to pull {pulled}@" in message
        free, needs, download = refusal(message, "pull", rf"{re.escape(pulled)}@sha256:[0-9a-f]{{64}}",
                                        r"3 x its ([0-9.]+) MiB download")  # fmt: skip
        # What the server's own writes (logs, state) took since the filling comes off what it left free.
        assert free <= LEFT_FREE_MB and BALLAST_MB < download < BALLAST_MB + 2
        assert free < needs == pytest.approx(3 * download, abs=0.2)
        assert report.failures == [] and set(report.versions()) == {"v1"}, report.summary()
        assert server.run("root", "docker image ls --format '{{.Tag}}' | grep -c ballast").stdout.strip() == "0"
        assert up_once_freed(stack, server, service) == (200, "v2")

        # Sent without a registry: refused before docker load, the layers' size told by the sender.
        values["quayside:registry"] = "none"
        values["quayside:roles"]["web"]["image"] = local_images[1]
        stack, message, report = up_on_a_full_disk(project, values, server, LEFT_FREE_MB - BALLAST_MB)

        print(f"web's sent image on a full disk: {report.tally()}")
        assert f"send-image: the server has no room for {local_images[1]} (see its message above)" in message
        free, needs, unpacked = refusal(message, "load", r"quayside-test/app:[0-9a-f]{12}",
                                        r"2 x its ([0-9.]+) MiB of layers")  # fmt: skip
        assert free <= LEFT_FREE_MB - BALLAST_MB and BALLAST_MB <= unpacked < BALLAST_MB + 2
        assert free < needs == pytest.approx(2 * unpacked, abs=0.2)
        assert report.failures == [] and set(report.versions()) == {"v2"}, report.summary()
        assert up_once_freed(stack, server, service) == (200, "v3")
        stack.destroy(color="never")
