"""The rollout across servers (components/rollout.py) on the multi-host test bed: a service on its three hosts, each
with its scripts installed, host.sh run and a kamal-proxy of its own bound to the host's address; the rollout runs as
the role's rollout step runs it, with swap.sh's arguments built by swap_args, and HTTP load on every host's proxy
counts every failed request."""

from __future__ import annotations

import http.client
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from components import config, defaults, rollout, ssh, steps
from components.swap_command import swap_args, swap_timeout
from tests.support.docker import unique_name
from tests.support.hosts import SETUP_STEP, HostBed, TestHost
from tests.support.load import Load, LoadReport
from tests.support.remote import REMOTE_ROOT, container_name, fixed_network, install_scripts, run_script, settle

ROOT: Final = Path(__file__).resolve().parents[2]
ROLE: Final = "web"
# As the integration tests' TEST_ROLE: fast enough for tests, still kamal-proxy's checks, drain and switch.
ROLE_SETTINGS: Final[dict[str, Any]] = {
    "health": {"path": "/up", "interval": "500ms"}, "deploy_timeout": "10s", "drain_timeout": "5s",
}  # fmt: skip
KAMAL_PROXY: Final = "quayside-test/kamal-proxy:v0.9.2"
FREE_PORT: Final = "import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])"


@dataclass(frozen=True)
class Rollout:
    done: subprocess.CompletedProcess[str]
    seconds: float

    @property
    def last_line(self) -> str:
        return self.done.stderr.splitlines()[-1] if self.done.stderr else ""

    def lines(self) -> list[str]:
        return self.done.stdout.splitlines()


