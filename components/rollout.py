"""Rolls one role out across its servers, all or none: the role's `{service}-{role}-rollout` step (a Pulumi
local.Command on the deploying machine), and `quayside rollback`'s fast switch across servers (--retained-only).
The standard library and components/ssh.py, steps.py and remote.py only, so any python3 runs it.

    python3 components/rollout.py --service S --role R --limit N --timeout SECONDS [--retained-only] \\
        --server NAME=USER@HOST:PORT ... -- SWAP_ARGV...
    SWAP_ARGV: swap.sh's arguments, as components/swap_command.py's swap_args builds them
    stdin: JSON {"private_keys": {"NAME": "<openssh key>"}, "host_keys": {"NAME": "ssh-ed25519 AAAA..."},
                 "env_file": "K=V\\n..."}
    (command_line() and stdin_document() build both, for the program and for `quayside rollback`)

1. Reads the live version and image of the role on every server at once (live.sh). A server that does not answer
   (within ssh's ConnectTimeout) or cannot tell fails the rollout here, named with its address, before anything is
   touched on any server.
2. Swaps the servers in waves of --limit, in --server order: swap.sh over SSH on each server of a wave at once, the
   env file on its stdin, in `timeout --timeout`; every line a server prints comes out prefixed `NAME: `.
3. All or none: when a swap fails, no further wave starts; once the wave's other swaps have ended, every server the
   rollout switched goes back to the version it ran before (swap.sh --retained-only with that version's image and
   version and the same options; when no kept container of it fits them, as after a change of options or secrets, a
   swap boots that version again), and one that ran none retires the role (retire.sh). Then it exits 1 with one line:
       rollout: web: <swap's first line of failure> on app-2 (10.97.0.12); app-1 went back to v1
--retained-only (rollback's fast switch): each server puts back its kept container of SWAP_ARGV's version, all or
none the same way; nothing is pulled or booted, and the env file is not sent.

The private key goes into a 0600 file of a 0700 directory per server, with that server's host key pinned in a
known_hosts file beside it (components/ssh.py), all removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final, NoReturn, Protocol, TypeVar

if not __package__:  # run as `python3 components/rollout.py`: the project's directory on the path, for components
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from components import remote, ssh, steps

PROGRAM: Final = "rollout"
# live.sh reads a few containers: a server that takes longer than this to tell is not fit to be rolled out to.
READ_SECONDS: Final = 60
# Beyond a step's own `timeout` (which ends it, then kills it 10 s later): when ssh itself hangs on a dead link.
SLACK_SECONDS: Final = 30
# A session that runs a swap for minutes: a link that died is noticed within a minute.
KEEP_ALIVE: Final = ("-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")
USAGE_ERROR: Final = 2

T = TypeVar("T")
U = TypeVar("U")


class UsageError(ValueError):
    """The command line or stdin is not what the rollout takes; str() is the one line to show."""


# --- what the rollout is asked -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    name: str
    endpoint: ssh.Endpoint

    @property
    def where(self) -> str:
        """`app-2 (10.97.0.12)`: how a message names the server."""
        return f"{self.name} ({self.endpoint.host})"


@dataclass(frozen=True)
class Request:
    service: str
    role: str
    limit: int
    timeout_seconds: int
    retained_only: bool
    servers: tuple[Server, ...]
    swap_argv: tuple[str, ...]
    private_keys: dict[str, str]
    env_file: str

    @property
    def version(self) -> str:
        return str(steps.SWAP.parse(self.swap_argv)["version"])


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError, one line, rather than printing its usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_server(word: str) -> tuple[str, str, str, int]:
    """`NAME=USER@HOST:PORT` (an IPv6 host in brackets) → (name, user, host, port)."""
    name, _, destination = word.partition("=")
    user, _, host_port = destination.rpartition("@")
    host, _, port = host_port.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not (name and user and host and port.isdigit()):
        raise UsageError(f"--server {word!r} is not NAME=USER@HOST:PORT")
    return name, user, host, int(port)


def parse_request(argv: Sequence[str], stdin: str) -> Request:
    """The command line and the JSON on stdin; UsageError names what is wrong."""
    if "--" not in argv:
        raise UsageError("swap.sh's arguments go after --")
    split = list(argv).index("--")
    ours, swap_argv = list(argv[:split]), list(argv[split + 1 :])
    parser = Parser(prog="components/rollout.py", exit_on_error=False, add_help=False)
    parser.add_argument("--service", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--timeout", type=int, required=True)
    parser.add_argument("--retained-only", action="store_true")
    parser.add_argument("--server", action="append", required=True)
    try:
        args, unknown = parser.parse_known_args(ours)
    except argparse.ArgumentError as error:
        raise UsageError(str(error)) from None
    if unknown:
        raise UsageError(f"unknown argument {unknown[0]}")
    if args.limit < 1 or args.timeout < 1:
        raise UsageError("--limit and --timeout take a whole number from 1 up")
    try:
        swap = steps.SWAP.parse(swap_argv)
        swap_argv = steps.SWAP.argv(**{**swap, "retained_only": args.retained_only or bool(swap.get("retained_only"))})
    except (ValueError, TypeError) as error:
        raise UsageError(f"swap.sh's arguments: {error}") from None
    if (swap["service"], swap["role"]) != (args.service, args.role):
        raise UsageError(
            f"swap.sh's arguments are for {swap['service']} {swap['role']}, not {args.service} {args.role}"
        )
    secrets = parse_stdin(stdin)
    servers = []
    for word in args.server:
        name, user, host, port = parse_server(word)
        if name not in secrets.host_keys or name not in secrets.private_keys:
            raise UsageError(f"stdin: host_keys and private_keys need a key of server {name}")
        servers.append(Server(name, ssh.Endpoint(host, port, user, secrets.host_keys[name])))
    names = [server.name for server in servers]
    if len(set(names)) != len(names):
        raise UsageError(f"--server names {', '.join(names)}: each server once")
    return Request(
        service=args.service, role=args.role, limit=args.limit, timeout_seconds=args.timeout,
        retained_only=args.retained_only or bool(swap.get("retained_only")), servers=tuple(servers),
        swap_argv=tuple(swap_argv), private_keys=secrets.private_keys, env_file=secrets.env_file,
    )  # fmt: skip


@dataclass(frozen=True)
class Secrets:
    private_keys: dict[str, str]
    host_keys: dict[str, str]
    env_file: str


def parse_stdin(text: str) -> Secrets:
    try:
        given = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"stdin is not JSON: {error}") from None
    if not isinstance(given, dict):
        raise UsageError("stdin: a JSON object with private_keys, host_keys and env_file")
    for key, kind in (("private_keys", dict), ("host_keys", dict), ("env_file", str)):
        if not isinstance(given.get(key), kind):
            raise UsageError(f"stdin: {key} is missing or not a {'string' if kind is str else 'map'}")
    host_keys = given["host_keys"]
    if not all(isinstance(value, str) and len(value.split()) >= 2 for value in host_keys.values()):
        raise UsageError("stdin: host_keys maps each server's name to its host key, `ssh-ed25519 AAAA...`")
    if not all(isinstance(value, str) for value in given["private_keys"].values()):
        raise UsageError("stdin: private_keys maps each server's name to its private key")
    return Secrets(dict(given["private_keys"]), dict(host_keys), given["env_file"])


@dataclass(frozen=True)
class Target:
    """A server as the command line names it: NAME=USER@HOST:PORT."""

    name: str
    user: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}={self.user}@{host}:{self.port}"


def command_line(
    service: str,
    role: str,
    *,
    limit: int,
    timeout_seconds: int,
    servers: Sequence[Target],
    swap_argv: Sequence[str],
    retained_only: bool = False,
) -> list[str]:
    """The rollout's arguments (after `python3 components/rollout.py`), as parse_request reads them."""
    return [
        "--service", service, "--role", role, "--limit", str(limit), "--timeout", str(timeout_seconds),
        *(["--retained-only"] if retained_only else []),
        *(word for server in servers for word in ("--server", str(server))),
        "--", *swap_argv,
    ]  # fmt: skip


