"""Drift: a role found not serving, on a server of its, the version the stack recorded; `pulumi up` heals it.

pulumi-command cannot refresh a command: Pulumi knows what the last `up` ran, not what serves now. So at `preview`
and `up` the program reads the stack's own outputs (a StackReference to itself: the version of each role as the last
successful `up` recorded it, and its count of heals), and for each role whose recorded version is the one the stack
deploys now, asks each of its servers which version serves there (serving.sh: one SSH session per server, all at
once, only when some role there needs it). A role whose servers do not all serve it (a rollback that was not
recorded, a container stopped or removed by hand) has its count raised by one. The count is an argument of the
role's swap (swap.sh --heal): the plan shows the swap changed, with a warning saying what serves where, and `up` runs
it, which puts the recorded version back live as any swap does. The outputs take the new count once the swap has
succeeded, so the next run passes the same count and changes nothing.

A server that cannot be read (a pull request's preview with no route to it) is warned about and left unchecked: the
count stays as recorded, and nothing changes because of it. A new version is not checked: its swap runs anyway.
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

# serving.sh reads a few containers; a server slower than this to answer is not checked this run.
READ_SECONDS: Final = 20
# How long a preview waits for a server that does not answer at all (ssh's ConnectTimeout).
CONNECT_SECONDS: Final = 5
# bash's exit status for a script that is not there: a server deployed by a quayside from before the drift check.
SCRIPT_MISSING: Final = 127
# The stack output the recorded versions and counts are read from.
ROLES_OUTPUT: Final = "roles"


@dataclass(frozen=True)
class Reading:
    """What serves on one server: the version of each role that serves there; `error` when it could not be read."""

    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def parse(cls, output: str) -> Reading:
        """serving.sh's `ROLE VERSION` lines."""
        versions = {}
        for line in output.splitlines():
            words = line.split()
            if len(words) != 2:
                return cls(error=f"serving.sh printed {line.strip()!r}, not ROLE VERSION")
            versions[words[0]] = words[1]
        return cls(versions)


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
    """The count the role's swap runs with, and what was found on its servers."""

    heal: int
    drifted: dict[str, str | None] = field(default_factory=dict)  # server → the version serving there, or none
    unread: dict[str, str] = field(default_factory=dict)  # server → why it could not be read

    def warnings(self, role: str, recorded: str) -> list[str]:
        lines = []
        if self.drifted:
            found = ", ".join(
                f"{named(server)} serves {version or 'nothing'}" for server, version in self.drifted.items()
            )
            lines.append(
                f"{role}: {found}, not {recorded} as the stack recorded: this update puts {recorded} back live "
                f"(heal {self.heal})"
            )
        lines += [
            f"{role}: what serves on {named(server)} was not checked ({why}): a drift there would go unseen this run"
            for server, why in self.unread.items()
        ]
        return lines


def named(server: str) -> str:
    """How a warning names a server: by its name in `servers`, or as the one server a stack with `server:` has."""
    return "the server" if server == config.ONE_SERVER else server


def judge(role: str, wanted: str, recorded: Recorded, readings: Mapping[str, Reading]) -> Verdict:
    """The role's verdict: its count raised by one when a server it is on does not serve `wanted`, which the stack
    recorded. A role whose version changes, or that was never deployed, is not judged: its swap runs anyway."""
    if recorded.version != wanted:
        return Verdict(recorded.heals)
    drifted = {
        server: reading.versions.get(role)
        for server, reading in readings.items()
        if reading.error is None and reading.versions.get(role) != wanted
    }
    unread = {server: reading.error for server, reading in readings.items() if reading.error is not None}
    return Verdict(recorded.heals + (1 if drifted else 0), drifted, unread)


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
    """One per stack: its recorded outputs, and one read per server, made only when a role there is to be judged."""

    def __init__(
        self,
        service: str,
        connections: Mapping[str, remote.ConnectionArgs],
        recorded_roles: pulumi.Output[Any],
        read: ServerReader = read_server,
    ) -> None:
        self._service = service
        self._connections = dict(connections)
        self._recorded_roles = recorded_roles
        self._read = read
        self._readings: dict[str, pulumi.Output[Reading]] = {}

    @classmethod
    def of_this_stack(
        cls, service: str, connections: Mapping[str, remote.ConnectionArgs], read: ServerReader = read_server
    ) -> DriftCheck:
        """Against the stack's own last outputs (none before its first `up`)."""
        itself = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
        recorded = pulumi.StackReference(f"{service}-recorded", stack_name=itself).get_output(ROLES_OUTPUT)
        return cls(service, connections, recorded, read)

    def heal(
        self, role: str, servers: Sequence[str], version: pulumi.Output[str], on: pulumi.Resource
    ) -> pulumi.Output[int]:
        """The count the role's swap runs with; warnings on `on` say what drifted and what was not checked."""

        def decide(values: list[Any]) -> pulumi.Output[int] | int:
            wanted, recorded = str(values[0]), Recorded.of(values[1], role)
            if recorded.version != wanted:
                return recorded.heals
            readings = pulumi.Output.all(*(self._reading(server) for server in servers))
            return readings.apply(
                lambda found: self._verdict(role, wanted, recorded, dict(zip(servers, found, strict=True)), on)
            )

        # What serves is no secret, though the key that read it is.
        return pulumi.Output.unsecret(pulumi.Output.all(version, self._recorded_roles).apply(decide))

    @staticmethod
    def _verdict(role: str, wanted: str, recorded: Recorded, readings: dict[str, Reading], on: pulumi.Resource) -> int:
        verdict = judge(role, wanted, recorded, readings)
        for line in verdict.warnings(role, wanted):
            pulumi.log.warn(line, resource=on)
        return verdict.heal

    def _reading(self, server: str) -> pulumi.Output[Reading]:
        if server not in self._readings:
            c = self._connections[server]
            where = pulumi.Output.all(c.host, c.port, c.user, c.host_key, c.private_key)
            self._readings[server] = where.apply(
                lambda values: asyncio.get_running_loop().run_in_executor(
                    None, self._read,
                    ssh.Endpoint(str(values[0]), int(values[1] or 22), str(values[2] or "root"), str(values[3])),
                    str(values[4]), self._service,
                )
            )  # fmt: skip
        return self._readings[server]
