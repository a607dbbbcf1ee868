"""A service on the test server: its scripts installed, its network, its own kamal-proxy on free loopback
ports, and everything it leaves behind removed at teardown. Tests drive it only through the scripts, with command
lines built as the components build them (components/steps.py, components/swap_command.py): a test names only the
options it changes, as the flags the script takes."""

from __future__ import annotations

import http.client
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from components import config, defaults, steps
from components.swap_command import container_options
from tests.support import images
from tests.support.docker import docker, free_loopback_port, unique_name
from tests.support.load import Load, LoadReport
from tests.support.remote import REMOTE_ROOT, container_name, fixed_network, install_scripts, run_script, settle
from tests.support.testbed import TestServer

DAEMON_JSON: Final = Path("/etc/docker/daemon.json")
# A role as the tests deploy it: fast enough for tests, still the real mechanism (kamal-proxy checks /up, drains,
# switches).
TEST_ROLE: Final = config.Role.model_validate({
    "image": "quayside-test/app:v1", "health": {"path": "/up", "interval": "500ms"}, "deploy_timeout": "10s",
    "drain_timeout": "5s",
})  # fmt: skip


@dataclass
class Service:
    server: TestServer
    name: str
    proxy: str
    state_volume: str
    http_port: int
    https_port: int
    proxy_network: str
    extra_images: list[str] = field(default_factory=list)

    # --- the scripts ---

    def run(
        self, script: str, *args: str, stdin: str = "", timeout_seconds: int = 240
    ) -> subprocess.CompletedProcess[str]:
        done = run_script(self.server, self.name, script, args, stdin=stdin, timeout_seconds=timeout_seconds)
        # What the step left to finish in the background (a swap's old container), as the role's next step would.
        role = args[args.index("--role") + 1 :][:1] if "--role" in args else ()
        settle(self.server, self.name, role[0] if role else "*")
        return done

    def boot_proxy(self, *extra: str, network: str | None = None) -> subprocess.CompletedProcess[str]:
        values = {
            "image": images.KAMAL_PROXY, "network": network or self.name, "name": self.proxy,
            "proxy_network": self.proxy_network, "bind": "127.0.0.1", "http_port": self.http_port,
            "https_port": self.https_port, "state_volume": self.state_volume,
            "state_dir": defaults.PROXY_STATE_DIR, **steps.PROXY.parse(extra),
        }  # fmt: skip
        return self.run(steps.PROXY.name, *steps.PROXY.argv("boot", **values))

    def swap_args(self, role: str, image: str, version: str, *extra: str, config_hash: str = "c0ffee") -> list[str]:
        """swap.sh's command line for TEST_ROLE on this service's proxy and host, with `extra` flags instead."""
        values = {
            **container_options(TEST_ROLE, proxy=config.Proxy(), proxy_name=self.proxy),
            "lock_wait": defaults.LOCK_WAIT_SECONDS,
            **steps.SWAP.parse(extra),
        }
        values["host"] = values.get("host") or [self.host(role)]
        if values["proxy"] is False:
            for key in ("host", "health_path", "health_interval", "health_timeout"):
                values.pop(key, None)
        return steps.SWAP.argv(
            service=self.name, role=role, image=image, version=version, config_hash=config_hash, **values
        )

    def swap(
        self, role: str, tag: str, *extra: str, version: str | None = None, stdin: str = "", image: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        args = self.swap_args(role, image or images.app(tag), version or tag, *extra)
        return self.run(steps.SWAP.name, *args, stdin=stdin)

    def deploy(self, role: str, tag: str, *extra: str, version: str | None = None, stdin: str = "") -> str:
        """A swap that must succeed; returns its output."""
        done = self.swap(role, tag, *extra, version=version, stdin=stdin)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def swap_under_load(
        self, role: str, tag: str, *extra: str, version: str | None = None, stdin: str = "", image: str | None = None
    ) -> tuple[subprocess.CompletedProcess[str], LoadReport]:
        """The swap with load on the role's host from before it starts until 100 responses after it ends."""
        with self.load(role) as load:
            load.wait_for_requests(100)
            done = self.swap(role, tag, *extra, version=version, stdin=stdin, image=image)
            load.wait_for_requests(load.report.total + 100)
        return done, load.report

    def retire(self, role: str, version: str, *extra: str) -> subprocess.CompletedProcess[str]:
        values = {"proxy": True, "lock_wait": defaults.LOCK_WAIT_SECONDS, **steps.RETIRE.parse(extra)}
        args = steps.RETIRE.argv(service=self.name, role=role, version=version, proxy_name=self.proxy, **values)
        return self.run(steps.RETIRE.name, *args)

    def migrate(
        self, role: str, image: str, version: str, *extra: str, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """migrate.sh with `extra` flags and the command after `--`."""
        values = {"lock_wait": defaults.LOCK_WAIT_SECONDS, **steps.MIGRATE.parse(extra)}
        args = steps.MIGRATE.argv(service=self.name, role=role, image=image, version=version, **values)
        return self.run(steps.MIGRATE.name, *args, stdin=stdin)

    # --- what the server shows ---

    def host(self, role: str) -> str:
        return f"{role}.{self.name}.test"

    def load(self, role: str) -> Load:
        return Load(self.http_port, self.host(role))

    def get(self, role: str, *, port: int | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port or self.http_port, timeout=5)
        try:
            connection.request("GET", "/", headers={"Host": self.host(role)})
            reply = connection.getresponse()
            return reply.status, reply.read().decode()
        finally:
            connection.close()

    def container(self, role: str, version: str) -> str:
        return container_name(self.name, role, version)

    def containers(self, role: str) -> dict[str, str]:
        """name → state of the role's containers."""
        listing = docker(
            "ps", "--all", "--filter", f"label=quayside.service={self.name}", "--filter", f"label=quayside.role={role}",
            "--format", "{{.Names}} {{.State}}",
        )  # fmt: skip
        return dict(line.split() for line in listing.splitlines())

    def container_ids(self) -> list[str]:
        return docker("ps", "--all", "--quiet", "--no-trunc", "--filter", f"label=quayside.service={self.name}").split()

    def proxy_routes(self) -> str:
        return re.sub(r"\x1b\[[0-9;]*m", "", docker("exec", self.proxy, "kamal-proxy", "list"))

    def audit(self) -> list[str]:
        done = self.server.run(shlex.join(["cat", f"{REMOTE_ROOT}/{self.name}/audit.log"]), check=False)
        return done.stdout.splitlines()

    def audit_events(self) -> list[tuple[str, str, str]]:
        """(role, version, event) of each audit line."""
        events = []
        for line in self.audit():
            _time, role, version, event, *_detail = line.split()
            events.append((role, version, event))
        return events

    def remove_everything(self) -> None:
        ids = docker("ps", "--all", "--quiet", "--filter", f"label=quayside.service={self.name}").split()
        roles = set(docker("ps", "--all", "--filter", f"label=quayside.service={self.name}",
                           "--format", '{{.Label "quayside.role"}}').split())  # fmt: skip
        docker("rm", "--force", self.proxy, *ids, check=False)
        docker("network", "rm", self.name, fixed_network(self.name), self.proxy_network, check=False)
        docker("volume", "rm", self.state_volume, check=False)
        for image in self.extra_images:
            docker("image", "rm", image, check=False)
        claims = [f"{REMOTE_ROOT}/routes.d/{self.name}-{role}" for role in roles]
        self.server.run(
            shlex.join(["rm", "-rf", f"{REMOTE_ROOT}/{self.name}", f"{REMOTE_ROOT}/{self.proxy}.lock", *claims]),
            check=False,
        )


def new_service(server: TestServer, prefix: str = "qs", *, name: str | None = None) -> Service:
    name = name or unique_name(prefix)
    service = Service(
        server, name, f"{name}-proxy", f"{name}-proxy-state", free_loopback_port(), free_loopback_port(),
        proxy_network=f"0-{name}-proxy",
    )  # fmt: skip
    install_scripts(server, name)
    return service


def share_proxy(owner: Service, guest: Service) -> None:
    """The guest service joins the owner's proxy, as a second service on the same server does."""
    assert guest.run("host.sh", "--service", guest.name, "--stack-id", uuid.uuid4().hex).returncode == 0
    guest.proxy, guest.http_port, guest.https_port = owner.proxy, owner.http_port, owner.https_port
    guest.state_volume, guest.proxy_network = owner.state_volume, owner.proxy_network
    booted = guest.boot_proxy()
    assert booted.returncode == 0, booted.stderr


def prepare(service: Service) -> None:
    host = service.run(steps.HOST.name, *steps.HOST.argv(service=service.name, stack_id=uuid.uuid4().hex))
    assert host.returncode == 0, host.stderr
    booted = service.boot_proxy()
    assert booted.returncode == 0, booted.stderr


@pytest.fixture(scope="session")
def daemon_json_left_as_found() -> Iterator[None]:
    """host.sh writes /etc/docker/daemon.json when it is absent; take it away again if it was."""
    existed = DAEMON_JSON.exists()
    yield
    if not existed:
        DAEMON_JSON.unlink(missing_ok=True)


@pytest.fixture
def bare_service(test_server: TestServer, daemon_json_left_as_found: None) -> Iterator[Service]:
    """Scripts installed; nothing run yet."""
    service = new_service(test_server)
    try:
        yield service
    finally:
        service.remove_everything()


@pytest.fixture
def service(bare_service: Service) -> Service:
    """Host prepared and the proxy booted: ready for swaps."""
    prepare(bare_service)
    return bare_service


@pytest.fixture
def other_service(test_server: TestServer, daemon_json_left_as_found: None) -> Iterator[Service]:
    """A second service on the same server, for tests about what must stay untouched."""
    service = new_service(test_server)
    try:
        yield service
    finally:
        service.remove_everything()


@pytest.fixture
def namesake(test_server: TestServer, service: Service) -> Iterator[Service]:
    """Service `<service>-b` on the same server and kamal-proxy: its role web asks for the route name
    `<service>-b-web`, as the service's role b-web does."""
    guest = new_service(test_server, name=f"{service.name}-b")
    try:
        share_proxy(service, guest)
        yield guest
    finally:
        guest.remove_everything()


def derived_image(tag: str, dockerfile: str) -> str:
    """A small image built FROM a test image (no network): distinct IDs, or a HEALTHCHECK the base lacks."""
    done = subprocess.run(
        ["docker", "build", "--quiet", "--tag", tag, "-"], input=dockerfile, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return tag