def stdin_document(*, private_keys: Mapping[str, str], host_keys: Mapping[str, str], env_file: str) -> str:
    """The JSON on the rollout's stdin: every secret it needs, none on its command line."""
    return json.dumps({"private_keys": dict(private_keys), "host_keys": dict(host_keys), "env_file": env_file})


# --- the plan ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    """The role's live container on one server."""

    version: str
    image: str

    @classmethod
    def read(cls, output: str) -> Live | None:
        """live.sh's `VERSION IMAGE`, or None for its nothing (the role has no live container there)."""
        words = output.split()
        if not words:
            return None
        if len(words) != 2:
            raise ValueError(f"live.sh printed {output.strip()!r}, not VERSION IMAGE")
        return cls(words[0], words[1])


def waves(servers: Sequence[T], limit: int) -> list[list[T]]:
    """The servers in groups of `limit`, in order: one wave swaps at once, the next starts when it has ended."""
    return [list(servers[start : start + limit]) for start in range(0, len(servers), limit)]


@dataclass(frozen=True)
class GoBack:
    """A server the rollout switched, and what it goes back to: the version it ran, or none (the role retires)."""

    server: Server
    to: Live | None


def going_back(switched: Sequence[Server], before: Mapping[str, Live | None], version: str) -> list[GoBack]:
    """Which servers go back after a failure: those the rollout switched to `version` from another one, or from none
    (a server that ran `version` already ran it before the rollout too)."""
    plan = []
    for server in switched:
        was = before[server.name]
        if was is None or was.version != version:
            plan.append(GoBack(server, was))
    return plan


