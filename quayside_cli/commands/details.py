"""`quayside details`: per role its live version, container, health, URLs and the retained versions a rollback can
use; the service's proxy routes; its accessories and their state. One remote step (details.sh) gathers the facts;
this module lays them out. On a stack of several servers details.sh runs on each at once and every row names its
server (a role on two servers is two rows); a server that does not answer is one line naming it and its address,
and the others are shown still (the exit code is 1 then)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from typing import Any, Final

from components import defaults, steps
from quayside_cli import progress
from quayside_cli.commands.common import Verbs, add, capture_each, connect, connect_each, open_stack, table
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import script
from quayside_cli.stack import NAMESPACE, Stack, object_value

TIMEOUT_SECONDS: Final = 60
STOPPED: Final = frozenset({"exited", "created"})
TARGET: Final = re.compile(r":\d+$")


@dataclass(frozen=True)
class Container:
    role: str
    accessory: str
    version: str
    state: str
    health: str
    id: str
    name: str
    started: str
    finished: str
    image: str
    memory_limit: int = 0  # bytes; 0: no limit
    memory_used: int | None = None  # bytes, while it runs (a server's scripts from before this was shown: None)


@dataclass(frozen=True)
class Route:
    service: str
    host: str
    path: str
    target: str
    state: str
    tls: str


@dataclass(frozen=True)
class Facts:
    """What details.sh told of one server; `canaries`: each role's canary, in words (v2 for 10%, staff-1)."""

    containers: list[Container]
    routes: list[Route]
    canaries: dict[str, str]
    # On a load balancer's server (balancer.sh check): ROLE, TARGET and what its health path answers now.
    targets: list[tuple[str, str, str]] = field(default_factory=list)
    memory_available: int | None = None  # bytes
    # The container (its short ID) at each fixed address, which kamal-proxy's targets name.
    addresses: dict[str, str] = field(default_factory=dict)


def parse(text: str) -> Facts:
    """details.sh's lines: `container<TAB>...` (12 fields; 10 from a server's scripts before memory was shown),
    `route<TAB><cells of kamal-proxy list>`, `address<TAB>ID<TAB>ADDRESS`,
    `canary<TAB>ROLE<TAB>VERSION<TAB>PERCENT<TAB>VALUE,VALUE` and `memory<TAB>AVAILABLE`."""
    containers: list[Container] = []
    routes: list[Route] = []
    canaries: dict[str, str] = {}
    targets: list[tuple[str, str, str]] = []
    available: int | None = None
    addresses: dict[str, str] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        cells = rest.split("\t")
        if kind == "container" and len(cells) in (10, 12):
            role, accessory, version, state, health, full_id, name, started, finished, image = cells[:10]
            limit, used = [*cells[10:], "0", "-"][:2]
            short, bare = full_id[:12], name.lstrip("/")
            containers.append(Container(
                role, accessory, version, state, health, short, bare, started, finished, image,
                int(limit) if limit.isdigit() else 0, int(used) if used.isdigit() else None,
            ))  # fmt: skip
        elif kind == "route":
            route = parse_route(cells)
            if route is not None:
                routes.append(route)
        elif kind == "canary" and len(cells) == 4:
            role, version, percent, allow = cells
            share = f"{percent}%" if percent != "0" else ""
            canaries[role] = f"{version} for " + ", ".join(part for part in (share, allow.replace(",", ", ")) if part)
        elif kind == "target" and len(cells) == 3:
            role, target, status = cells
            targets.append((role, target, target_health(status)))
        elif kind == "memory" and cells[0].isdigit():
            available = int(cells[0])
        elif kind == "address" and len(cells) == 2:
            addresses[cells[1]] = cells[0]
    return Facts(containers, routes, canaries, targets, available, addresses)


def size_words(size: int) -> str:
    """Bytes for people, as lib.sh's size_words says them: 1.5 GiB, 300 MiB."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size // 2**20} MiB"


def memory(container: Container | None) -> str:
    """What a container uses of its limit: `12 MiB of 512 MiB`, `12 MiB, no limit`; `-` when not running."""
    if container is None or container.memory_used is None:
        return "-"
    used = size_words(container.memory_used)
    return f"{used} of {size_words(container.memory_limit)}" if container.memory_limit else f"{used}, no limit"


def target_health(status: str) -> str:
    """What a load balancer makes of a target's answer: kamal-proxy counts 2xx as healthy."""
    return f"healthy ({status})" if status.startswith("2") else f"failing ({status})"


