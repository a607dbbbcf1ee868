"""Drift: a server found not serving what the stack recorded there; `pulumi up` heals it.

pulumi-command cannot refresh a command: Pulumi knows what the last `up` ran, not what serves now. So at `preview`
and `up` the program reads the stack's own outputs (a StackReference to itself: the version of each role as the last
successful `up` recorded it, and the parts each server runs, kamal-proxy and the accessories, each with its count of
heals) and asks the servers what serves there (serving.sh: one SSH session per server, all at once, only when a part
there is to be judged). A role whose servers do not all serve its recorded version (a rollback that was not recorded,
a container stopped or removed by hand), or a recorded part that does not run, has its count raised by one. The
count is an argument of its step (swap.sh, accessory.sh, proxy.sh --heal): the plan shows that step changed, with a
warning saying what was found, and `up` runs it, which puts the part back as that step always does. The outputs take
the new count once the step has succeeded, so the next run passes the same count and changes nothing.

A server that cannot be read (a pull request's preview with no route to it) is warned about and left unchecked: the
counts stay as recorded, and nothing changes because of it. A new version of a role is not checked: its swap runs
anyway.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
from pulumi_command import remote

from components import config, defaults, ssh, steps
from components import remote as commands
from components.server import WARNING_PREFIX

# serving.sh reads a few containers; a server slower than this to answer is not checked this run.
READ_SECONDS: Final = 20
# How long a preview waits for a server that does not answer at all (ssh's ConnectTimeout).
CONNECT_SECONDS: Final = 5
# bash's exit status for a script that is not there: a server deployed by a quayside from before the drift check.
SCRIPT_MISSING: Final = 127
# The stack outputs the recorded versions and counts are read from: the roles', and each server's other parts'.
ROLES_OUTPUT: Final = "roles"
PARTS_OUTPUT: Final = "heals"
# kamal-proxy's name among a server's parts (the accessories go by theirs).
PROXY: Final = "proxy"


@dataclass(frozen=True)
class Reading:
    """What serves on one server: the version of each role that serves there, and the other parts running (the
    accessories by name, kamal-proxy as PROXY); `error` when it could not be read."""

    versions: dict[str, str] = field(default_factory=dict)
    running: frozenset[str] = frozenset()
    error: str | None = None

    @classmethod
    def parse(cls, output: str) -> Reading:
        """serving.sh's lines: `role ROLE VERSION`, `accessory NAME`, `proxy`."""
        versions, running = {}, set()
        for line in output.splitlines():
            match line.split():
                case ["role", role, version]:
                    versions[role] = version
                case ["accessory", name]:
                    running.add(name)
                case ["proxy"]:
                    running.add(PROXY)
                case _:
                    return cls(error=f"serving.sh printed {line.strip()!r}, not a role, accessory or proxy line")
        return cls(versions, frozenset(running))


@dataclass(frozen=True)
class Recorded:
    """A role as the stack's outputs recorded it: the version its last successful `up` deployed, and its heals."""

    version: str | None = None
    heals: int = 0

    @classmethod
    def of(cls, roles: object, role: str) -> Recorded:
        """The role's entry of the `roles` output; a stack not deployed yet, or a role new to it, has none."""
        entry = roles.get(role) if isinstance(roles, dict) else None
        if not isinstance(entry, dict):
            return cls()
        version, heals = entry.get("version"), entry.get("heals")
        return cls(version if isinstance(version, str) else None, int(heals) if isinstance(heals, int | float) else 0)


@dataclass(frozen=True)
class Verdict:
    """The count a step runs with, and the warning that says what was found, when something drifted (a WARNING line
    of `quayside plan`: a reviewer sees drift first)."""

    heal: int
    warning: str | None = None


def named(server: str) -> str:
    """How a warning names a server: by its name in `servers`, or as the one server a stack with `server:` has."""
    return "the server" if server == config.ONE_SERVER else server


def judge(role: str, wanted: str, recorded: Recorded, readings: Mapping[str, Reading]) -> Verdict:
    """The role's verdict: its count raised by one when a server it is on does not serve `wanted`, which the stack
    recorded. A role whose version changes, or that was never deployed, is not judged: its swap runs anyway. A server
    that could not be read is not judged either (the read warned about it)."""
    if recorded.version != wanted:
        return Verdict(recorded.heals)
    drifted = {
        server: reading.versions.get(role)
        for server, reading in readings.items()
        if reading.error is None and reading.versions.get(role) != wanted
    }
    if not drifted:
        return Verdict(recorded.heals)
    heal = recorded.heals + 1
    found = ", ".join(f"{named(server)} serves {version or 'nothing'}" for server, version in drifted.items())
    return Verdict(
        heal,
        f"{WARNING_PREFIX}{role}: {found}, not {wanted} as the stack recorded: this update puts {wanted} back live "
        f"(heal {heal})",
    )


def recorded_part(parts: object, server: str, part: str) -> int | None:
    """The part's count of heals in the `heals` output, or None when the last `up` did not record it there."""
    on_server = parts.get(server) if isinstance(parts, dict) else None
    count = on_server.get(part) if isinstance(on_server, dict) else None
    return int(count) if isinstance(count, int | float) else None


def judge_part(part: str, server: str, recorded: int | None, reading: Reading) -> Verdict:
    """A server's part (kamal-proxy, an accessory): its count raised by one when the stack recorded it there and it
    does not run; one not recorded (new, or the stack not yet deployed) is not judged."""
    if recorded is None or reading.error is not None or part in reading.running:
        return Verdict(recorded or 0)
    heal = recorded + 1
    what = "kamal-proxy" if part == PROXY else part
    on = "running on the service's network" if part == PROXY else "running"
    return Verdict(
        heal,
        f"{WARNING_PREFIX}{what}: not {on} on {named(server)}, as the stack recorded it: this update starts it again "
        f"(heal {heal})",
    )


