"""Rolls one role back to an earlier version: traffic first, then Pulumi's state, so the two agree.

    quayside [-s STACK] rollback ROLE [VERSION]     (default: the version before the one deployed now)

The earlier versions are read from the stack's update history (each update records its config); a tag there
is pinned to the digest it names in its registry now, as `pulumi up` pins it, and VERSION may be given as the
tag alone (v1 for v1@093c6d79f8b3). First, in one SSH
session, `swap.sh --retained-only` puts the retained container of that version back in service: started again if
its options are the role's current ones, then kamal-proxy switches to it as on any deploy, and the newer version
stops and stays for a roll forward. Then `pulumi up` records it: the stack file with ROLE's image (and version pin)
as they were then, from a temporary copy (the file itself is left alone); it finds that version live and changes
nothing on the server. When there is no such container (options changed since, or it was pruned), or the role runs
a migration first, the fast switch is skipped, touching nothing, and that `pulumi up` alone deploys the version.
The next `pulumi up` of the stack file as it stands deploys the newer version again.
On a stack of several servers the fast switch is all or none across the role's servers: components/rollout.py
--retained-only runs that swap.sh on each (in waves of the role's boot limit), and when one fails, those it switched
go back; then the same `pulumi up` records it (or deploys the version, when no fast switch was made).
A tag re-pushed since it was deployed names its new digest: roll back to the old one by pinning it
(repo@sha256:...).
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from components import config, image_pin, rollout, steps
from components import remote as commands
from components.swap_command import swap_args, swap_timeout, version_of
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import Connection
from quayside_cli.stack import Stack, object_value, pulumi_binary

ROLES_KEY: Final = f"{config.NAMESPACE}:roles"
PROXY_KEY: Final = f"{config.NAMESPACE}:proxy"
# The all-or-none switch over several servers (spec: python3 components/rollout.py ... -- SWAP_ARGV).
ROLLOUT: Final = Path(rollout.__file__)


class RollbackError(RuntimeError):
    """What went wrong, in one line that says what to do."""


@dataclass(frozen=True)
class Deployed:
    """A role as one update deployed it."""

    version: str
    image: str
    pinned: str | None  # the role's `version:` key, when the stack pinned one


def digest_reader(stack: Stack) -> image_pin.DigestReader:
    """The registry lookup `pulumi up` makes, with the stack's login; each tag asked once."""
    settings = object_value(stack.config.get(f"{config.NAMESPACE}:registry")) or None
    registry = config.Registry.model_validate(settings) if settings else None
    password = None
    if registry is not None and registry.username is not None:
        password = stack.pulumi("config", "get", f"{config.NAMESPACE}:registry_password").rstrip("\n")
    return functools.cache(image_pin.RegistryDigests(image_pin.login_for(registry, password)))


def role_in(config_values: dict[str, Any], role: str, read_digest: image_pin.DigestReader) -> Deployed | None:
    """The role as a history entry's config describes it, or None when that config has no such role."""
    roles = object_value(config_values.get(ROLES_KEY))
    if role not in roles:
        return None
    parsed = config.Role.model_validate(roles[role])
    if parsed.image.ref is None:
        raise RollbackError(f"roles.{role}: its image is built from a context; pin the earlier digest by hand")
    try:
        ref = image_pin.pinned(parsed.image.ref, read_digest)
    except image_pin.RegistryError as error:
        raise RollbackError(f"roles.{role}.image: {error}") from None
    return Deployed(version_of(parsed, ref), ref, parsed.version)


def earlier_versions(
    history: list[dict[str, Any]], role: str, current: str, read_digest: image_pin.DigestReader
) -> list[Deployed]:
    """The role's versions in successful updates, newest first, without repeats or the current one."""
    found: list[Deployed] = []
    for update in sorted(history, key=lambda entry: entry["version"], reverse=True):
        if update.get("kind") != "update" or update.get("result") != "succeeded":
            continue
        deployed = role_in(update.get("config") or {}, role, read_digest)
        if deployed and deployed.version != current and deployed.version not in {d.version for d in found}:
            found.append(deployed)
    return found


def choose(candidates: list[Deployed], role: str, wanted: str | None) -> Deployed:
    if not candidates:
        raise RollbackError(f"{role} has no earlier version in this stack's history to roll back to")
    if wanted is None:
        return candidates[0]
    for candidate in candidates:
        if wanted in (candidate.version, candidate.version.split("@", 1)[0]):
            return candidate
    known = ", ".join(candidate.version for candidate in candidates)
    raise RollbackError(f"{role} was never deployed at {wanted}; earlier versions: {known}")


def rolled_back(settings: dict[str, Any], target: Deployed) -> dict[str, Any]:
    """A role's settings with the image and version pin `target` had; the rest as they stand."""
    settings = {**settings, "image": target.image}
    settings.pop("version", None)
    if target.pinned is not None:
        settings["version"] = target.pinned
    return settings


def rolled_back_stack_file(stack_file: Path, role: str, target: Deployed) -> dict[str, Any]:
    """The stack file with ROLE rolled back to `target`; the rest as it stands."""
    document: dict[str, Any] = yaml.safe_load(stack_file.read_text())
    roles = document["config"][ROLES_KEY]
    roles[role] = rolled_back(roles[role], target)
    return document


