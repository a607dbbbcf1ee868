"""The selected Pulumi stack as the command sees it: where its project is, how to run `pulumi` for it, its outputs
(the service, its servers and how to reach each, where each role and accessory runs) and its SSH keys, taken as the
program takes them.

A stack with `servers:` exports `hosts` (each server's SSH endpoint by name), `roles.<R>.servers` and
`accessory_servers`; a one-server stack, and every stack deployed before, has only `ssh`: its one server is named
`server` here, and every role and accessory runs there."""

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
# The name a one-server stack's server goes by (components/config: `servers_by_name()` of a `server:` stack).
ONE_SERVER: Final = "server"


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
    _key_secret: str | None = field(default=None, repr=False)

    @classmethod
    def open(cls, name: str | None, directory: Path | None) -> Stack:
        where = project_dir(directory)
        chosen = name or selected_stack(where) or local_stack.NAME
        env = {**os.environ, **(local_stack.env() if chosen == local_stack.NAME else {})}
        env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "1")
        binary = pulumi_binary()
        env["PATH"] = f"{binary.parent}{os.pathsep}{env.get('PATH', '')}"
        return cls(chosen, where, env)

    def pulumi(self, *args: str, timeout: float = PULUMI_TIMEOUT_SECONDS, scoped: bool = True) -> str:
        """stdout of `pulumi ARGS --stack NAME` in the project directory (without --stack when not `scoped`: a
        command of the backend, not of a stack); a failure is one line naming the stack."""
        argv = [str(pulumi_binary()), *args, *(["--stack", self.name] if scoped else []), "--non-interactive"]
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
        """How deploys reach the (first) server: the `ssh` output."""
        return endpoint_of(self.outputs["ssh"])

    @property
    def several_servers(self) -> bool:
        """Whether the stack was deployed with `servers:` (it exports `hosts`)."""
        return bool(self.outputs.get("hosts"))

    @property
    def servers(self) -> dict[str, Endpoint]:
        """Each server's SSH endpoint by name, in the stack's order: the `hosts` output, else the `ssh` output as the
        one server named `server`."""
        hosts: dict[str, Any] = self.outputs.get("hosts") or {}
        if not hosts:
            return {ONE_SERVER: self.ssh}
        return {str(name): endpoint_of(host) for name, host in hosts.items()}

    def role_servers(self, role: str) -> list[str]:
        """The servers a role runs on (`roles.<R>.servers`), in the stack's order; the one server otherwise."""
        listed = self.role(role).get("servers")
        return [str(name) for name in listed] if listed else list(self.servers)

    def accessory_server(self, accessory: str) -> str:
        """The server an accessory runs on (`accessory_servers`); the first server otherwise."""
        placed: dict[str, Any] = self.outputs.get("accessory_servers") or {}
        return str(placed.get(accessory) or next(iter(self.servers)))

    def chosen_server(self, name: str, among: list[str], wanted: str | None) -> str:
        """`--host`: the server `wanted` among those `name` (a role or an accessory) runs on; default the first."""
        if wanted is None:
            return among[0]
        if wanted not in among:
            what = "role" if name in self.roles else "accessory"
            raise QuaysideError(
                f"stack {self.name}: {what} {name} has no server {wanted}; its servers: {', '.join(among)}"
            )
        return wanted

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

    def private_key(self, server: str = ONE_SERVER) -> str:
        """The key deploys use to reach `server`: its `private_key_file` in the stack's config
        (`servers.<S>.private_key_file`, or `server.private_key_file` for the one server), else the `ssh_private_key`
        secret (decrypted by `pulumi config get` once, kept in memory). Never printed, never an argument."""
        values = self.config
        several = f"{NAMESPACE}:servers" in values
        if several:
            entry = object_value(values.get(f"{NAMESPACE}:servers")).get(server)
            settings = entry if isinstance(entry, dict) else {}
        else:
            settings = object_value(values.get(f"{NAMESPACE}:server"))
        key = f"servers.{server}.private_key_file" if several else "server.private_key_file"
        named = settings.get("private_key_file")
        if named:
            path = Path(str(named)).expanduser()
            if not path.is_absolute():
                path = self.directory / path
            try:
                return path.read_text()
            except OSError as error:
                raise QuaysideError(f"stack {self.name}: {key}: cannot read {path} ({error.strerror})") from None
        if f"{NAMESPACE}:ssh_private_key" not in values:
            raise QuaysideError(
                f"stack {self.name} has no SSH key: set {key}, or "
                f"`pulumi config set --secret ssh_private_key -s {self.name} < KEY_FILE`"
            )
        if self._key_secret is None:
            self._key_secret = self.pulumi("config", "get", f"{NAMESPACE}:ssh_private_key")
        return self._key_secret


def endpoint_of(output: dict[str, Any]) -> Endpoint:
    """An `ssh` or `hosts.<S>` output: host, port, user and host key."""
    return Endpoint(str(output["host"]), int(output["port"]), str(output["user"]), str(output["host_key"]))


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