def live_args(request: Request) -> list[str]:
    swap = steps.SWAP.parse(request.swap_argv)
    return steps.LIVE.argv(service=request.service, role=request.role, proxy_name=swap["proxy_name"])


def back_args(swap_argv: Sequence[str], to: Live, *, retained_only: bool) -> list[str]:
    """swap.sh's arguments that put `to` back with the same options: its kept container (--retained-only), or else
    a container of it booted again."""
    swap = steps.SWAP.parse(swap_argv)
    return steps.SWAP.argv(**{**swap, "image": to.image, "version": to.version, "retained_only": retained_only})


def retire_args(swap_argv: Sequence[str]) -> list[str]:
    """retire.sh's arguments for the role a rollout put on a server that ran none of it."""
    swap = steps.SWAP.parse(swap_argv)
    keys = ("service", "role", "version", "proxy", "proxy_name", "lock_wait")
    return steps.RETIRE.argv(**{key: swap[key] for key in keys})


# --- what happened -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one remote step ended."""

    code: int
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def unreachable(self) -> bool:
        """ssh itself failed: the server did not answer, refused the key, or showed another host key."""
        return self.code == ssh.EXIT_FAILED

    def failure(self, step: steps.Script) -> str:
        """The step's first line of failure: its own (`swap failed: ...`, `swap: ...`) before any other stderr line
        (a docker error it passed on, ssh's own), else its exit status."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        name = step.name.removesuffix(".sh")
        for prefixes in ((f"{name} failed: ",), (f"{name}: ",), ("",)):
            for line in lines:
                if line.startswith(prefixes):
                    return line
        return f"{step.name} exited {self.code}"


@dataclass(frozen=True)
class Failure:
    server: Server
    line: str


@dataclass(frozen=True)
class WentBack:
    """A server sent back after a failure; `failure` says why it could not go, when it could not."""

    server: Server
    to: Live | None
    failure: str = ""


def names(servers: Sequence[Server]) -> str:
    """`app-1`, `app-1 and app-2`, `app-1, app-2 and app-3`."""
    listed = [server.name for server in servers]
    return listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} and {listed[-1]}"


def failure_message(role: str, failures: Sequence[Failure], went_back: Sequence[WentBack]) -> str:
    """The one line a failed rollout ends with: the first failure and where, then where each switched server went."""
    first, *more = failures
    parts = [f"{first.line} on {first.server.where}"]
    parts += [f"it failed on {failure.server.where} too: {failure.line}" for failure in more]
    back: dict[str, list[Server]] = {}
    for went in went_back:
        if went.failure:
            to = f"to {went.to.version}" if went.to else "off the role"
            parts.append(f"{went.server.name} could not go back {to}: {went.failure}")
        else:
            back.setdefault(went.to.version if went.to else "", []).append(went.server)
    for version, servers in back.items():
        if version:
            parts.append(f"{names(servers)} went back to {version}")
        else:
            parts.append(f"{names(servers)} no longer run{'s' if len(servers) == 1 else ''} {role} (none before)")
    if not went_back:
        parts.append("no other server had switched")
    return f"{PROGRAM}: {role}: " + "; ".join(parts)


def unreachable_message(role: str, problems: Sequence[tuple[Server, Outcome | str]]) -> str:
    """The one line when some server cannot be read: each named with its address, and nothing touched."""
    said = []
    for server, problem in problems:
        if isinstance(problem, str):
            said.append(f"{server.where} {problem}")
        elif problem.unreachable:
            said.append(
                f"no SSH answer from {server.where} within {ssh.CONNECT_TIMEOUT_SECONDS} s"
                f" ({problem.failure(steps.LIVE)})"
            )
        else:
            said.append(f"could not read the live {role} on {server.where} ({problem.failure(steps.LIVE)})")
    return f"{PROGRAM}: {role}: " + "; ".join(said) + "; nothing was touched on any server"


# --- the rollout -------------------------------------------------------------------------------------------------


class Runner(Protocol):
    """Runs one installed step on a server; `stdin` None sends nothing. `show` prints its lines as they come."""

    def __call__(
        self, server: Server, step: steps.Script, args: Sequence[str], *, stdin: str | None, timeout_seconds: int,
        show: bool,
    ) -> Outcome: ...  # fmt: skip


# One line at a time on the terminal, whichever server's output it is.
PRINTING: Final = threading.Lock()


def say(message: str, *, stream: IO[str] | None = None) -> None:
    with PRINTING:
        print(f"{PROGRAM}: {message}", file=stream or sys.stdout, flush=True)


def fail(line: str) -> None:
    """The rollout's last line, on stderr: why it failed (failure_message, unreachable_message)."""
    with PRINTING:
        print(line, file=sys.stderr, flush=True)


