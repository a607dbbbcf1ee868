"""Drift: a server found not serving what the stack's last successful steps put there; `pulumi up` heals it.

pulumi-command cannot refresh a command: Pulumi knows what the last `up` ran, not what serves now. So each step that
puts a part on a server records there what it put (lib.sh drift_record: a role's swap its version, and every step its
count of heals), and at `preview` and `up` the program asks each server what serves beside those records
(serving.sh: one SSH session per server, all at once). A role that a server does not serve at the version its record
names (a rollback that was not recorded, a container stopped or removed by hand), or a recorded kamal-proxy or
accessory that does not run, has its count raised by one. The count is an argument of its step (swap.sh,
accessory.sh, proxy.sh --heal): the plan shows that step changed, with a warning saying what was found, and `up` runs
it, which puts the part back as that step always does, and records the new count. The next run reads that count and
passes it again: nothing changes.

A server that cannot be read (a pull request's preview with no route to it, a server down) is warned about and not
judged; its parts' counts then come from the stack's own last outputs (a StackReference to itself, made only then),
so nothing changes because of it. The stack is not read otherwise: with a file backend, a read of the stack's own
checkpoint can meet the engine writing it ("failed to load checkpoint: EOF"), which fails the run.

Two answers end an `up` instead: another host key than the pinned one, and a connection still refused after
REFUSED_SECONDS. No step could reach the server then, and every step's connection waits for the read (`checked`),
so none dials it (pulumi-command would, 30 times each).
"""

from __future__ import annotations

import asyncio
import copy
import subprocess
import time
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
# How long an `up` keeps asking a server that refuses SSH connections (an sshd restarting) before it ends the run,
# and how often: every step would otherwise dial it 30 times, for about two minutes, before failing.
REFUSED_SECONDS: Final = 10
REFUSED_POLL_SECONDS: Final = 1
# ssh's words when nothing listens at the server's SSH port.
CONNECTION_REFUSED: Final = "Connection refused"
# bash's exit status for a script that is not there: a service not deployed there yet, or by a quayside from before
# the drift check.
SCRIPT_MISSING: Final = 127
# The stack outputs a server's counts are read from when it cannot be read itself: the roles', the other parts'.
ROLES_OUTPUT: Final = "roles"
PARTS_OUTPUT: Final = "heals"
# kamal-proxy's name among a server's parts (the accessories go by theirs).
PROXY: Final = "proxy"


@dataclass(frozen=True)
class RoleHere:
    """A role on one server: the version serving (None: nothing), and its record (None: no step recorded one)."""

    live: str | None
    deployed: str | None
    heals: int


@dataclass(frozen=True)
class PartHere:
    """kamal-proxy or an accessory on one server: whether it runs, and its record's count (None: no record)."""

    running: bool
    heals: int | None


@dataclass(frozen=True)
class Reading:
    """What serves on one server and what its steps recorded there; `error` when it could not be read."""

    roles: dict[str, RoleHere] = field(default_factory=dict)
    parts: dict[str, PartHere] = field(default_factory=dict)
    # An accessory whose data directory holds a Postgres cluster → its major version (the plan says an upgrade).
    data_majors: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    refused: bool = False  # the server refused the connection: its sshd is not listening

    @classmethod
    def parse(cls, output: str) -> Reading:
        """serving.sh's lines: `role ROLE LIVE DEPLOYED HEALS`, `accessory NAME RUNNING HEALS`, `data NAME MAJOR`,
        `proxy RUNNING HEALS` (`-` for none)."""
        roles, parts, data_majors = {}, {}, {}
        for line in output.splitlines():
            match line.split():
                case ["role", role, live, deployed, heals] if is_count(heals):
                    roles[role] = RoleHere(none_for_dash(live), none_for_dash(deployed), count_of(heals) or 0)
                case ["accessory", name, "yes" | "no" as running, heals] if is_count(heals):
                    parts[name] = PartHere(running == "yes", count_of(heals))
                case ["data", name, major] if major.isdigit():
                    data_majors[name] = major
                case ["proxy", "yes" | "no" as running, heals] if is_count(heals):
                    parts[PROXY] = PartHere(running == "yes", count_of(heals))
                case _:
                    return cls(error=f"serving.sh printed {line.strip()!r}, not a role, accessory, data or proxy line")
        return cls(roles, parts, data_majors)


def none_for_dash(word: str) -> str | None:
    return None if word == "-" else word


def is_count(word: str) -> bool:
    """A record's count of heals as serving.sh prints it: digits, or `-` for no record."""
    return word == "-" or word.isdigit()


def count_of(word: str) -> int | None:
    return None if word == "-" else int(word)


@dataclass(frozen=True)
class Verdict:
    """The count a step runs with, and the warning that says what was found, when something drifted (a WARNING line
    of `quayside plan`: a reviewer sees drift first)."""

    heal: int
    warning: str | None = None


def named(server: str) -> str:
    """How a warning names a server: by its name in `servers`, or as the one server a stack with `server:` has."""
    return "the server" if server == config.ONE_SERVER else server


