"""The selected Pulumi stack as the command sees it: where its project is, how to run `pulumi` for it, its outputs
(the service and how to reach the server) and its SSH key, taken as the program takes it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from components.ssh import Endpoint
from quayside_cli import local_stack
from quayside_cli.errors import QuaysideError

ROOT: Final = Path(__file__).resolve().parents[1]
NAMESPACE: Final = "quayside"
PULUMI_TIMEOUT_SECONDS: Final = 120


def pulumi_binary() -> Path:
    """`pulumi` on PATH, else the one set-up builds into ~/.cache/quayside/bin."""
    found = shutil.which("pulumi")
    if found:
        return Path(found)
    built = local_stack.BIN / "pulumi"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    raise QuaysideError("no pulumi on PATH or in ~/.cache/quayside/bin: run scripts/setup, or install the Pulumi CLI")


def project_dir(given: Path | None) -> Path:
    """The directory of Pulumi.yaml: --cwd, else the nearest one up from here, else this repository."""
    if given is not None:
        if not (given / "Pulumi.yaml").is_file():
            raise QuaysideError(f"--cwd {given} has no Pulumi.yaml: give the quayside project's directory")
        return given
    for directory in [Path.cwd(), *Path.cwd().parents]:
        if (directory / "Pulumi.yaml").is_file():
            return directory
    if (ROOT / "Pulumi.yaml").is_file():
        return ROOT
    raise QuaysideError("no Pulumi.yaml here or above: run quayside in the project's directory, or give --cwd")


@dataclass
class Stack:
    """One stack of one project; `pulumi` runs in its directory with the stack's backend settings."""

    name: str
    directory: Path
    env: dict[str, str]
    _outputs: dict[str, Any] | None = field(default=None, repr=False)
    _config: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, name: str | None, directory: Path | None) -> Stack:
        where = project_dir(directory)
        chosen = name or selected_stack(where) or local_stack.NAME
        env = {**os.environ, **(local_stack.env() if chosen == local_stack.NAME else {})}
        env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "1")
        binary = pulumi_binary()
        env["PATH"] = f"{binary.parent}{os.pathsep}{env.get('PATH', '')}"
        return cls(chosen, where, env)

    def pulumi(self, *args: str, timeout: float = PULUMI_TIMEOUT_SECONDS) -> str:
        """stdout of `pulumi ARGS --stack NAME` in the project directory; a failure is one line naming the stack."""
        argv = [str(pulumi_binary()), *args, "--stack", self.name, "--non-interactive"]
        done = subprocess.run(
            argv, cwd=self.directory, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise QuaysideError(self._explain(args, done.stderr or done.stdout))
        return done.stdout

    def _explain(self, args: tuple[str, ...], message: str) -> str:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        last = lines[-1] if lines else "failed"
        if "no stack named" in message:
            backend = self.env.get("PULUMI_BACKEND_URL", "your Pulumi login")
            return (
                f"stack {self.name} does not exist in {backend}: give -s with one of `pulumi stack ls`, "
                f"or create and deploy it (pulumi stack init {self.name}; pulumi up -s {self.name})"
            )
        if "PULUMI_ACCESS_TOKEN" in message or "pulumi login" in message:
            return (
                f"stack {self.name}: no Pulumi backend is logged in: `pulumi login` (or set PULUMI_BACKEND_URL) "
                "where the stack lives; only the local stack needs neither"
            )
        if "passphrase" in message.lower():
            return f"stack {self.name}: {last} (set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE)"
        return f"stack {self.name}: pulumi {' '.join(args[:2])}: {last}"

    # --- outputs ---

    @property
    def outputs(self) -> dict[str, Any]:
        if self._outputs is None:
            outputs: dict[str, Any] = json.loads(self.pulumi("stack", "output", "--json") or "{}")
            if not outputs:
                raise QuaysideError(
                    f"stack {self.name} has never been deployed (it has no outputs): run `pulumi up -s {self.name}`"
                    + (" or scripts/up" if self.name == local_stack.NAME else "")
                )
            if "ssh" not in outputs or "service" not in outputs:
                raise QuaysideError(
                    f"stack {self.name} was last deployed before quayside exported `service` and `ssh`: "
                    f"run `pulumi up -s {self.name}` once"
                )
            self._outputs = outputs
        return self._outputs

    @property
    def service(self) -> str:
        return str(self.outputs["service"])

    @property
    def ssh(self) -> Endpoint:
        """How deploys reach the server: the `ssh` output."""
        ssh = self.outputs["ssh"]
        return Endpoint(str(ssh["host"]), int(ssh["port"]), str(ssh["user"]), str(ssh["host_key"]))

    @property
    def roles(self) -> dict[str, dict[str, Any]]:
        roles: dict[str, dict[str, Any]] = self.outputs.get("roles") or {}
        return roles

    @property
    def accessories(self) -> list[str]:
        return [str(name) for name in self.outputs.get("accessories") or []]

    def role(self, name: str) -> dict[str, Any]:
        if name not in self.roles:
            raise QuaysideError(f"stack {self.name} has no role {name}; its roles: {', '.join(self.roles) or 'none'}")
        return self.roles[name]

    # --- the config and the SSH key ---

    @property
    def config(self) -> dict[str, Any]:
        """`pulumi config --json`: the stack's config as the program gets it (the project's defaults merged in),
        each key's entry with its value; secrets stay `[secret]`."""
        if self._config is None:
            self._config = json.loads(self.pulumi("config", "--json"))
        return self._config

    def private_key(self) -> str:
        """The key deploys use: `server.private_key_file` from the stack's config, else the `ssh_private_key`
        secret (decrypted by `pulumi config get`, kept in memory). Never printed, never an argument."""
        values = self.config
        server = object_value(values.get(f"{NAMESPACE}:server"))
        named = server.get("private_key_file")
        if named:
            path = Path(str(named)).expanduser()
            if not path.is_absolute():
                path = self.directory / path
            try:
                return path.read_text()
            except OSError as error:
                raise QuaysideError(
                    f"stack {self.name}: server.private_key_file: cannot read {path} ({error.strerror})"
                ) from None
        if f"{NAMESPACE}:ssh_private_key" not in values:
            raise QuaysideError(
                f"stack {self.name} has no SSH key: set server.private_key_file, or "
                f"`pulumi config set --secret ssh_private_key -s {self.name} < KEY_FILE`"
            )
        return self.pulumi("config", "get", f"{NAMESPACE}:ssh_private_key")


def object_value(entry: Any) -> dict[str, Any]:
    """A `pulumi config --json` entry's object value (given as objectValue, or as JSON/YAML text in value)."""
    if not isinstance(entry, dict):
        return {}
    value = entry.get("objectValue")
    if value is None and isinstance(entry.get("value"), str):
        value = yaml.safe_load(entry["value"])
    return value if isinstance(value, dict) else {}


def selected_stack(directory: Path) -> str | None:
    """The stack `pulumi stack select` chose in this directory, with the user's backend; None when there is none
    (or no backend is logged in): the local stack then."""
    try:
        binary = pulumi_binary()
    except QuaysideError:
        return None
    env = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "1"}
    done = subprocess.run(
        [str(binary), "stack", "--show-name", "--non-interactive"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    name = done.stdout.strip()
    return name if done.returncode == 0 and name else None