def at_once(items: Sequence[U], work: Callable[[U], T]) -> list[T]:
    """`work` on every item (a server each) side by side; the results in the items' order."""
    pool = ThreadPoolExecutor(max_workers=max(1, len(items)))
    try:
        return list(pool.map(work, items))
    finally:
        # After Ctrl-C or Terminated, no wait for the steps still running: leaving OverSsh ends their shared
        # connections (and so them), then removes the key files.
        pool.shutdown(wait=False, cancel_futures=True)


def roll(request: Request, run: Runner) -> int:
    """The rollout, through `run`; 0 when the version is live on every server, 1 when on none."""
    role, version, started = request.role, request.version, time.monotonic()
    before = read_live(request, run)
    if before is None:
        return 1
    groups = waves(request.servers, request.limit)
    kept = " (kept containers)" if request.retained_only else ""
    now = ", ".join(
        f"{server.name} {live.version if (live := before[server.name]) else 'none'}" for server in request.servers
    )
    say(f"{role}: {version}{kept} to {names(request.servers)}, {request.limit} at a time; live now: {now}")
    switched: list[Server] = []
    for number, wave in enumerate(groups, 1):
        say(f"{role}: wave {number} of {len(groups)}: {names(wave)}")
        outcomes = at_once(wave, lambda server: swap(request, run, server))
        switched += [server for server, outcome in zip(wave, outcomes, strict=True) if outcome.ok]
        failures = [
            Failure(server, outcome.failure(steps.SWAP))
            for server, outcome in zip(wave, outcomes, strict=True)
            if not outcome.ok
        ]
        if failures:
            plan = going_back(switched, before, version)
            went_back = at_once(plan, lambda going: go_back(request, run, going))
            fail(failure_message(role, failures, went_back))
            return 1
    say(f"{role}: {version} live on {names(request.servers)} in {time.monotonic() - started:.1f} s")
    return 0


