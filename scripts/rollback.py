"""Rolls one role back to an earlier version through `pulumi up`, so Pulumi's state and the server agree.

    scripts/rollback [-s STACK] ROLE [VERSION]      (default: the version before the one deployed now)

The earlier versions are read from the stack's update history (each update records its config); a tag there
is pinned to the digest it names in its registry now, as `pulumi up` pins it, and VERSION may be given as the
tag alone (v1 for v1@093c6d79f8b3). The stack file is deployed with ROLE's image pinned by that digest (and its
version pin) as they were then, from a temporary copy of the stack file; the file itself is left alone. On the
server the retained container of that version starts again if its options are unchanged (`swap.sh` sees the
same config), else a fresh one boots; kamal-proxy switches as on any deploy and the newer version stays stopped
for a roll forward. The next `pulumi up` of the stack file as it stands deploys the newer version again. A tag
re-pushed since it was deployed names its new digest: roll back to the old one by pinning it (repo@sha256:...).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components import config, image_pin  # noqa: E402
from components.role import version_of  # noqa: E402

ROLES_KEY: Final = f"{config.NAMESPACE}:roles"


class RollbackError(RuntimeError):
    """What went wrong, in one line that says what to do."""


@dataclass(frozen=True)
class Deployed:
    """A role as one update deployed it."""

    version: str
    image: str
    pinned: str | None  # the role's `version:` key, when the stack pinned one


def pulumi(*args: str) -> str:
    done = subprocess.run(["pulumi", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise RollbackError(f"pulumi {args[0]} {args[1] if len(args) > 1 else ''}: {lines[-1] if lines else 'failed'}")
    return done.stdout


def digest_reader(stack: str, document: dict[str, Any]) -> image_pin.DigestReader:
    """The registry lookup `pulumi up` makes, with the stack's login; each tag asked once."""
    settings = document.get("config", {}).get(f"{config.NAMESPACE}:registry")
    registry = config.Registry.model_validate(settings) if isinstance(settings, dict) else None
    password = None
    if registry is not None and registry.username is not None:
        password = pulumi("config", "get", f"{config.NAMESPACE}:registry_password", "--stack", stack).rstrip("\n")
    return functools.cache(image_pin.RegistryDigests(image_pin.login_for(registry, password)))


def role_in(config_values: dict[str, Any], role: str, read_digest: image_pin.DigestReader) -> Deployed | None:
    """The role as a history entry's config describes it, or None when that config has no such role."""
    entry = config_values.get(ROLES_KEY)
    if entry is None:
        return None
    roles = entry.get("objectValue") or json.loads(entry["value"])
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


def earlier_versions(stack: str, role: str, current: str, read_digest: image_pin.DigestReader) -> list[Deployed]:
    """The role's versions in successful updates, newest first, without repeats or the current one."""
    history = json.loads(pulumi("stack", "history", "--json", "--stack", stack))
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


def rolled_back_stack_file(stack_file: Path, role: str, target: Deployed) -> dict[str, Any]:
    """The stack file with ROLE's image and version pin as `target` had them; the rest as it stands."""
    document: dict[str, Any] = yaml.safe_load(stack_file.read_text())
    settings = document["config"][ROLES_KEY][role]
    settings["image"] = target.image
    settings.pop("version", None)
    if target.pinned is not None:
        settings["version"] = target.pinned
    return document


def refuse_local_images(stack_file: Path, role: str) -> None:
    """registry: none names local images by tag, and a tag may have moved since: the history cannot say which image
    an earlier update sent."""
    document: dict[str, Any] = (yaml.safe_load(stack_file.read_text()) if stack_file.exists() else None) or {}
    if (document.get("config") or {}).get(f"{config.NAMESPACE}:registry") == "none":
        raise RollbackError(
            f"{role}: registry: none deploys local images by tag, which the stack's history cannot tell apart; "
            "deploy the earlier image with pulumi up (its local tag in the stack file)"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-s", "--stack", default="local", help="the stack (default: local)")
    parser.add_argument("role", help="the role to roll back")
    parser.add_argument("version", nargs="?", help="the version to go back to (default: the one before)")
    args = parser.parse_args(argv)
    stack_file = Path.cwd() / f"Pulumi.{args.stack}.yaml"  # run in the project directory, as pulumi is
    try:
        refuse_local_images(stack_file, args.role)
        outputs = json.loads(pulumi("stack", "output", "--json", "--stack", args.stack))
        roles = outputs.get("roles") or {}
        if args.role not in roles:
            raise RollbackError(f"stack {args.stack} has no role {args.role}; roles: {', '.join(roles) or 'none'}")
        current = roles[args.role]["version"]
        read_digest = digest_reader(args.stack, yaml.safe_load(stack_file.read_text()))
        target = choose(earlier_versions(args.stack, args.role, current, read_digest), args.role, args.version)
        document = rolled_back_stack_file(stack_file, args.role, target)
        print(f"rollback: {args.role} from {current} to {target.version} ({target.image})", flush=True)
        with tempfile.TemporaryDirectory(prefix="quayside-rollback-") as scratch:
            rolled_back = Path(scratch) / stack_file.name
            rolled_back.write_text(yaml.safe_dump(document, sort_keys=False))
            os.chmod(rolled_back, 0o600)
            done = subprocess.run(
                ["pulumi", "up", "--yes", "--skip-preview", "--stack", args.stack, "--config-file", str(rolled_back),
                 "--message", f"rollback {args.role} to {target.version}"],
                check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise RollbackError(f"pulumi up of the rolled-back stack failed (see above); {current} still serves")
    except RollbackError as error:
        print(f"rollback: {error}", file=sys.stderr)
        return 1
    print(f"rollback: {args.role} now {target.version}; `pulumi up` of {stack_file.name} deploys {current} again")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