def retained_swap(stack: Stack, role: str, target: Deployed) -> tuple[config.Role, list[str], int] | None:
    """The role as `pulumi up` of the rolled-back stack deploys it, swap.sh --retained-only's arguments for it (the
    same options, so the same config hash) and the swap's timeout; None when that up must run the role's migration
    before its swap."""
    settings = rolled_back(object_value(stack.config.get(ROLES_KEY))[role], target)
    parsed = config.Role.model_validate(settings)
    if parsed.migrate:
        return None
    proxy = config.Proxy.model_validate(object_value(stack.config.get(PROXY_KEY)))
    version = version_of(parsed, target.image)
    args = swap_args(stack.service, role, parsed, target.image, version, proxy=proxy, retained_only=True)
    return parsed, args, swap_timeout(parsed)


def fast_switch_command(stack: Stack, role: str, target: Deployed) -> tuple[str, int] | None:
    """swap.sh --retained-only for the role, as one server's command line, and its timeout; None when the role's
    migration runs first."""
    found = retained_swap(stack, role, target)
    if found is None:
        return None
    _, args, seconds = found
    return commands.script(stack.service, steps.SWAP.name, args, timeout_seconds=seconds), seconds


def hosts_at_once(role: config.Role, servers: int) -> int:
    """How many servers switch at the same time: the role's `boot.limit`, else all of them."""
    return role.boot.hosts_at_once(servers) if role.boot is not None else servers


@dataclass(frozen=True)
class Rollout:
    """components/rollout.py --retained-only over the role's servers: its argv, its stdin (the keys, never an
    argument) and how long it may take."""

    argv: list[str]
    stdin: str
    seconds: int


def rollout_command(stack: Stack, role: str, target: Deployed) -> Rollout | None:
    """The fast switch of a role on several servers, all or none; None when the role's migration runs first."""
    found = retained_swap(stack, role, target)
    if found is None:
        return None
    parsed, args, seconds = found
    names = stack.role_servers(role)
    servers = {name: stack.servers[name] for name in names}
    limit = hosts_at_once(parsed, len(names))
    targets = [rollout.Target(name, at.user, at.host, at.port) for name, at in servers.items()]
    argv = [
        sys.executable, str(ROLLOUT), *rollout.command_line(
            stack.service, role, limit=limit, timeout_seconds=seconds, servers=targets, swap_argv=args,
            retained_only=True,
        ),
    ]  # fmt: skip
    stdin = rollout.stdin_document(
        private_keys={name: stack.private_key(name) for name in names},
        host_keys={name: at.host_key for name, at in servers.items()},
        env_file="",  # swap.sh --retained-only reads none
    )
    # Each wave within the swap's timeout, and once more for the servers that go back after a failed one.
    waves = math.ceil(len(names) / limit)
    return Rollout(argv, stdin, seconds * (waves + 1))


def switch_fast(stack: Stack, role: str, target: Deployed) -> str:
    """Puts the retained container of `target` in service in one SSH session. Returns "" when it serves, else why
    it was left alone (the live version then still serves: swap.sh touches nothing, or puts back what it did)."""
    if stack.several_servers:
        return switch_fast_across(stack, role, target)
    step = fast_switch_command(stack, role, target)
    if step is None:
        return "its migration runs first, in pulumi up"
    command, seconds = step
    started = time.monotonic()
    try:
        with Connection(stack.ssh, stack.private_key(), stack.name) as server:
            done = server.capture(command, timeout=seconds + 30)
    except (QuaysideError, subprocess.TimeoutExpired) as error:
        return str(error)
    failure = told(done, "swap.sh")
    if not failure:
        print(f"rollback: {role} serves {target.version} ({time.monotonic() - started:.1f} s)", flush=True)
    return failure


def told(done: subprocess.CompletedProcess[str], program: str) -> str:
    """Prints what the switch said, indented; "" when it succeeded, else its last line of failure."""
    for line in done.stdout.splitlines():
        print(f"  {line}", flush=True)
    if done.returncode == 0:
        return ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"{program} exited with {done.returncode}"


def switch_fast_across(stack: Stack, role: str, target: Deployed) -> str:
    """The fast switch on every server of the role, all or none (components/rollout.py --retained-only): "" when
    `target` serves on all of them, else why not (each server then serves what it served before)."""
    started = time.monotonic()
    try:
        rollout = rollout_command(stack, role, target)
        if rollout is None:
            return "its migration runs first, in pulumi up"
        done = subprocess.run(
            rollout.argv, input=rollout.stdin, capture_output=True, text=True, timeout=rollout.seconds + 30,
            check=False,
        )  # fmt: skip
    except (QuaysideError, subprocess.TimeoutExpired) as error:
        return str(error)
    failure = told(done, "rollout.py")
    if not failure:
        where = ", ".join(stack.role_servers(role))
        print(f"rollback: {role} serves {target.version} on {where} ({time.monotonic() - started:.1f} s)", flush=True)
    return failure