def read_live(request: Request, run: Runner) -> dict[str, Live | None] | None:
    """Each server's live version, or None after saying which servers could not tell."""
    args = live_args(request)
    outcomes = at_once(
        request.servers,
        lambda server: run(server, steps.LIVE, args, stdin=None, timeout_seconds=READ_SECONDS, show=False),
    )
    before: dict[str, Live | None] = {}
    problems: list[tuple[Server, Outcome | str]] = []
    for server, outcome in zip(request.servers, outcomes, strict=True):
        if not outcome.ok:
            problems.append((server, outcome))
            continue
        try:
            before[server.name] = Live.read(outcome.stdout)
        except ValueError as error:
            problems.append((server, str(error)))
    if problems:
        fail(unreachable_message(request.role, problems))
        return None
    return before


def swap(request: Request, run: Runner, server: Server) -> Outcome:
    stdin = None if request.retained_only else request.env_file
    outcome = run(
        server, steps.SWAP, request.swap_argv, stdin=stdin, timeout_seconds=request.timeout_seconds, show=True
    )
    said = f"switched to {request.version}" if outcome.ok else "failed"
    say(f"{request.role}: {server.name} {said} in {outcome.seconds:.1f} s")
    return outcome


def go_back(request: Request, run: Runner, going: GoBack) -> WentBack:
    """One server back where it was: its kept container of the version it ran (a container of that version booted
    again when none kept fits the options); the role retired when it ran none."""
    server, to = going.server, going.to

    def step(script: steps.Script, args: Sequence[str], stdin: str | None) -> Outcome:
        return run(server, script, args, stdin=stdin, timeout_seconds=request.timeout_seconds, show=True)

    if to is None:
        say(f"{request.role}: {server.name} ran no {request.role} before: retiring it there")
        done = step(steps.RETIRE, retire_args(request.swap_argv), None)
        return WentBack(server, None, "" if done.ok else done.failure(steps.RETIRE))
    say(f"{request.role}: {server.name} goes back to {to.version}")
    done = step(steps.SWAP, back_args(request.swap_argv, to, retained_only=True), None)
    if not done.ok and not done.unreachable and not request.retained_only:
        say(f"{request.role}: {server.name}: no kept {to.version} fits the options; booting {to.version} again")
        done = step(steps.SWAP, back_args(request.swap_argv, to, retained_only=False), request.env_file)
    return WentBack(server, to, "" if done.ok else done.failure(steps.SWAP))


# --- over SSH ----------------------------------------------------------------------------------------------------