def parse_route(cells: list[str]) -> Route | None:
    """A row of `kamal-proxy list` (Service Host Path Target State TLS); the host is absent for a catch-all route."""
    cells = [cell for cell in cells if cell]
    at = next((i for i, cell in enumerate(cells) if TARGET.search(cell)), None)
    if at is None or at < 1:
        return None
    between = cells[1:at]
    host, path = ([*between, "", ""])[:2] if len(between) != 1 else ("*", between[0])
    after = [*cells[at + 1 :], "", ""]
    return Route(cells[0], host or "*", path or "/", cells[at], after[0], after[1])


def route_of(service: str, role: str, routes: list[Route]) -> Route | None:
    return next((route for route in routes if route.service == f"{service}-{role}"), None)


def live_of(service: str, role: str, facts: Facts) -> Container | None:
    """The container kamal-proxy routes the role to (its target names the container's fixed address, or its ID when
    it was routed before containers had one), else (a role without the proxy) its running one."""
    mine = [container for container in facts.containers if container.role == role]
    route = route_of(service, role, facts.routes)
    if route is not None:
        host = route.target.rsplit(":", 1)[0]
        target = facts.addresses.get(host, host)
        return next((container for container in mine if container.id.startswith(target)), None)
    return next((container for container in mine if container.state == "running"), None)


def rollback_versions(role: str, containers: list[Container], live: Container | None) -> list[str]:
    """Versions of the role's retained (stopped) containers, newest stop first, without the live one."""
    stopped = sorted(
        (c for c in containers if c.role == role and c.state in STOPPED), key=lambda c: c.finished, reverse=True
    )
    found: list[str] = []
    for container in stopped:
        if container.version not in found and (live is None or container.version != live.version):
            found.append(container.version)
    return found


def health(container: Container | None, route: Route | None) -> str:
    if container is None:
        return "-"
    if container.health != "-":
        return container.health
    if route is not None:
        return {"running": "serving", "stopped": "maintenance (503)", "paused": "paused"}.get(route.state, route.state)
    return container.state


def role_row(service: str, name: str, output: dict[str, Any], facts: Facts) -> list[str]:
    """VERSION, CONTAINER, STATE, HEALTH, ROLLBACK TO and URLS of a role on one server."""
    containers, routes = facts.containers, facts.routes
    live = live_of(service, name, facts)
    version = live.version if live else "none live"
    if name in facts.canaries:
        version += f" (canary {facts.canaries[name]})"
    elif live and output.get("version") and output["version"] != live.version:
        version += f" (stack: {output['version']})"
    return [
        version, f"{live.name} ({live.id})" if live else "-", live.state if live else "-",
        health(live, route_of(service, name, routes)),
        ", ".join(rollback_versions(name, containers, live)) or "-",
        " ".join(output.get("urls") or []) or "-", memory(live),
    ]  # fmt: skip


def role_rows(service: str, roles: dict[str, dict[str, Any]], facts: Facts) -> list[list[str]]:
    return [[name, *role_row(service, name, output, facts)] for name, output in roles.items()]


def accessory_row(name: str, containers: list[Container]) -> list[str]:
    found = next((c for c in containers if c.accessory == name), None)
    if found is None:
        return ["-", "missing", "-", "-", "-"]
    return [found.name, found.state, found.health, found.image, memory(found)]


def available_words(where: str, facts: Facts) -> str:
    return f"{where}: {size_words(facts.memory_available)}" if facts.memory_available is not None else f"{where}: -"


ROLE_HEADER: Final = ("ROLE", "VERSION", "CONTAINER", "STATE", "HEALTH", "ROLLBACK TO", "URLS", "MEMORY")
ROUTE_HEADER: Final = ("ROUTE", "HOST", "PATH", "TARGET", "STATE", "TLS")
ACCESSORY_HEADER: Final = ("ACCESSORY", "CONTAINER", "STATE", "HEALTH", "IMAGE", "MEMORY")
BALANCER_HEADER: Final = ("BALANCED ROLE", "BALANCER", "TARGET", "HEALTH NOW")


def render(stack: Stack, facts: Facts) -> list[str]:
    service, ssh = stack.service, stack.ssh
    lines = [f"stack {stack.name}: service {service} on {ssh.user}@{ssh.host}:{ssh.port}", ""]
    lines += table(ROLE_HEADER, role_rows(service, stack.roles, facts))
    route_rows = [[r.service, r.host, r.path, r.target, r.state, r.tls] for r in facts.routes] or [["-"] * 6]
    lines += ["", *table(ROUTE_HEADER, route_rows)]
    accessories = [[name, *accessory_row(name, facts.containers)] for name in stack.accessories]
    if accessories:
        lines += ["", *table(ACCESSORY_HEADER, accessories)]
    return [*lines, "", f"memory available on {available_words(ssh.host, facts)}"]


def with_server(header: tuple[str, ...]) -> list[str]:
    """A table's header with a SERVER column after the first."""
    return [header[0], "SERVER", *header[1:]]


