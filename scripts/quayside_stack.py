"""Runs a quayside stack with the real Pulumi engine through the Automation API.

`pulumi up -s <stack>` in the project directory is the ordinary way, and needs Pulumi's Python language
host. This runner drives the same program (__main__.py) as an inline program instead, so it works where
only the `pulumi` CLI is installed, as on the bench scripts/setup builds. For the `local` stack it also
sets the one secret the loopback server needs (its generated SSH key) and keeps state in a file backend
under the cache, so the repository's files stay untouched.

    python scripts/quayside_stack.py up|preview|destroy|outputs [--stack local]
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

from pulumi import automation as auto

ROOT: Final = Path(__file__).resolve().parents[1]
CACHE: Final = Path(os.environ.get("QUAYSIDE_CACHE", Path.home() / ".cache" / "quayside"))
COMMAND_PLUGIN_VERSION: Final = "1.2.1"
# The local stack's secrets are a generated loopback key; other stacks bring their own passphrase.
LOCAL_PASSPHRASE: Final = "quayside-local-stack"


class StackError(RuntimeError):
    pass


def program() -> None:
    runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


def workspace_dir(stack: str) -> Path:
    """A copy of the project and stack file: Pulumi writes secrets and salts there, not into the repo."""
    work = CACHE / "stacks" / stack
    work.mkdir(parents=True, exist_ok=True)
    # The program runs inline (see program()), so the project file names no virtualenv here.
    (work / "Pulumi.yaml").write_text("name: quayside\nruntime: python\n")
    source = ROOT / f"Pulumi.{stack}.yaml"
    if not source.is_file():
        raise StackError(f"no stack file {source.name}: stacks are " + ", ".join(stack_names()))
    target = work / source.name
    # Keep the encryption salt Pulumi added on a previous run; take everything else from the repo.
    kept = target.read_text().splitlines() if target.exists() else []
    salt = [line for line in kept if line.startswith("encryptionsalt:")]
    target.write_text("\n".join([*salt, source.read_text()]))
    return work


def stack_names() -> list[str]:
    return sorted(path.name.split(".")[1] for path in ROOT.glob("Pulumi.*.yaml"))


def plugin_home(env: dict[str, str]) -> str:
    """The PULUMI_HOME holding the command provider plugin: $PULUMI_HOME, the one scripts/setup installs
    into, or Pulumi's own ~/.pulumi; a clear error naming the install step when none has it."""
    candidates = [os.environ["PULUMI_HOME"]] if "PULUMI_HOME" in os.environ else []
    candidates += [str(CACHE / "pulumi-home"), str(Path.home() / ".pulumi")]
    for home in candidates:
        listed = subprocess.run(
            ["pulumi", "plugin", "ls", "--json"], capture_output=True, text=True, env={**env, "PULUMI_HOME": home}
        )
        plugins = json.loads(listed.stdout or "[]") if listed.returncode == 0 else []
        if any(p.get("name") == "command" and p.get("version") == COMMAND_PLUGIN_VERSION for p in plugins):
            return home
    raise StackError(
        f"the Pulumi command provider plugin v{COMMAND_PLUGIN_VERSION} is not installed in "
        f"{' or '.join(candidates)}: run `pulumi plugin install resource command {COMMAND_PLUGIN_VERSION}` "
        f"(or, offline, `... --file <pulumi-resource-command binary>`; scripts/setup.d/pulumi.sh installs one it finds)"
    )


def open_stack(name: str) -> auto.Stack:
    if shutil.which("pulumi") is None:
        raise StackError("no pulumi CLI on PATH: run scripts/setup")
    env = {
        "PULUMI_SKIP_UPDATE_CHECK": "1",
        "PULUMI_BACKEND_URL": os.environ.get("PULUMI_BACKEND_URL", f"file://{CACHE / 'state'}"),
    }
    if name == "local":
        env.setdefault("PULUMI_CONFIG_PASSPHRASE", os.environ.get("PULUMI_CONFIG_PASSPHRASE", LOCAL_PASSPHRASE))
    (CACHE / "state").mkdir(parents=True, exist_ok=True)
    env["PULUMI_HOME"] = plugin_home({**os.environ, **env})
    workspace = auto.LocalWorkspace(work_dir=str(workspace_dir(name)), program=program, env_vars=env)
    stack = auto.Stack.create_or_select(name, workspace)
    if name == "local":
        key = CACHE / "testbed" / "sshd" / "client_ed25519"
        if not key.is_file():
            raise StackError(f"{key} is missing: run scripts/setup (it starts the loopback test server)")
        stack.set_config("ssh_private_key", auto.ConfigValue(key.read_text(), secret=True))
    return stack


def print_urls(outputs: auto.OutputMap) -> None:
    roles = outputs["roles"].value if "roles" in outputs else {}
    for role, details in roles.items():
        print(f"{role}: version {details['version']}: {' '.join(details['urls']) or '(no proxy route)'}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "preview", "destroy", "outputs"])
    stacks = ", ".join(stack_names())
    parser.add_argument("--stack", default="local", help=f"a stack with a Pulumi.<stack>.yaml: {stacks}")
    args = parser.parse_args(argv)
    try:
        stack = open_stack(args.stack)
        if args.action == "up":
            stack.up(on_output=print, color="never")
        elif args.action == "preview":
            stack.preview(on_output=print, color="never", diff=True)
        elif args.action == "destroy":
            stack.destroy(on_output=print, color="never")
        print_urls(stack.outputs())
    except (StackError, auto.errors.CommandError) as error:
        print(f"quayside: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