def read_server(endpoint: ssh.Endpoint, private_key: str, service: str) -> Reading:
    """serving.sh on the server, over SSH with the stack's key and pinned host key; a failure is a Reading's error."""
    command = commands.script(
        service, steps.SERVING.name, steps.SERVING.argv(service=service, proxy_name=defaults.PROXY_CONTAINER),
        timeout_seconds=READ_SECONDS,
    )  # fmt: skip
    try:
        with ssh.key_files(endpoint, private_key, prefix="quayside-drift-") as files:
            argv = ssh.argv(
                endpoint.host, endpoint.port, endpoint.user, files.key, files.known_hosts, command,
                connect_timeout=CONNECT_SECONDS,
            )  # fmt: skip
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=CONNECT_SECONDS + READ_SECONDS + 5,
                stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Reading(error=f"no answer from {endpoint.host} within {CONNECT_SECONDS + READ_SECONDS} s")
    except OSError as error:
        return Reading(error=f"ssh could not run: {error.strerror}")
    if done.returncode == SCRIPT_MISSING:
        return Reading(error="the server has no serving.sh yet: this `up` installs it")
    if done.returncode != 0:
        said = next((line.strip() for line in done.stderr.splitlines() if line.strip()), "")
        return Reading(error=said or f"serving.sh exited {done.returncode}")
    return Reading.parse(done.stdout)


ServerReader = Callable[[ssh.Endpoint, str, str], Reading]


class DriftCheck:
    """One per stack: its recorded outputs, and one read per server, made only when a part there is to be judged.
    Servers are added as the stack makes their connections (`add_server`), before any of their parts is judged."""

    def __init__(
        self,
        service: str,
        recorded_roles: pulumi.Output[Any],
        recorded_parts: pulumi.Output[Any],
        read: ServerReader = read_server,
    ) -> None:
        self._service = service
        self._recorded_roles = recorded_roles
        self._recorded_parts = recorded_parts
        self._read = read
        self._connections: dict[str, remote.ConnectionArgs] = {}
        self._readings: dict[str, pulumi.Output[Reading]] = {}

    @classmethod
    def of_this_stack(cls, service: str, read: ServerReader = read_server) -> DriftCheck:
        """Against the stack's own last outputs (none before its first `up`)."""
        itself = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
        recorded = pulumi.StackReference(f"{service}-recorded", stack_name=itself)
        return cls(service, recorded.get_output(ROLES_OUTPUT), recorded.get_output(PARTS_OUTPUT), read)

    def add_server(self, server: str, connection: remote.ConnectionArgs) -> None:
        self._connections[server] = connection

    def role_heal(self, role: str, servers: Sequence[str], version: pulumi.Output[str]) -> pulumi.Output[int]:
        """The count the role's swap runs with."""

        def decide(values: list[Any]) -> pulumi.Output[int] | int:
            wanted, recorded = str(values[0]), Recorded.of(values[1], role)
            if recorded.version != wanted:
                return recorded.heals
            readings = pulumi.Output.all(*(self._reading(server) for server in servers))
            return readings.apply(
                lambda found: said(judge(role, wanted, recorded, dict(zip(servers, found, strict=True))))
            )

        # What serves is no secret, though the key that read it is.
        return pulumi.Output.unsecret(pulumi.Output.all(version, self._recorded_roles).apply(decide))

    def part_heal(self, server: str, part: str) -> pulumi.Output[int]:
        """The count the step of a server's part (PROXY, an accessory) runs with."""

        def decide(parts: object) -> pulumi.Output[int] | int:
            recorded = recorded_part(parts, server, part)
            if recorded is None:
                return 0
            return self._reading(server).apply(lambda found: said(judge_part(part, server, recorded, found)))

        return pulumi.Output.unsecret(self._recorded_parts.apply(decide))

    def _reading(self, server: str) -> pulumi.Output[Reading]:
        if server not in self._readings:
            c = self._connections[server]
            where = pulumi.Output.all(c.host, c.port, c.user, c.host_key, c.private_key)

            async def read(values: list[Any]) -> Reading:
                endpoint = ssh.Endpoint(str(values[0]), int(values[1] or 22), str(values[2] or "root"), str(values[3]))
                # In a thread: the program's other steps, and the other servers' reads, go on meanwhile.
                reading = await asyncio.to_thread(self._read, endpoint, str(values[4]), self._service)
                return unread_said(server, reading)

            self._readings[server] = where.apply(read)
        return self._readings[server]


def unread_said(server: str, reading: Reading) -> Reading:
    """The reading, a warning shown when the server could not be read (Pulumi's only: a pull request's preview with
    no route to the servers would otherwise open every plan with it)."""
    if reading.error is not None:
        pulumi.log.warn(
            f"what serves on {named(server)} was not checked ({reading.error}): a drift there would go unseen this run"
        )
    return reading


def said(verdict: Verdict) -> int:
    """The verdict's count, its warning shown."""
    if verdict.warning is not None:
        pulumi.log.warn(verdict.warning)
    return verdict.heal


def heal_of(check: DriftCheck | None, server: str, part: str) -> pulumi.Output[int]:
    """A server part's count of heals; 0 without a drift check."""
    return check.part_heal(server, part) if check is not None else pulumi.Output.from_input(0)