@dataclass
class Fleet:
    """One service on the bed's hosts, each with its own kamal-proxy at the host's address."""

    bed: HostBed
    hosts: tuple[TestHost, ...]
    name: str
    http_ports: dict[str, int]

    @property
    def proxy(self) -> str:
        return f"{self.name}-proxy"

    @property
    def host_header(self) -> str:
        return f"{ROLE}.{self.name}.test"

    def image(self, tag: str) -> str:
        return f"{self.bed.registry}/quayside-test/app:{tag}"

    def role(self, **settings: Any) -> config.Role:
        return config.Role.model_validate({
            "image": self.image("v1"), "hosts": [self.host_header], **ROLE_SETTINGS, **settings,
        })  # fmt: skip

    def rollout(
        self, tag: str, *, limit: int, retained_only: bool = False, settle_hosts: bool = True, **settings: Any
    ) -> Rollout:
        """components/rollout.py as the role's rollout step runs it: the swap's arguments by swap_args, the key, the
        host keys and the env file on stdin. Then waits for what the swaps left to finish in the background (the old
        containers stopping), as the role's next step would."""
        role = self.role(**settings)
        swap = swap_args(self.name, ROLE, role, self.image(tag), tag, proxy_name=self.proxy)
        argv = rollout.command_line(
            self.name, ROLE, limit=limit, timeout_seconds=swap_timeout(role), swap_argv=swap,
            retained_only=retained_only,
            servers=[rollout.Target(host.name, host.user, host.address, host.port) for host in self.hosts],
        )  # fmt: skip
        stdin = rollout.stdin_document(
            private_keys={host.name: host.private_key_text for host in self.hosts},
            host_keys={host.name: host.host_key_file.read_text() for host in self.hosts},
            env_file="SECRET=rollout\n",
        )
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "components/rollout.py", *argv], cwd=ROOT, input=stdin,
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        for host in self.hosts if settle_hosts else ():
            settle(host, self.name, ROLE)
        return Rollout(done, seconds)

    def load(self, host: TestHost) -> Load:
        return Load(self.http_ports[host.name], self.host_header, address=host.address, workers=2)

    def answer(self, host: TestHost) -> str:
        """The version the host's proxy serves the role at (the first word of the app's `GET /`)."""
        connection = http.client.HTTPConnection(host.address, self.http_ports[host.name], timeout=5)
        try:
            connection.request("GET", "/", headers={"Host": self.host_header})
            reply = connection.getresponse()
            body = reply.read().decode()
            assert reply.status == 200, f"{host.name}: {reply.status} {body}"
            return body.split()[0]
        finally:
            connection.close()

    def live(self, host: TestHost) -> str:
        """live.sh's answer on the host."""
        args = steps.LIVE.argv(service=self.name, role=ROLE, proxy_name=self.proxy)
        done = run_script(host, self.name, steps.LIVE.name, args, timeout_seconds=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def containers(self, host: TestHost) -> dict[str, str]:
        """name → state of the role's containers on the host."""
        listing = host.run(
            f"docker ps --all --filter label=quayside.service={self.name} --filter label=quayside.role={ROLE}"
            " --format '{{.Names}} {{.State}}'"
        ).stdout
        return dict(line.split() for line in listing.splitlines())

    def container(self, tag: str) -> str:
        return container_name(self.name, ROLE, tag)

    def audit(self, host: TestHost) -> list[str]:
        return host.run(f"cat {REMOTE_ROOT}/{self.name}/audit.log", check=False).stdout.splitlines()


@dataclass
class Loads:
    """Load on each host's proxy, every response counted, from before a rollout until `after()`."""

    loads: dict[str, Load]

    def after(self) -> None:
        """Waits for 50 more answers on every host: the load goes on past the rollout's end."""
        for load in self.loads.values():
            load.wait_for_requests(load.report.total + 50)

    def report(self, host: TestHost) -> LoadReport:
        return self.loads[host.name].report

    def failed(self) -> dict[str, int]:
        return {name: len(load.report.failures) for name, load in self.loads.items()}

    def summary(self) -> str:
        return "; ".join(f"{name}: {load.report.summary()}" for name, load in self.loads.items())


@pytest.fixture
def under_load(fleet: Fleet) -> Iterator[Loads]:
    """Load on every host of the fleet, flowing before the test goes on."""
    with ExitStack() as stack:
        loads = Loads({host.name: stack.enter_context(fleet.load(host)) for host in fleet.hosts})
        for load in loads.loads.values():
            load.wait_for_requests(50)
        yield loads


def engine_answers(host: TestHost) -> bool:
    """The host's own Docker engine, as the bed started it, answers; host.sh would start another one otherwise."""
    return host.run("docker info --format '{{.ID}}'", check=False).returncode == 0


def prepare_host(host: TestHost, name: str, registry: str) -> int:
    """Scripts, host.sh and a kamal-proxy bound to the host's address on free ports; returns the HTTP port."""
    assert engine_answers(host), f"the Docker engine of {host.name} does not answer: run {SETUP_STEP}"
    install_scripts(host, name)
    done = run_script(host, name, steps.HOST.name, steps.HOST.argv(service=name, stack_id=uuid.uuid4().hex))
    assert done.returncode == 0, done.stderr
    ports = host.run(f"for i in 1 2; do python3 -c {shlex.quote(FREE_PORT)} {host.address}; done").stdout.split()
    values = {
        "image": f"{registry}/{KAMAL_PROXY}", "network": name, "name": f"{name}-proxy",
        "proxy_network": f"0-{name}-proxy", "bind": host.address,
        "http_port": ports[0], "https_port": ports[1], "state_volume": f"{name}-proxy-state",
        "state_dir": defaults.PROXY_STATE_DIR,
    }  # fmt: skip
    done = run_script(host, name, steps.PROXY.name, steps.PROXY.argv("boot", **values), timeout_seconds=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return int(ports[0])


def remove_from_host(host: TestHost, name: str, had_daemon_json: bool) -> None:
    """Everything the service left on the host; /etc/docker/daemon.json too when host.sh wrote it."""
    script = f"""
        ids=$(docker ps --all --quiet --filter label=quayside.service={name})
        docker rm --force {name}-proxy $ids >/dev/null 2>&1
        docker network rm {name} {fixed_network(name)} 0-{name}-proxy >/dev/null 2>&1
        docker volume rm {name}-proxy-state >/dev/null 2>&1
        rm -rf {REMOTE_ROOT}/{name} {REMOTE_ROOT}/{name}-proxy.lock /tmp/{name}-up
        {"" if had_daemon_json else "rm -f /etc/docker/daemon.json"}
        true
    """
    host.run(script, check=False, timeout=120)


@pytest.fixture
def fleet(host_bed: HostBed) -> Iterator[Fleet]:
    """The role at v1 on the bed's three hosts, put there by a first rollout (from none, all at once)."""
    hosts = host_bed.hosts[:3]
    name = unique_name("qs-roll")
    had_daemon_json = {host.name: host.run("test -e /etc/docker/daemon.json", check=False).returncode == 0
                       for host in hosts}  # fmt: skip
    try:
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            ports = list(pool.map(lambda host: prepare_host(host, name, host_bed.registry), hosts))
        fleet = Fleet(host_bed, hosts, name, {host.name: port for host, port in zip(hosts, ports, strict=True)})
        first = fleet.rollout("v1", limit=len(hosts))
        assert first.done.returncode == 0, first.done.stdout + first.done.stderr
        assert f"live now: {', '.join(f'{host.name} none' for host in hosts)}" in first.done.stdout
        assert [fleet.answer(host) for host in hosts] == ["v1"] * len(hosts)
        yield fleet
    finally:
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            list(pool.map(lambda host: remove_from_host(host, name, had_daemon_json[host.name]), hosts))


def positions(lines: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Where each wanted line first stands in `lines` (-1 when it does not)."""
    return [lines.index(line) if line in lines else -1 for line in wanted]


def test_a_new_version_with_limit_one_switches_the_hosts_one_after_the_other_without_a_failed_request(
    fleet: Fleet, under_load: Loads
) -> None:
    rolled = fleet.rollout("v2", limit=1)
    under_load.after()

    assert rolled.done.returncode == 0, rolled.done.stdout + rolled.done.stderr
    order = []
    for number, host in enumerate(fleet.hosts, 1):
        order += [f"rollout: web: wave {number} of 3: {host.name}", f"{host.name}: swap: web now v2"]
    found = positions(rolled.lines(), order)
    assert found == sorted(found) and -1 not in found, rolled.done.stdout
    assert [fleet.answer(host) for host in fleet.hosts] == ["v2"] * 3
    assert [fleet.live(host).split() for host in fleet.hosts] == [["v2", fleet.image("v2")]] * 3
    assert under_load.failed() == dict.fromkeys(under_load.loads, 0), under_load.summary()
    assert all(under_load.report(host).version_sequence() == ["v1", "v2"] for host in fleet.hosts), under_load.summary()
    switches = [line for line in rolled.lines() if line.startswith("rollout: web: qs-") or "switched" in line]
    print(
        f"\nrollout v1→v2 on 3 hosts, limit 1: {rolled.seconds:.1f} s; {under_load.summary()}\n" + "\n".join(switches)
    )


def test_a_version_unhealthy_on_one_host_goes_live_on_none_and_the_hosts_it_reached_go_back(
    fleet: Fleet, under_load: Loads
) -> None:
    first, second, third = fleet.hosts
    # The new version mounts a file of the host over the app's health file (/www/up, which the app writes as it
    # starts). On the second host that path is a directory: the app cannot write it, exits, and never answers /up.
    health_file = f"/tmp/{fleet.name}-up"
    for host in (first, third):
        host.run(f"echo ok > {health_file}")
    second.run(f"mkdir -p {health_file}")
    volume = f"{health_file}:/www/up"

    rolled = fleet.rollout("v2", limit=1, volumes=[volume])
    under_load.after()

    assert rolled.done.returncode == 1, rolled.done.stdout + rolled.done.stderr
    assert rolled.last_line.startswith(f"rollout: web: swap failed: role web on {second.name}: "), rolled.last_line
    assert rolled.last_line.endswith(
        f"(health path /up) on {second.name} ({second.address}); {first.name} went back to v1"
    ), rolled.last_line
    # v1's kept container was made without the volume: v1 goes back on the first host in a container booted again.
    assert f"rollout: web: {first.name}: no kept v1 fits the options; booting v1 again" in rolled.lines()
    assert [fleet.answer(host) for host in fleet.hosts] == ["v1"] * 3
    assert [fleet.live(host).split() for host in fleet.hosts] == [["v1", fleet.image("v1")]] * 3
    assert fleet.container("v2") not in fleet.containers(second), "the failed swap removed its container"
    assert fleet.containers(third) == {fleet.container("v1"): "running"}, "the third host was never touched"
    assert under_load.failed() == dict.fromkeys(under_load.loads, 0), under_load.summary()
    assert under_load.report(first).version_sequence() == ["v1", "v2", "v1"], under_load.summary()
    assert set(under_load.report(second).versions()) == {"v1"}, under_load.summary()
    print(f"\nunhealthy on {second.name}: failed and back in {rolled.seconds:.1f} s; {under_load.summary()}\n"
          f"{rolled.done.stdout}{rolled.done.stderr}")  # fmt: skip


def test_a_host_whose_sshd_is_down_fails_the_rollout_naming_it_and_no_other_host_is_touched(
    fleet: Fleet, under_load: Loads, host_bed: HostBed
) -> None:
    down = fleet.hosts[2]
    others = fleet.hosts[:2]
    before = {host.name: (fleet.containers(host), fleet.audit(host)) for host in others}
    with host_bed.sshd_stopped(down):
        rolled = fleet.rollout("v2", limit=1, settle_hosts=False)
        under_load.after()
    HostBed.from_testbed()  # every host answers again (else this fails naming the set-up step)

    assert rolled.done.returncode == 1
    assert rolled.done.stderr.splitlines() == [
        f"rollout: web: no SSH answer from {down.name} ({down.address}) within {ssh.CONNECT_TIMEOUT_SECONDS} s "
        f"(ssh: connect to host {down.address} port 22: Connection refused); nothing was touched on any server"
    ]
    assert rolled.seconds < ssh.CONNECT_TIMEOUT_SECONDS + 10
    assert {host.name: (fleet.containers(host), fleet.audit(host)) for host in others} == before
    assert [fleet.answer(host) for host in fleet.hosts] == ["v1"] * 3
    assert under_load.failed() == dict.fromkeys(under_load.loads, 0), under_load.summary()
    print(f"\nsshd down on {down.name}: failed in {rolled.seconds:.1f} s: {rolled.last_line}")


def test_retained_only_puts_every_hosts_kept_earlier_version_back_without_a_failed_request(
    fleet: Fleet, under_load: Loads
) -> None:
    forward = fleet.rollout("v2", limit=3)
    assert forward.done.returncode == 0, forward.done.stderr
    kept = {host.name: host.run(f"docker inspect --format '{{{{.Id}}}}' {fleet.container('v1')}").stdout
            for host in fleet.hosts}  # fmt: skip

    back = fleet.rollout("v1", limit=1, retained_only=True)
    under_load.after()

    assert back.done.returncode == 0, back.done.stdout + back.done.stderr
    assert under_load.failed() == dict.fromkeys(under_load.loads, 0), under_load.summary()
    assert all(under_load.report(host).version_sequence() == ["v1", "v2", "v1"] for host in fleet.hosts), (
        under_load.summary()
    )
    assert [fleet.answer(host) for host in fleet.hosts] == ["v1"] * 3
    for host in fleet.hosts:
        assert fleet.containers(host) == {fleet.container("v1"): "running", fleet.container("v2"): "exited"}
        assert host.run(f"docker inspect --format '{{{{.Id}}}}' {fleet.container('v1')}").stdout == kept[host.name]
    print(f"\nretained-only v2→v1 on 3 hosts, limit 1: {back.seconds:.1f} s; {under_load.summary()}")


def test_retained_only_switches_no_host_when_one_host_has_no_kept_container_of_the_version(
    fleet: Fleet, under_load: Loads
) -> None:
    first, second, third = fleet.hosts
    assert fleet.rollout("v2", limit=3).done.returncode == 0
    assert fleet.rollout("v1", limit=3, retained_only=True).done.returncode == 0
    third.run(f"docker rm {fleet.container('v2')}")

    again = fleet.rollout("v2", limit=1, retained_only=True)
    under_load.after()

    assert again.done.returncode == 1, again.done.stdout + again.done.stderr
    assert again.last_line == (
        f"rollout: web: swap: no container of web v2 with the role's current config is kept on {third.name} "
        f"on {third.name} ({third.address}); {first.name} and {second.name} went back to v1"
    )
    assert under_load.failed() == dict.fromkeys(under_load.loads, 0), under_load.summary()
    assert [fleet.answer(host) for host in fleet.hosts] == ["v1"] * 3
    assert [fleet.live(host).split()[0] for host in fleet.hosts] == ["v1"] * 3
    print(
        f"\nretained-only v1→v2, none kept on {third.name}: back to v1 in {again.seconds:.1f} s; {under_load.summary()}"
    )