class OverSsh:
    """The Runner over SSH: `with OverSsh(request) as run: roll(request, run)`. One key-files directory per server
    (components/ssh.py) for the rollout's duration; each step a `components.remote.script` line."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._open = contextlib.ExitStack()
        self._files: dict[str, ssh.KeyFiles] = {}

    def __enter__(self) -> OverSsh:
        for server in self._request.servers:
            self._files[server.name] = self._open.enter_context(
                ssh.key_files(server.endpoint, self._request.private_keys[server.name], prefix="quayside-rollout-")
            )
        at_once(self._request.servers, self._connect)
        return self

    def _connect(self, server: Server) -> None:
        """The server's shared connection, in the background once authenticated (`-f`), its streams on /dev/null so
        that no step's output waits for it. A server that does not answer is left to the first step to name."""
        where, files = server.endpoint, self._files[server.name]
        opening = ssh.argv(where.host, where.port, where.user, files.key, files.known_hosts, "", options=(
            *KEEP_ALIVE, "-o", f"ControlPath={files.directory}/control", "-o", "ControlPersist=yes", "-M", "-N", "-f",
        ))  # fmt: skip
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                opening, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                check=False, timeout=ssh.CONNECT_TIMEOUT_SECONDS + SLACK_SECONDS,
            )  # fmt: skip

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for server in self._request.servers:
            where, files = server.endpoint, self._files[server.name]
            ending = ssh.argv(where.host, where.port, where.user, files.key, files.known_hosts, "", options=(
                "-o", f"ControlPath={files.directory}/control", "-O", "exit",
            ))  # fmt: skip
            subprocess.run(ending, capture_output=True, check=False, timeout=SLACK_SECONDS)
        self._open.close()

    @staticmethod
    def _shared(files: ssh.KeyFiles) -> tuple[str, ...]:
        """One SSH connection per server for the whole rollout, opened first (_connect): each step's session rides on
        it and costs no handshake of its own; without it (it failed to open), a step connects on its own."""
        return ("-o", "ControlMaster=no", "-o", f"ControlPath={files.directory}/control")

    def __call__(
        self, server: Server, step: steps.Script, args: Sequence[str], *, stdin: str | None, timeout_seconds: int,
        show: bool,
    ) -> Outcome:  # fmt: skip
        files, where = self._files[server.name], server.endpoint
        command = remote.script(self._request.service, step.name, args, timeout_seconds=timeout_seconds)
        options = (*KEEP_ALIVE, *self._shared(files))
        argv = ssh.argv(where.host, where.port, where.user, files.key, files.known_hosts, command, options=options)
        started = time.monotonic()
        with subprocess.Popen(
            argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        ) as process:  # fmt: skip
            assert process.stdout is not None and process.stderr is not None
            prefix = f"{server.name}: " if show else None
            readers = [
                Reader(process.stdout, sys.stdout, prefix),
                Reader(process.stderr, sys.stderr, prefix),
            ]
            if process.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.write(stdin or "")
                    process.stdin.close()
            killed = ""
            try:
                code = process.wait(timeout=timeout_seconds + SLACK_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
                killed = f"ssh to {server.where} still running {timeout_seconds + SLACK_SECONDS} s on: killed\n"
            for reader in readers:
                reader.join()
        return Outcome(code, readers[0].text, killed + readers[1].text, time.monotonic() - started)


class Reader(threading.Thread):
    """Reads a stream to its end, keeping its lines; each shown on `shown_on` with `prefix` as it comes (None: not
    shown)."""

    def __init__(self, stream: IO[str], shown_on: IO[str], prefix: str | None) -> None:
        super().__init__(daemon=True)
        self.lines: list[str] = []
        self._stream, self._shown_on, self._prefix = stream, shown_on, prefix
        self.start()

    def run(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))
            if self._prefix is not None:
                with PRINTING:
                    print(f"{self._prefix}{line}", end="" if line.endswith("\n") else "\n", file=self._shown_on)
                    self._shown_on.flush()

    @property
    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        request = parse_request(sys.argv[1:] if argv is None else argv, sys.stdin.read())
    except UsageError as error:
        say(str(error), stream=sys.stderr)
        return USAGE_ERROR
    try:
        with OverSsh(request) as run:
            return roll(request, run)
    except ssh.Terminated as terminated:
        fail(f"{PROGRAM}: {request.role}: {terminated}; the servers switched so far stay switched")
        return terminated.status


if __name__ == "__main__":
    sys.exit(main())
