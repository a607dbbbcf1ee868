"""quayside stacks on the loopback server, for e2e tests through the real engine: a stack file of the shape of
Pulumi.local.yaml under a service name of the test's own, and what the server shows of that service.

    stack = DemoStack.create(tmp_path, test_server, service="e2e-web")
    result = stack.up()                                   # pulumi up of __main__.py, through the language host
    stack.roles["web"]["image"] = registry_image("v2")    # then stack.up() again: a new version of web
"""

from __future__ import annotations

import copy
import hashlib
import http.client
import json
import os
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml
from pulumi import automation as auto

from components import config, image_pin
from tests.support import images, remote
from tests.support.docker import docker
from tests.support.load import Load, LoadReport
from tests.support.pulumi_engine import PULUMI_HOME, ROOT, QuaysideProject, pulumi_cli, secret
from tests.support.remote import settle
from tests.support.testbed import TestServer, registry_address

PROXY: Final = "quayside-proxy"
PROXY_PORT: Final = 80
REMOTE_ROOT: Final = Path("/var/lib/quayside")
STACK: Final = "e2e"


def unique_service(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def registry_image(tag: str) -> str:
    """The demo app as the local stack deploys it: pulled from the loopback registry."""
    return f"{registry_address()}/quayside-test/app:{tag}"


def registry_digest(tag: str, repository: str = images.APP) -> str:
    """The digest the loopback registry's `repository:tag` (the demo app's) names now, read from its manifest (as
    quayside pins it)."""
    accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    request = urllib.request.Request(
        f"http://{registry_address()}/v2/{repository}/manifests/{tag}", method="HEAD", headers={"Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(reply.headers["Docker-Content-Digest"])


def pinned_version(tag: str) -> str:
    """The version name of the demo app's `tag` once deployed: the tag and its digest's first 12 hex."""
    return f"{tag}@{registry_digest(tag).removeprefix('sha256:')[:12]}"


def container_name(service: str, role: str, tag: str) -> str:
    """The container a role deploying the demo app's `tag` runs as."""
    return remote.container_name(service, role, pinned_version(tag))


def made_up_digest(image: str) -> str:
    """A digest for an image the tests cannot reach (ghcr.io): the same for the same reference."""
    return hashlib.sha256(image.encode()).hexdigest()


def stack_config(values: Mapping[str, Any]) -> config.StackConfig:
    """A stack file's `quayside:` keys as the program validates them (its secrets not asked for)."""
    top_level = {key.split(":", 1)[1]: value for key, value in values.items() if key.startswith("quayside:")}
    return config.StackConfig.model_validate(top_level)


def pin_unreachable_images(values: dict[str, Any]) -> None:
    """A user's preview reads each tag's digest from its registry (ghcr.io and Docker Hub in the shipped stack
    files), which the tests cannot reach: each image a server would pull from elsewhere than loopback is pinned by a
    made-up digest in the config instead, as a reachable registry would pin it."""
    settings = stack_config(values)
    for key, ref in image_pin.pulled_images(settings, settings.roles).items():
        if image_pin.is_pinned(ref) or image_pin.is_loopback(image_pin.ImageName.parse(ref).registry):
            continue
        section, *path, last = key.split(".")
        node = values.setdefault(f"quayside:{section}", {})
        for name in path:
            node = node[name]
        digest = "sha256:" + made_up_digest(ref)
        if key == "proxy.image":
            node["digest"] = digest  # the proxy's image and tag are keys of their own
        else:
            node[last] = f"{ref}@{digest}"


def registry_postgres() -> str:
    """The Postgres test image on the loopback registry, which quayside pins by digest as it would postgres:16."""
    return f"{registry_address()}/{images.POSTGRES}"


def registry_pinned(image: str) -> str:
    """A test image (`repository:tag`) on the loopback registry, pinned by the digest its tag names there."""
    repository, tag = image.rsplit(":", 1)
    return f"{registry_address()}/{image}@{registry_digest(tag, repository)}"


def local_stack_config(test_server: TestServer, service: str) -> dict[str, Any]:
    """Pulumi.local.yaml's config under `service`, its hosts below `<service>.localhost`."""
    stack = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]
    renamed: dict[str, Any] = json.loads(json.dumps(stack).replace(".demo.localhost", f".{service}.localhost"))
    renamed["quayside:service"] = service
    renamed["quayside:server"]["private_key_file"] = str(test_server.private_key)
    renamed["quayside:server"]["host_key_file"] = str(test_server.host_key_file)
    return renamed


def get(url: str) -> tuple[int, str]:
    """(status, first word of the body) of GET url, sent to the loopback proxy with the URL's host."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port or PROXY_PORT, timeout=10)
    try:
        connection.request("GET", parts.path or "/", headers={"Host": parts.netloc})
        reply = connection.getresponse()
        words = reply.read().decode(errors="replace").split()
        return reply.status, words[0] if words else ""
    finally:
        connection.close()


def service_containers(service: str, *filters: str) -> list[str]:
    """IDs of the service's containers (all states; more `docker ps` filters narrow it)."""
    return docker("ps", "--all", "--quiet", "--filter", f"label=quayside.service={service}", *filters).split()


def container_states(service: str, role: str) -> dict[str, str]:
    """name → state of one role's containers."""
    listing = docker(
        "ps", "--all", "--filter", f"label=quayside.service={service}", "--filter", f"label=quayside.role={role}",
        "--format", "{{.Names}} {{.State}}",
    )  # fmt: skip
    return dict(line.split() for line in listing.splitlines())


def proxy_routes() -> list[str]:
    """The services kamal-proxy routes (first column of `kamal-proxy list`)."""
    listing = re.sub(r"\x1b\[[0-9;]*m", "", docker("exec", PROXY, "kamal-proxy", "list", check=False))
    return [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]


@dataclass(frozen=True)
class ProxyDeploy:
    """One `kamal-proxy deploy` of a route, from kamal-proxy's log: when it began, and when traffic switched."""

    began: datetime
    switched: datetime


def proxy_deploys(service: str, since: datetime) -> dict[str, ProxyDeploy]:
    """Role → the last deploy of its route (<service>-<role>) kamal-proxy logged since `since` (UTC)."""
    lines = docker("logs", "--since", since.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), PROXY).splitlines()
    began: dict[str, datetime] = {}
    deploys: dict[str, ProxyDeploy] = {}
    for line in lines:
        entry = json.loads(line) if line.startswith("{") else {}
        route = str(entry.get("service", ""))
        if entry.get("msg") not in ("Deploying", "Deployed") or not route.startswith(f"{service}-"):
            continue
        role, at = route.removeprefix(f"{service}-"), datetime.fromisoformat(entry["time"])
        if entry["msg"] == "Deploying":
            began[role] = at
        elif role in began:
            deploys[role] = ProxyDeploy(began[role], at)
    return deploys


def remove_leftovers(service: str) -> None:
    """A run killed half-way may have left containers of the test's service: tests start from empty."""
    leftovers = service_containers(service)
    if leftovers:
        docker("rm", "--force", *leftovers)


def sql(demo: DemoStack, statement: str) -> str:
    """psql as the service's user inside its Postgres container."""
    user = demo.service.replace("-", "_")
    argv = ["docker", "exec", f"{demo.service}-postgres", "psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-tA",
            "-U", user, "-d", user, "-c", statement]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def changes(summary: Mapping[str, int] | Mapping[auto.OpType, int] | None) -> set[str]:
    """The ops of a preview's or update's summary that change something: all but `same`, and `read` (the drift
    check reads the stack's own outputs when a server cannot be read)."""
    return {op.value if isinstance(op, auto.OpType) else op for op in summary or {}} - {"same", "read"}


@dataclass
class Events:
    """What the engine did to each resource in one update: its op (create, update, replace, same, delete, ...)."""

    ops: dict[str, list[str]] = field(default_factory=dict)

    def record(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None and pre.metadata is not None:
            name = pre.metadata.urn.rsplit("::", 1)[-1]
            self.ops.setdefault(name, []).append(str(pre.metadata.op.value))

    def changed(self) -> dict[str, list[str]]:
        """Resource name → ops, for every resource the update did something to (a read, as of the stack's own
        outputs for the drift check, changes nothing)."""
        return {name: ops for name, ops in self.ops.items() if set(ops) - {"same", "read"}}


@dataclass
class DemoStack:
    """A quayside stack of its own service on the loopback server; `config` is its stack file, editable."""

    project: QuaysideProject
    service: str
    config: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, directory: Path, test_server: TestServer, service: str) -> DemoStack:
        remove_leftovers(service)
        return cls(QuaysideProject.create(directory), service, local_stack_config(test_server, service))

    @property
    def roles(self) -> dict[str, Any]:
        roles: dict[str, Any] = self.config["quayside:roles"]
        return roles

    def stack(self) -> auto.Stack:
        """Writes the current config (and secrets) and selects the stack."""
        handle = self.project.stack(STACK, self.config)
        for key, value in self.secrets.items():
            handle.set_config(f"quayside:{key}", secret(value))
        return handle

    def up(self, events: Events | None = None) -> auto.UpResult:
        """`pulumi up`, then waits for the old containers it left stopping in the background."""
        on_event = events.record if events is not None else None
        try:
            return self.stack().up(color="never", on_event=on_event)
        finally:
            self.settle()

    def failed_up_under_load(self, role: str) -> tuple[str, LoadReport]:
        """A `pulumi up` that must fail, with load on the role's host from before it starts until 100 responses after
        it ends; returns its message and the load's report."""
        with self.load(role) as load:
            load.wait_for_requests(100)
            try:
                self.up()
            except auto.errors.CommandError as failed:
                message = str(failed)
            else:
                raise AssertionError(f"pulumi up of {self.service} succeeded; it was to fail")
            load.wait_for_requests(load.report.total + 100)
        return message, load.report

    def settle(self) -> None:
        settle(TestServer.from_testbed(), self.service)

    def preview(self, events: Events | None = None) -> auto.PreviewResult:
        on_event = events.record if events is not None else None
        return self.stack().preview(color="never", on_event=on_event)

    def destroy(self) -> auto.DestroyResult:
        return self.stack().destroy(color="never")

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.config)

    def host(self, role: str) -> str:
        return f"{role}.{self.service}.localhost"

    def load(self, role: str, workers: int = 4) -> Load:
        return Load(PROXY_PORT, self.host(role), workers=workers)

    def get(self, role: str) -> tuple[int, str]:
        return get(f"http://{self.host(role)}/")

    @property
    def service_dir(self) -> Path:
        return REMOTE_ROOT / self.service

    def rollback(self, *args: str, path_first: Path | None = None) -> subprocess.CompletedProcess[str]:
        """`quayside -s e2e rollback ARGS` in the stack's project directory, with the stack's backend (and
        `path_first` ahead of the Pulumi CLI on PATH)."""
        cli_dir = str(pulumi_cli().parent)
        env = {**os.environ, **self.project.env(), "PULUMI_HOME": str(PULUMI_HOME)}
        env["PATH"] = os.pathsep.join([*([str(path_first)] if path_first else []), cli_dir, env["PATH"]])
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / "quayside"), "-s", STACK, "rollback", *args],
            cwd=self.project.work_dir, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    def audit(self) -> list[str]:
        """The service's audit log: `<time> <role> <version> <event> <detail>` lines."""
        path = self.service_dir / "audit.log"
        return path.read_text().splitlines() if path.exists() else []