def render_servers(stack: Stack, facts: dict[str, Facts], silent: dict[str, str]) -> list[str]:
    """The tables of a stack of several servers, a SERVER column in each; `silent`: the line of each server that did
    not answer (its rows are left out)."""
    service = stack.service
    where = ", ".join(f"{name} ({e.user}@{e.host}:{e.port})" for name, e in stack.servers.items())
    lines = [f"stack {stack.name}: service {service} on {len(stack.servers)} servers: {where}", *silent.values(), ""]
    rows = [
        [name, server, *role_row(service, name, output, facts[server])]
        for name, output in stack.roles.items()
        for server in stack.role_servers(name)
        if server in facts
    ]
    lines += table(with_server(ROLE_HEADER), rows or [["-"] * 9])
    routes = [
        [r.service, server, r.host, r.path, r.target, r.state, r.tls] for server in facts for r in facts[server].routes
    ]
    lines += ["", *table(with_server(ROUTE_HEADER), routes or [["-"] * 7])]
    accessories = []
    for name in stack.accessories:
        server = stack.accessory_server(name)
        if server in facts:
            accessories.append([name, server, *accessory_row(name, facts[server].containers)])
    if accessories:
        lines += ["", *table(with_server(ACCESSORY_HEADER), accessories)]
    targets = [[role, server, target, said] for server in facts for role, target, said in facts[server].targets]
    if targets:
        lines += ["", *table(BALANCER_HEADER, targets)]
    return [*lines, "", "memory available on " + ", ".join(available_words(name, facts[name]) for name in facts)]


def balancer_checks(stack: Stack) -> tuple[str, str] | None:
    """(the load balancer's server, balancer.sh check of each proxied role there), for a stack with a kamal-proxy
    load balancer; each role's health path and hostname are the stack config's."""
    balancer = stack.outputs.get("load_balancer") or {}
    if not balancer.get("server"):
        return None
    roles = object_value(stack.config.get(f"{NAMESPACE}:roles"))
    commands = []
    for name in balancer.get("targets") or {}:
        role = roles.get(name) or {}
        argv = steps.BALANCER.argv(
            "check", service=stack.service, role=name, proxy_name=defaults.PROXY_CONTAINER,
            health_path=(role.get("health") or {}).get("path") or "/up", host=role.get("hosts") or [],
        )  # fmt: skip
        commands.append(script(stack.service, steps.BALANCER.name, argv, timeout_seconds=TIMEOUT_SECONDS))
    return str(balancer["server"]), "; ".join(commands)


def details_command(service: str) -> str:
    argv = steps.DETAILS.argv(service=service, proxy_name=defaults.PROXY_CONTAINER)
    return script(service, steps.DETAILS.name, argv, timeout_seconds=TIMEOUT_SECONDS)


def run(args: argparse.Namespace) -> int:
    stack = open_stack(args)
    if stack.several_servers:
        return run_servers(stack)
    command = details_command(stack.service)
    with connect(stack) as server, progress.step(f"asking {stack.ssh.host} about {stack.service}"):
        done = server.capture(command, timeout=TIMEOUT_SECONDS + 30)
    if done.returncode != 0:
        raise QuaysideError(f"stack {stack.name}: details.sh failed on the server: {done.stderr.strip()}")
    print("\n".join(render(stack, parse(done.stdout))))
    return 0


def run_servers(stack: Stack) -> int:
    """details.sh on every server at once; one that does not answer is a line, the others are shown."""
    servers = list(stack.servers)
    with (
        connect_each(stack, servers) as connections,
        progress.step(f"asking {len(servers)} servers about {stack.service}"),
    ):
        checks = balancer_checks(stack)

        def command(server: str) -> str:
            details = details_command(stack.service)
            return f"{details}; {checks[1]}" if checks is not None and server == checks[0] else details

        answers = capture_each(connections, command, timeout=TIMEOUT_SECONDS + 30)
    facts: dict[str, Facts] = {}
    silent: dict[str, str] = {}
    for name, answer in answers.items():
        if isinstance(answer, QuaysideError):
            silent[name] = str(answer)
        elif answer.returncode != 0:
            address = stack.servers[name].host
            said = answer.stderr.strip().splitlines()[-1:] or [f"exit code {answer.returncode}"]
            silent[name] = f"stack {stack.name}: details.sh failed on {name} ({address}): {said[0]}"
        else:
            facts[name] = parse(answer.stdout)
    print("\n".join(render_servers(stack, facts, silent)))
    return 1 if silent else 0


def register(verbs: Verbs) -> None:
    add(verbs, "details", run, "the live version, container, health and URLs of each role, rollback candidates, "
        "proxy routes and accessories")  # fmt: skip