def judge(role: str, wanted: str, readings: Mapping[str, Reading]) -> Verdict:
    """The role's verdict from the servers that could be read: the highest count their records hold (a rollout
    records the same on each), raised by one when a server whose record says it deployed `wanted` does not serve it.
    A server without such a record (a new version, a server new to the role, a role never deployed there) is not
    judged: the swap runs there anyway, or ran before the records were kept."""
    here = {server: reading.roles[role] for server, reading in readings.items() if role in reading.roles}
    heals = max((found.heals for found in here.values()), default=0)
    drifted = {server: found.live for server, found in here.items() if found.deployed == wanted != found.live}
    if not drifted:
        return Verdict(heals)
    heal = heals + 1
    found = ", ".join(f"{named(server)} serves {live or 'nothing'}" for server, live in drifted.items())
    return Verdict(
        heal,
        f"{WARNING_PREFIX}{role}: {found}, not {wanted} as the stack recorded: this update puts {wanted} back live "
        f"(heal {heal})",
    )


def judge_part(part: str, server: str, reading: Reading) -> Verdict:
    """A server's part (kamal-proxy, an accessory): its count raised by one when its record is there and it does not
    run; one without a record (new to the server, or deployed before the records were kept) is not judged."""
    found = reading.parts.get(part)
    if found is None or found.heals is None:
        return Verdict(0)
    if found.running:
        return Verdict(found.heals)
    heal = found.heals + 1
    what = "kamal-proxy" if part == PROXY else part
    on = "running on the service's network" if part == PROXY else "running"
    return Verdict(
        heal,
        f"{WARNING_PREFIX}{what}: not {on} on {named(server)}, as the stack recorded it: this update starts it again "
        f"(heal {heal})",
    )


def count_at(output: object, *keys: str) -> int:
    """The count of heals at `keys` in one of the stack's outputs: `roles` (role, "heals") or `heals` (server,
    part); 0 when it has none."""
    for key in keys:
        output = output.get(key) if isinstance(output, dict) else None
    return int(output) if isinstance(output, int | float) else 0


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
    if done.returncode == ssh.EXIT_FAILED and (presented := ssh.refused_host_key(done.stderr)) is not None:
        raise HostKeyRefused(endpoint, presented)
    if done.returncode == SCRIPT_MISSING:
        # The service's scripts are not there (its first deploy), or predate the records: none to judge by.
        return Reading()
    if done.returncode != 0:
        said = next((line.strip() for line in done.stderr.splitlines() if line.strip()), "")
        refused = done.returncode == ssh.EXIT_FAILED and CONNECTION_REFUSED in done.stderr
        return Reading(error=said or f"serving.sh exited {done.returncode}", refused=refused)
    return Reading.parse(done.stdout)


class HostKeyRefused(Exception):
    """ssh refused the server: it shows another host key than the pinned one. No retry changes that, and nothing may
    be sent to it, so the run ends here rather than after pulumi-command's dials give up (minutes later)."""

    def __init__(self, endpoint: ssh.Endpoint, presented: str) -> None:
        super().__init__(f"{endpoint.host}:{endpoint.port} presents {presented}")
        self.endpoint = endpoint
        self.presented = presented


@dataclass(frozen=True)
class HostKeyPin:
    """The config keys a run that ends at a server names: the server's own, and the key its pinned host key comes
    from (`server.host_key`) with how to pin a new one there."""

    server: str  # the server's own key: `server`, `servers.<name>`
    key: str
    repin: str

    def refusal(self, refused: HostKeyRefused) -> str:
        where = refused.endpoint
        return (
            f"quayside: {self.key}: {where.host}:{where.port} presents the host key {refused.presented}, not the "
            f"pinned {where.fingerprint}, so nothing was sent to it. If the server was rebuilt or its key changed, "
            f"check the new key on the server itself (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and "
            f"{self.repin}; if not, something else answers at its address"
        )


ServerReader = Callable[[ssh.Endpoint, str, str], Reading]
# The stack's own last outputs, `roles` and `heals`: read only for a server that cannot be read itself.
RecordedReader = Callable[[], pulumi.Output[tuple[Any, Any]]]


def this_stacks_outputs(service: str) -> pulumi.Output[tuple[Any, Any]]:
    """A StackReference to the stack itself: its `roles` and `heals` as the last successful `up` left them."""
    itself = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    reference = pulumi.StackReference(f"{service}-recorded", stack_name=itself)
    return pulumi.Output.all(reference.get_output(ROLES_OUTPUT), reference.get_output(PARTS_OUTPUT)).apply(
        lambda outputs: (outputs[0], outputs[1])
    )


