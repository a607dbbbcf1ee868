"""The real Pulumi engine for tests: inline Automation API programs against a throwaway local file backend.

Programs run in this Python process (Automation API inline programs pass `--client` to the CLI), so no Python
language host is needed; the CLI is the one scripts/setup.d/pulumi.sh builds, pinned to the SDK's version.
Nothing here touches the network: state lives under a test's tmp dir, plugins come from PULUMI_HOME only.

    backend = LocalBackend.create(tmp_path)
    stack = backend.stack("demo", "dev", program, config={"greeting": "hi", "token": secret("s3cr3t")})
    result = stack.up(on_output=print)
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any, Final

import yaml
from pulumi import automation as auto

from quayside_cli import local_stack

ROOT: Final = Path(__file__).resolve().parents[2]
# Where scripts/setup.d/plugins.sh installs the providers: Pulumi's own default, as a user's `pulumi` reads it.
PULUMI_HOME: Final = Path(os.environ.get("PULUMI_HOME", Path.home() / ".pulumi"))
SETUP_HINT: Final = "run scripts/setup.d/pulumi.sh (it builds the pinned Pulumi CLI into ~/.cache/quayside/bin)"
PASSPHRASE: Final = "quayside-tests-only"


class PulumiMissing(RuntimeError):
    """The pinned Pulumi CLI is not installed; the message says how to install it."""


def sdk_version() -> str:
    """The pulumi Python SDK's version; the CLI must be exactly this version."""
    return installed_version("pulumi")


def _cli_candidates() -> list[Path]:
    found = [local_stack.BIN / "pulumi"]
    on_path = shutil.which("pulumi")
    if on_path:
        found.append(Path(on_path))
    return found


def _cli_version(cli: Path) -> str:
    env = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "1"}
    done = subprocess.run([cli, "version"], capture_output=True, text=True, env=env, timeout=60, check=False)
    return done.stdout.strip().removeprefix("v") if done.returncode == 0 else ""


@functools.cache
def pulumi_cli() -> Path:
    """The real path of the pinned `pulumi` binary; raises PulumiMissing (never skips) when there is none."""
    want = sdk_version()
    seen: list[str] = []
    for candidate in _cli_candidates():
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        got = _cli_version(candidate)
        if got == want:
            return candidate.resolve()
        seen.append(f"{candidate} is {got or 'unusable'}")
    found = "; ".join(seen) if seen else f"no pulumi in {local_stack.BIN} or on PATH"
    raise PulumiMissing(f"Pulumi CLI {want} is missing ({found}): {SETUP_HINT}")


@functools.cache
def pulumi_command() -> auto.PulumiCommand:
    """An Automation API handle on the pinned CLI (PulumiCommand runs `<root>/bin/pulumi`)."""
    cli = pulumi_cli()
    if cli.parent.name != "bin":
        # PulumiCommand only knows the <root>/bin/pulumi layout; give it one.
        root = local_stack.CACHE / "pulumi-root"
        (root / "bin").mkdir(parents=True, exist_ok=True)
        link = root / "bin" / "pulumi"
        link.unlink(missing_ok=True)
        link.symlink_to(cli)
        return auto.PulumiCommand(root=str(root))
    return auto.PulumiCommand(root=str(cli.parent.parent))


def secret(value: str) -> auto.ConfigValue:
    """A config value that Pulumi stores encrypted (`pulumi config set --secret`)."""
    return auto.ConfigValue(value=value, secret=True)


