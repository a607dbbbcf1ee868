"""scripts/plan and scripts/rollback are the `quayside` command of their checkout: the local stack of the checkout's
project unless -s names another stack, the rest of their arguments as the verb's."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
# Stands in for the checkout's .venv/bin/python: prints what it was asked to run, and with which import path.
FAKE_PYTHON: Final = """#!/usr/bin/env python3
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "path": os.environ["PYTHONPATH"].split(":")[0]}))
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the wrappers, with a stand-in virtualenv."""
    for name in ("plan", "rollback", "lib/quayside.sh"):
        (tmp_path / "scripts" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def ran(checkout: Path, *argv: str) -> dict[str, object]:
    done = subprocess.run(
        [str(checkout / "scripts" / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=30, check=True
    )
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_plan_previews_the_local_stack_of_the_checkout_with_the_options_given(checkout: Path) -> None:
    assert ran(checkout, "plan", "--refresh") == {
        "argv": ["-m", "quayside_cli", "-s", "local", "--cwd", str(checkout), "plan", "--", "--refresh"],
        "path": str(checkout),
    }
    assert ran(checkout, "plan", "--diff", "-s", "prod", "--cwd", "/srv/acme")["argv"] == [
        "-m", "quayside_cli", "-s", "prod", "--cwd", "/srv/acme", "plan", "--", "--diff",
    ]  # fmt: skip


def test_rollback_rolls_back_a_role_of_the_local_stack_or_of_the_one_named(checkout: Path) -> None:
    assert ran(checkout, "rollback", "web")["argv"] == [
        "-m", "quayside_cli", "-s", "local", "--cwd", str(checkout), "rollback", "web",
    ]  # fmt: skip
    assert ran(checkout, "rollback", "--stack=prod", "web", "v1.4")["argv"] == [
        "-m", "quayside_cli", "-s", "prod", "--cwd", str(checkout), "rollback", "web", "v1.4",
    ]  # fmt: skip


def test_a_checkout_without_its_virtualenv_says_to_set_up(checkout: Path) -> None:
    shutil.rmtree(checkout / ".venv")

    done = subprocess.run([str(checkout / "scripts" / "plan")], capture_output=True, text=True, timeout=30)

    assert done.returncode == 1
    assert done.stderr == f"plan: {checkout}/.venv/bin/python is missing: run scripts/setup\n"
