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
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Self

from pulumi import automation as auto

from tests.support.hosts import HostBed, TestHost
from tests.support.load import Load
from tests.support.pulumi_engine import PULUMI_HOME, ROOT, QuaysideProject, pulumi_cli, secret
from tests.support.remote import fixed_network
from tests.support.stacks import PROXY, STACK, Events
from tests.support.testbed import registry_address

# The bed's hosts by the server names the stacks give them.
SERVER_NAMES: Final = ("app-1", "app-2", "db")
PROXY_PORT: Final = 80
POSTGRES_PASSWORD: Final = "multi-host-password"
# A proxied role's timings: checked every 500 ms, so a swap (or a balancer) sees it ready, or failing, quickly.
APP: Final = {"health": {"path": "/up", "interval": "500ms"}, "deploy_timeout": "20s", "drain_timeout": "5s"}


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
        app = APP
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

    def quayside(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `quayside` command of this checkout on the stack, as a user's shell runs it."""
        env = {**os.environ, **self.project.env(), "PULUMI_HOME": str(PULUMI_HOME), "PYTHONPATH": str(ROOT)}
        env["PATH"] = f"{pulumi_cli().parent}{os.pathsep}{env.get('PATH', '')}"
        argv = [sys.executable, "-m", "quayside_cli", "-s", STACK, "--cwd", str(self.project.work_dir), *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)

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

    def load(self, role: str, server: str, workers: int = 2, *, retry_closed_keep_alive: bool = False) -> Load:
        """Load on the role's host name at the server's proxy (`retry_closed_keep_alive`: as Load's)."""
        address = self.hosts[server].address
        return Load(
            PROXY_PORT, self.host_name(role), workers=workers, address=address,
            retry_closed_keep_alive=retry_closed_keep_alive,
        )  # fmt: skip

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
        """What a killed run may have left on a host: the service's containers, networks (the proxy taken off them)
        and directory."""
        script = (
            'ids=$(docker ps --all --quiet --filter "label=quayside.service=$1"); '
            '[ -z "$ids" ] || docker rm --force $ids >/dev/null; '
            'for net in "$1" "$2"; do docker network disconnect --force "$net" "$3" >/dev/null 2>&1; done; '
            'docker network rm "$1" "$2" >/dev/null 2>&1; rm -rf "/var/lib/quayside/$1"; true'
        )
        service, fixed = self.service, fixed_network(self.service)
        host.run(shlex.join(["sh", "-c", script, "leftovers", service, fixed, PROXY]), check=False)


class BalancedStack(SeveralStack):
    """web on app-1 and app-2 (one at a time), api on app-1, the balancer on the third host, named lb here."""

    def initial_config(self) -> dict[str, Any]:
        hosts = self.hosts
        servers = {name: {**host.server_config(), "private_ip": host.address} for name, host in hosts.items()}
        return {
            "quayside:service": self.service,
            "quayside:servers": {("lb" if name == "db" else name): server for name, server in servers.items()},
            "quayside:load_balancer": {"provider": "kamal-proxy", "server": "lb"},
            "quayside:proxy": {"image": f"{self.registry}/quayside-test/kamal-proxy", "version": "v0.9.2"},
            "quayside:roles": {
                "web": {**APP, "image": self.image("v1"), "servers": ["app-1", "app-2"], "boot": {"limit": 1},
                        "hosts": [self.host_name("web")]},
                "api": {**APP, "image": self.image("v3"), "servers": ["app-1"], "hosts": [self.host_name("api")]},
            },
        }  # fmt: skip

    @property
    def balancer(self) -> TestHost:
        return self.hosts["db"]

    def through_balancer(self, role: str) -> tuple[int, str, str]:
        """(status, version, the answering container's hostname) of GET / through the balancer."""
        connection = http.client.HTTPConnection(self.balancer.address, PROXY_PORT, timeout=10)
        try:
            connection.request("GET", "/", headers={"Host": self.host_name(role)})
            reply = connection.getresponse()
            words = [*reply.read().decode(errors="replace").split(), "", ""]
            return reply.status, words[0], words[1]
        finally:
            connection.close()

    def answering(self, role: str, requests: int = 20) -> set[str]:
        """The containers (by hostname) that answered `requests` requests through the balancer."""
        answers = [self.through_balancer(role) for _ in range(requests)]
        assert {status for status, _, _ in answers} == {200}, answers
        return {container for _, _, container in answers}

    def container_of(self, role: str, server: str) -> str:
        """The hostname (short ID) of the role's running container on the server."""
        return (
            self.hosts[server]
            .run(
                f"docker ps --quiet --filter label=quayside.service={self.service} --filter label=quayside.role={role}"
            )
            .stdout.split()[0]
        )

    def state_of(self, server: str) -> str:
        """The server's containers and its proxy's routes, and the balancer's routes and last log lines."""
        listing = "docker ps --all --format '{{.Names}} {{.Status}}'; docker exec quayside-proxy kamal-proxy list"
        return "\n".join([
            f"{server}:", self.hosts[server].run(listing, check=False).stdout,
            "balancer:", self.balancer.run(listing + "; docker logs --tail 15 quayside-proxy 2>&1", check=False).stdout,
        ])  # fmt: skip

    def balanced_load(self, role: str) -> Load:
        return Load(PROXY_PORT, self.host_name(role), workers=3, address=self.balancer.address)