@dataclass(frozen=True)
class LocalBackend:
    """A `file://` backend in one directory, with a passphrase secrets provider; stacks share it."""

    directory: Path
    passphrase: str = PASSPHRASE

    @classmethod
    def create(cls, directory: Path) -> LocalBackend:
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory=directory)

    @property
    def url(self) -> str:
        return f"file://{self.directory}"

    def env(self) -> dict[str, str]:
        """What every CLI call gets: no update check, no plugin downloads, the test passphrase."""
        return {
            "PULUMI_BACKEND_URL": self.url,
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "1",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "1",  # pulumi_cli() already checked it is the SDK's
            # Dynamic providers (pulumi-resource-pulumi-python) run this interpreter with this import path, so the
            # provider classes a test module defines (pickled by reference) load there as they do here.
            "PULUMI_PYTHON_CMD": sys.executable,
            "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry),
        }

    def stack(
        self,
        project: str,
        stack: str,
        program: auto.PulumiFn,
        config: Mapping[str, str | auto.ConfigValue] | None = None,
    ) -> auto.Stack:
        """Creates (or selects) `project/stack` running `program` inline, and sets `config` on it.

        Config keys without a namespace land in the project's namespace (`pulumi.Config()` reads them).
        """
        work_dir = self.directory / "work" / project
        work_dir.mkdir(parents=True, exist_ok=True)
        options = auto.LocalWorkspaceOptions(
            work_dir=str(work_dir),
            pulumi_home=str(PULUMI_HOME),
            pulumi_command=pulumi_command(),
            env_vars=self.env(),
            secrets_provider="passphrase",
            project_settings=auto.ProjectSettings(
                name=project, runtime="python", backend=auto.ProjectBackend(url=self.url)
            ),
        )
        handle = auto.create_or_select_stack(stack_name=stack, project_name=project, program=program, opts=options)
        if config:
            values = {key: value if isinstance(value, auto.ConfigValue) else auto.ConfigValue(value=value)
                      for key, value in config.items()}  # fmt: skip
            handle.set_all_config(values)
        return handle

    @staticmethod
    def reference_name(project: str, stack: str) -> str:
        """The name a pulumi.StackReference uses for a stack on a file backend."""
        return f"organization/{project}/{stack}"

    def state_file(self, project: str, stack: str) -> Path:
        """Where the file backend keeps the stack's current checkpoint."""
        return self.directory / ".pulumi" / "stacks" / project / f"{stack}.json"

    def state(self, project: str, stack: str) -> dict[str, Any]:
        checkpoint: dict[str, Any] = json.loads(self.state_file(project, stack).read_text())
        return checkpoint

    def files_containing(self, text: str) -> list[Path]:
        """Every file under the backend (state, backups, history, stack config) whose bytes contain `text`."""
        needle = text.encode()
        return sorted(path for path in self.directory.rglob("*") if path.is_file() and needle in path.read_bytes())


def program_runtime() -> dict[str, Any]:
    """Pulumi.yaml's `runtime`, with the repository's .venv wherever the project file is written."""
    runtime: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]
    runtime["options"]["virtualenv"] = str(ROOT / ".venv")
    return runtime


@dataclass(frozen=True)
class QuaysideProject:
    """quayside's own program (`__main__.py`, `components/`) as `pulumi up` runs it in the project directory:
    through Pulumi's Python language host and the project's `.venv`, no inline program. A scratch copy of
    Pulumi.yaml points `main` at the repository, so a test's stack file and state stay out of it."""

    backend: LocalBackend
    work_dir: Path

    @classmethod
    def create(cls, directory: Path) -> QuaysideProject:
        work_dir = directory / "project"
        work_dir.mkdir(parents=True, exist_ok=True)
        project = {**yaml.safe_load((ROOT / "Pulumi.yaml").read_text()), "runtime": program_runtime()}
        project["main"] = os.path.relpath(ROOT, work_dir)
        (work_dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        return cls(backend=LocalBackend.create(directory / "backend"), work_dir=work_dir)

    def env(self) -> dict[str, str]:
        """The backend's, less what only inline programs need: the language host runs the project's .venv."""
        inline_only = {"PULUMI_PYTHON_CMD", "PYTHONPATH"}
        return {key: value for key, value in self.backend.env().items() if key not in inline_only}

    def stack(self, name: str, config: Mapping[str, Any]) -> auto.Stack:
        """Writes Pulumi.<name>.yaml with `config` (as a stack file holds it) and creates or selects the stack.
        The salt Pulumi wrote there when it created the stack is kept: secrets stay readable."""
        stack_file = self.work_dir / f"Pulumi.{name}.yaml"
        written = yaml.safe_load(stack_file.read_text()) if stack_file.exists() else {}
        salt = {"encryptionsalt": written["encryptionsalt"]} if "encryptionsalt" in written else {}
        stack_file.write_text(yaml.safe_dump({"config": dict(config), **salt}, sort_keys=False))
        options = auto.LocalWorkspaceOptions(
            work_dir=str(self.work_dir),
            pulumi_home=str(PULUMI_HOME),
            pulumi_command=pulumi_command(),
            env_vars=self.env(),
            secrets_provider="passphrase",
        )
        return auto.create_or_select_stack(stack_name=name, work_dir=str(self.work_dir), opts=options)
