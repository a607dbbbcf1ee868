"""A quayside stack on several servers of the multi-host test bed, for e2e tests through the real engine: each bed
host an `existing` server of `servers:`, reached at its address as deploys reach any server, and what each host
shows of the service (its containers, its proxy's answers, over SSH and HTTP at its address).

    stack = SeveralStack.create(tmp_path, host_bed, unique_service("multi"))
    stack.up()
    stack.roles["web"]["image"] = stack.image("v2")          # then stack.up() again: a new version of web
    stack.get("web", "app-1")                               # (status, first word) from app-1's proxy
"""

from __future__ import annotations

import http.client
import json
import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Self

from pulumi import automation as auto

from tests.support.hosts import HostBed, TestHost
from tests.support.load import Load
from tests.support.pulumi_engine import QuaysideProject, secret
from tests.support.stacks import PROXY, STACK, Events
from tests.support.testbed import registry_address

# The bed's hosts by the server names the stacks give them.
SERVER_NAMES: Final = ("app-1", "app-2", "db")
PROXY_PORT: Final = 80
POSTGRES_PASSWORD: Final = "multi-host-password"


@dataclass
class SeveralStack:
    """A service on the bed's hosts; `config` is its stack file, editable; `hosts` the bed's host of each server."""

    project: QuaysideProject
    service: str
    config: dict[str, Any]
    hosts: dict[str, TestHost]
    registry: str

    @classmethod
    def create(cls, directory: Path, bed: HostBed, service: str) -> Self:
        hosts = dict(zip(SERVER_NAMES, bed.hosts, strict=False))
        # The loopback registry's name: each host forwards its own 127.0.0.1:5000 to it, and quayside reads a
        # loopback registry's digests over plain HTTP, as Docker pulls from one.
        stack = cls(QuaysideProject.create(directory), service, {}, hosts, registry_address())
        stack.config = stack.initial_config()
        for host in hosts.values():
            stack.remove_leftovers(host)
        return stack

    def image(self, tag: str, repository: str = "quayside-test/app") -> str:
        return f"{self.registry}/{repository}:{tag}"

    def host_name(self, role: str) -> str:
        return f"{role}.{self.service}.test"

    def initial_config(self) -> dict[str, Any]:
        """web on app-1 and app-2 (one at a time), backend on both with a migration, api on app-2, Postgres on db
        with a worker beside the apps that queries it over the private network."""
        servers = {name: {**host.server_config(), "private_ip": host.address} for name, host in self.hosts.items()}
        app = {"health": {"path": "/up", "interval": "500ms"}, "deploy_timeout": "20s", "drain_timeout": "5s"}
        return {
            "quayside:service": self.service,
            "quayside:servers": servers,
            "quayside:proxy": {"image": f"{self.registry}/quayside-test/kamal-proxy", "version": "v0.9.2"},
            "quayside:roles": {
                "web": {**app, "image": self.image("v1"), "servers": ["app-1", "app-2"], "boot": {"limit": 1},
                        "hosts": [self.host_name("web")]},
                "backend": {**app, "image": self.image("v2"), "servers": ["app-1", "app-2"],
                            "hosts": [self.host_name("backend")], "migrate": ["/bin/busybox", "echo", "migrated"]},
                "api": {**app, "image": self.image("v3"), "servers": ["app-2"], "hosts": [self.host_name("api")]},
                "worker": {
                    "image": self.image("15", "quayside-test/postgres"), "proxy": False, "servers": ["app-1"],
                    "readiness_delay": 1, "env": {"secret": ["DATABASE_URL"]},
                    "cmd": ["sh", "-c", 'until psql "$DATABASE_URL" -Atc "select 40 + 2"; do sleep 0.5; done; '
                                        "exec sleep infinity"],
                },
            },
            "quayside:accessories": {
                "postgres": {"server": "db", "image": self.image("15", "quayside-test/postgres")},
            },
        }  # fmt: skip

    def stack(self) -> auto.Stack:
        handle = self.project.stack(STACK, self.config)
        if "postgres" in self.config.get("quayside:accessories", {}):
            handle.set_config("quayside:postgres_password", secret(POSTGRES_PASSWORD))
        return handle

    def up(self, events: Events | None = None) -> auto.UpResult:
        return self.stack().up(color="never", on_event=events.record if events is not None else None)

    def preview(self, events: Events | None = None) -> auto.PreviewResult:
        return self.stack().preview(color="never", on_event=events.record if events is not None else None)

    def destroy(self) -> None:
        try:
            self.stack().destroy(color="never")
        finally:
            for host in self.hosts.values():
                self.remove_leftovers(host)

    @property
    def roles(self) -> dict[str, Any]:
        roles: dict[str, Any] = self.config["quayside:roles"]
        return roles

    # --- what each host shows ---

    def containers(self, server: str, role: str) -> dict[str, str]:
        """name → state of one role's containers on one server."""
        listing = self.hosts[server].run(shlex.join([
            "docker", "ps", "--all", "--filter", f"label=quayside.service={self.service}",
            "--filter", f"label=quayside.role={role}", "--format", "{{.Names}} {{.State}}",
        ])).stdout  # fmt: skip
        return dict(line.split() for line in listing.splitlines())

    def get(self, role: str, server: str) -> tuple[int, str]:
        """(status, first word of the body) of GET / for the role's host name, from the server's proxy."""
        connection = http.client.HTTPConnection(self.hosts[server].address, PROXY_PORT, timeout=10)
        try:
            connection.request("GET", "/", headers={"Host": self.host_name(role)})
            reply = connection.getresponse()
            words = reply.read().decode(errors="replace").split()
            return reply.status, words[0] if words else ""
        finally:
            connection.close()

    def load(self, role: str, server: str, workers: int = 2) -> Load:
        return Load(PROXY_PORT, self.host_name(role), workers=workers, address=self.hosts[server].address)

    def proxy_log(self, server: str, role: str, message: str) -> list[datetime]:
        """When the server's kamal-proxy logged `message` (Deploying, Deployed) for the role's route, oldest first."""
        lines = self.logs(server, PROXY).splitlines()
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        route = f"{self.service}-{role}"
        return [
            datetime.fromisoformat(entry["time"])
            for entry in entries
            if entry.get("msg") == message and entry.get("service") == route
        ]

    def switched_at(self, role: str, server: str) -> datetime:
        return self.proxy_log(server, role, "Deployed")[-1]

    def deploy_began_at(self, role: str, server: str) -> datetime:
        return self.proxy_log(server, role, "Deploying")[-1]

    def logs(self, server: str, container: str) -> str:
        done = self.hosts[server].run(shlex.join(["docker", "logs", container]), check=False)
        return done.stdout + done.stderr

    def remove_leftovers(self, host: TestHost) -> None:
        """What a killed run may have left on a host: the service's containers, network and directory."""
        script = (
            'ids=$(docker ps --all --quiet --filter "label=quayside.service=$1"); '
            '[ -z "$ids" ] || docker rm --force $ids >/dev/null; '
            'docker network rm "$1" >/dev/null 2>&1; rm -rf "/var/lib/quayside/$1"; true'
        )
        host.run(shlex.join(["sh", "-c", script, "leftovers", self.service]), check=False)