class DriftCheck:
    """One per stack: one read per server, made when its first part is judged. Servers are added as the stack makes
    their connections (`add_server`), before any of their parts is judged."""

    def __init__(self, service: str, read: ServerReader = read_server, recorded: RecordedReader | None = None) -> None:
        self._service = service
        self._read = read
        self._recorded_reader = recorded or (lambda: this_stacks_outputs(service))
        self._recorded: pulumi.Output[tuple[Any, Any]] | None = None
        self._connections: dict[str, remote.ConnectionArgs] = {}
        self._pins: dict[str, HostKeyPin] = {}
        self._readings: dict[str, pulumi.Output[Reading]] = {}

    def add_server(self, server: str, connection: remote.ConnectionArgs, pin: HostKeyPin) -> None:
        self._connections[server] = connection
        self._pins[server] = pin

    def checked(self, server: str, connection: remote.ConnectionArgs) -> remote.ConnectionArgs:
        """`connection` (the server's, or root's to it), its host key given once the server's read is done: a server
        showing another key ends the run then, and no step has dialled it (each would retry for minutes)."""
        gated = copy.copy(connection)
        gated.host_key = pulumi.Output.all(connection.host_key, self._reading(server)).apply(lambda values: values[0])
        return gated

    def role_heal(self, role: str, servers: Sequence[str], version: pulumi.Output[str]) -> pulumi.Output[int]:
        """The count the role's swap runs with."""
        readings = pulumi.Output.all(*(self._reading(server) for server in servers))

        def decide(values: list[Any]) -> pulumi.Output[int] | int:
            wanted, found = str(values[0]), dict(zip(servers, values[1], strict=True))
            readable = {server: reading for server, reading in found.items() if reading.error is None}
            if readable:
                return said(judge(role, wanted, readable))
            return self._recorded_outputs().apply(lambda outputs: count_at(outputs[0], role, "heals"))

        # What serves is no secret, though the key that read it is.
        return pulumi.Output.unsecret(pulumi.Output.all(version, readings).apply(decide))

    def part_heal(self, server: str, part: str) -> pulumi.Output[int]:
        """The count the step of a server's part (PROXY, an accessory) runs with."""

        def decide(reading: Reading) -> pulumi.Output[int] | int:
            if reading.error is None:
                return said(judge_part(part, server, reading))
            return self._recorded_outputs().apply(lambda outputs: count_at(outputs[1], server, part))

        return pulumi.Output.unsecret(self._reading(server).apply(decide))

    def data_major(self, server: str, part: str) -> pulumi.Output[str | None]:
        """The major version of the Postgres cluster in an accessory's data directory there (None: none, or unread)."""
        return pulumi.Output.unsecret(self._reading(server).apply(lambda reading: reading.data_majors.get(part)))

    def _recorded_outputs(self) -> pulumi.Output[tuple[Any, Any]]:
        if self._recorded is None:
            self._recorded = self._recorded_reader()
        return self._recorded

    def _reading(self, server: str) -> pulumi.Output[Reading]:
        if server not in self._readings:
            c = self._connections[server]
            where = pulumi.Output.all(c.host, c.port, c.user, c.host_key, c.private_key)
            self._readings[server] = pulumi.Output.from_input(asyncio.ensure_future(self._read_where(server, where)))
        return self._readings[server]

    async def _read_where(self, server: str, where: pulumi.Output[list[Any]]) -> Reading:
        # A server not made yet (a preview before its first deploy) has an address no one knows: nothing of the
        # service is there to judge, and its steps are new anyway.
        if not await where.is_known():
            return Reading()
        values = await where.future() or []
        endpoint = ssh.Endpoint(str(values[0]), int(values[1] or 22), str(values[2] or "root"), str(values[3]))
        try:
            reading = await self._read_answered(server, endpoint, str(values[4]))
        except HostKeyRefused as refused:
            raise pulumi.RunError(self._pins[server].refusal(refused)) from None
        return unread_said(server, reading)

    async def _read_answered(self, server: str, endpoint: ssh.Endpoint, private_key: str) -> Reading:
        """The server's reading, asked again each REFUSED_POLL_SECONDS while it refuses connections in an `up`; the run
        ends when it still does after REFUSED_SECONDS. A preview warns (a pull request's runner may have no route)."""
        deadline = time.monotonic() + REFUSED_SECONDS
        while True:
            # In a thread: the program's other steps, and the other servers' reads, go on meanwhile.
            reading = await asyncio.to_thread(self._read, endpoint, private_key, self._service)
            if not reading.refused or pulumi.runtime.is_dry_run():
                return reading
            if time.monotonic() >= deadline:
                raise pulumi.RunError(
                    f"quayside: {self._pins[server].server}: {endpoint.host}:{endpoint.port} refuses SSH connections "
                    f"({reading.error}), still after {REFUSED_SECONDS} s, so no step was sent to it: start its sshd, "
                    "then pulumi up again"
                )
            await asyncio.sleep(REFUSED_POLL_SECONDS)


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


def data_major_of(check: DriftCheck | None, server: str, part: str) -> pulumi.Output[str | None]:
    """DriftCheck.data_major; None without a drift check."""
    return check.data_major(server, part) if check is not None else pulumi.Output.from_input(None)


def heal_of(check: DriftCheck | None, server: str, part: str) -> pulumi.Output[int]:
    """A server part's count of heals; 0 without a drift check."""
    return check.part_heal(server, part) if check is not None else pulumi.Output.from_input(0)
