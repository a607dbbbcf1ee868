"""The GitHub workflows: actionlint passes them, and the promises docs/workflows.md makes hold."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from quayside_cli.local_stack import BIN

ROOT: Final = Path(__file__).resolve().parents[2]
WORKFLOWS: Final = ROOT / ".github" / "workflows"
SETUP_STEP: Final = "scripts/setup.d/actionlint.sh"


def actionlint() -> str:
    """The binary scripts/setup.d/actionlint.sh links into $QUAYSIDE_CACHE/bin; fails (never skips) without it."""
    linked = BIN / "actionlint"
    found = str(linked) if linked.is_file() else shutil.which("actionlint")
    if found is None:
        pytest.fail(f"actionlint is not built: run {SETUP_STEP} (or scripts/setup); looked in {linked} and PATH")
    return found


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [step for step in job["steps"] if str(step.get("uses", "")).startswith(f"{action}@")]
    assert len(steps) == 1, f"expected one step using {action}, found {len(steps)}"
    return steps[0]


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_actionlint_passes_the_workflow(name: str) -> None:
    result = subprocess.run(
        [actionlint(), "-no-color", str(WORKFLOWS / name)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, f"actionlint {name} exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_pull_requests_get_the_tests_and_a_plan_comment() -> None:
    preview = workflow("preview.yml")
    assert "pull_request" in preview["on"]
    test_steps = [str(step.get("run", "")) for step in preview["jobs"]["test"]["steps"]]
    assert any("scripts/test" in run for run in test_steps)
    plan = step_using(preview["jobs"]["preview"], "pulumi/actions")["with"]
    assert plan["command"] == "preview"
    assert plan["comment-on-pr"] is True
    assert preview["jobs"]["preview"]["permissions"]["pull-requests"] == "write"


def test_pushes_to_main_deploy_one_at_a_time_and_never_cancel_a_running_deploy() -> None:
    deploy = workflow("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert "deploy-" in deploy["concurrency"]["group"]
    assert step_using(deploy["jobs"]["up"], "pulumi/actions")["with"]["command"] == "up"


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_the_workflows_use_only_the_documented_secrets(name: str) -> None:
    documented = {"PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"}
    text = (WORKFLOWS / name).read_text()
    used = set(re.findall(r"\bsecrets\.([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\||}})", text))
    assert used, f"{name} reads no secrets"
    assert used <= documented, f"{name} uses secrets not in docs/workflows.md: {sorted(used - documented)}"
    docs = (ROOT / "docs" / "workflows.md").read_text()
    assert all(secret in docs for secret in used)
