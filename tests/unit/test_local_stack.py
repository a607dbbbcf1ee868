"""The `local` stack's settings are declared once per language: quayside_cli/local_stack.py for the command, the
tests and the bench; scripts/lib/common.sh and local-stack.sh for scripts/up and scripts/down. Both give `pulumi` the
same backend and passphrase, and so does the README's line for typing `pulumi` by hand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
BASH: Final = (
    "source scripts/lib/common.sh && source scripts/lib/local-stack.sh && "
    'printf "%s\\n" "$LOCAL_STACK" "$PULUMI_BACKEND_URL" "$PULUMI_CONFIG_PASSPHRASE" "$PULUMI_SKIP_UPDATE_CHECK"'
)
PYTHON: Final = (
    "import json; from quayside_cli import local_stack; "
    "print(json.dumps([local_stack.NAME, *local_stack.env().values()]))"
)
README_EXPORT: Final = re.compile(
    r'PULUMI_BACKEND_URL="(?P<backend>[^"]+)" PULUMI_CONFIG_PASSPHRASE=(?P<passphrase>\S+)'
)


def settings(argv: list[str], home: Path, cache: Path | None) -> list[str]:
    """What argv prints with `home` as HOME, and `cache` as QUAYSIDE_CACHE when given."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PULUMI_", "QUAYSIDE_"))}
    env.update({"HOME": str(home), **({"QUAYSIDE_CACHE": str(cache)} if cache else {})})
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.splitlines()


@pytest.mark.parametrize("cache_moved", [False, True])
def test_bash_and_python_give_pulumi_the_same_local_stack(tmp_path: Path, cache_moved: bool) -> None:
    cache = tmp_path / "elsewhere" if cache_moved else None

    from_bash = settings(["bash", "-c", BASH], tmp_path, cache)
    from_python = json.loads(settings([sys.executable, "-c", PYTHON], tmp_path, cache)[0])

    assert from_bash == from_python
    state = (cache or tmp_path / ".cache" / "quayside") / "state"
    assert from_python[:3] == ["local", f"file://{state}", "quayside-local-stack"] and state.is_dir()


def test_the_readme_types_pulumi_by_hand_with_the_same_backend_and_passphrase(tmp_path: Path) -> None:
    typed = README_EXPORT.search((ROOT / "README.md").read_text())
    assert typed is not None, "README.md: the `export ... PULUMI_BACKEND_URL=...` line for typing pulumi by hand"

    from_python = json.loads(settings([sys.executable, "-c", PYTHON], tmp_path, None)[0])

    assert [typed["backend"].replace("$HOME", str(tmp_path)), typed["passphrase"]] == from_python[1:3]