def read_stack(stack: Stack) -> tuple[list[dict[str, Any]], str | None]:
    """The stack's update history, and who updates it now (None when no one does), read side by side with its
    outputs and config (cached on `stack`): each `pulumi` command spends most of its time starting."""
    with ThreadPoolExecutor(max_workers=5) as pool:
        outputs = pool.submit(lambda: stack.outputs)
        history = pool.submit(stack.pulumi, "stack", "history", "--json")
        config_values = pool.submit(lambda: stack.config)
        listing = pool.submit(stack.pulumi, "stack", "ls", "--json", scoped=False)
        backend = pool.submit(stack.pulumi, "whoami", "--json", scoped=False)
        outputs.result(), config_values.result()
        return list(json.loads(history.result())), updater(stack, listing.result(), backend.result())


def updater(stack: Stack, listing: str, whoami: str) -> str | None:
    """Who updates the stack now, from its backend's lock: Pulumi Cloud says so in `pulumi stack ls`
    (updateInProgress); a file backend keeps a lock file per update under .pulumi/locks. Other backends (s3://,
    gs://, azblob://) are not read: None."""
    for entry in json.loads(listing or "[]"):
        if entry.get("updateInProgress") and str(entry.get("name", "")).rsplit("/", 1)[-1] == stack.name:
            return "an update is in progress (Pulumi Cloud says so)"
    url = str(json.loads(whoami or "{}").get("url", ""))
    if not url.startswith("file://"):
        return None
    root = Path(os.path.expanduser(url.removeprefix("file://") or "~"))
    project = str((yaml.safe_load((stack.directory / "Pulumi.yaml").read_text()) or {}).get("name", ""))
    locks = root / ".pulumi" / "locks"
    for lock in sorted(
        [*locks.glob(f"organization/{project}/{stack.name}/*.json"), *locks.glob(f"{stack.name}/*.json")]
    ):
        try:
            held = json.loads(lock.read_text())
        except (OSError, ValueError):
            return f"its lock {lock} is held"
        return (
            f"pulumi {held.get('command') or 'update'} by {held.get('username', '?')}@{held.get('hostname', '?')}, "
            f"pid {held.get('pid', '?')}, since {held.get('timestamp', '?')}"
        )
    return None


def record(stack: Stack, stack_file: Path, document: dict[str, Any], message: str) -> int:
    """`pulumi up` of the rolled-back stack file, from a temporary 0600 copy; its exit code."""
    with tempfile.TemporaryDirectory(prefix="quayside-rollback-") as scratch:
        copy = Path(scratch) / stack_file.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        os.chmod(copy, 0o600)
        argv = [str(pulumi_binary()), "up", "--yes", "--skip-preview", "--stack", stack.name,
                "--config-file", str(copy), "--message", message]  # fmt: skip
        return subprocess.run(argv, cwd=stack.directory, env=stack.env, check=False).returncode


def refuse_local_images(stack_file: Path, role: str) -> None:
    """registry: none names local images by tag, and a tag may have moved since: the history cannot say which image
    an earlier update sent."""
    document: dict[str, Any] = (yaml.safe_load(stack_file.read_text()) if stack_file.exists() else None) or {}
    if (document.get("config") or {}).get(f"{config.NAMESPACE}:registry") == "none":
        raise RollbackError(
            f"{role}: registry: none deploys local images by tag, which the stack's history cannot tell apart; "
            "deploy the earlier image with pulumi up (its local tag in the stack file)"
        )


def roll_back(stack: Stack, role: str, wanted: str | None) -> int:
    """Rolls `role` of `stack` back to the version `wanted` (default: the one before the live one); its exit code,
    a failure told in one `rollback:` line on stderr."""
    stack_file = stack.directory / f"Pulumi.{stack.name}.yaml"
    try:
        refuse_local_images(stack_file, role)
        history, busy = read_stack(stack)
        if busy is not None:
            raise RollbackError(
                f"stack {stack.name} is being updated now ({busy}): nothing was switched; roll back once that update "
                "has ended, so the two cannot interleave"
            )
        current = stack.role(role)["version"]
        read_digest = digest_reader(stack)
        target = choose(earlier_versions(history, role, current, read_digest), role, wanted)
        document = rolled_back_stack_file(stack_file, role, target)
        print(f"rollback: {role} from {current} to {target.version} ({target.image})", flush=True)
        skipped = switch_fast(stack, role, target)
        if skipped:
            print(f"rollback: no fast switch ({skipped}); pulumi up deploys {target.version}", flush=True)
        else:
            print(f"rollback: recording it in stack {stack.name}: pulumi up", flush=True)
        if record(stack, stack_file, document, f"rollback {role} to {target.version}") != 0:
            serving = current if skipped else f"{target.version} (not yet in the stack's state: run this again)"
            raise RollbackError(f"pulumi up of the rolled-back stack failed (see above); {serving} serves")
    except (RollbackError, QuaysideError) as error:
        print(f"rollback: {error}", file=sys.stderr)
        return 1
    print(f"rollback: {role} now {target.version}; `pulumi up` of {stack_file.name} deploys {current} again")
    return 0
