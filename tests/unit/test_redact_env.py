"""What the server-side steps print of an app (a crashed container's last log lines, a migration's output) shows
none of the values of the env file it ran with: lib.sh's redact_env, run by bash here, and the steps that use it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Final

from components.remote import SCRIPTS_DIR

ENV_FILE: Final = (
    "DATABASE_URL=postgres://acme:s3cr3t-p4ss@db:5432/acme\n"
    "DB_PASSWORD=s3cr3t-p4ss\n"
    "API_TOKEN=tok_&_\\1_*[x]\n"
    "DEBUG=on\n"
    "EMPTY=\n"
)


def redacted(log: str, env_file: Path) -> str:
    """The log through redact_env, as a step pipes it; the env file's path is the only argument."""
    program = f'source "{SCRIPTS_DIR}/lib.sh"; redact_env "$1"'
    done = subprocess.run(
        ["bash", "-c", program, "redact", str(env_file)], input=log, capture_output=True, text=True, timeout=30,
        check=True,
    )  # fmt: skip
    return done.stdout


def test_each_value_of_the_env_file_is_replaced_by_its_key(tmp_path: Path) -> None:
    env_file = tmp_path / "web.env"
    env_file.write_text(ENV_FILE)
    log = (
        "booting with postgres://acme:s3cr3t-p4ss@db:5432/acme\n"
        "auth failed for password s3cr3t-p4ss (token tok_&_\\1_*[x])\n"
        "debug is on"  # the last line without its line end
    )

    assert redacted(log, env_file) == (
        "booting with [redacted DATABASE_URL]\n"
        "auth failed for password [redacted DB_PASSWORD] (token [redacted API_TOKEN])\n"
        # Values under 4 characters stay: `on` would mangle every word holding it.
        "debug is on\n"
    )


def test_without_an_env_file_the_text_goes_through_unchanged(tmp_path: Path) -> None:
    assert redacted("a line\nanother\n", tmp_path / "missing.env") == "a line\nanother\n"


def test_every_step_that_prints_a_containers_output_redacts_its_env_file() -> None:
    printing = {
        "swap.sh": 'docker logs --tail 30 "$id" 2>&1 | redact_env "$(env_file "$service" "$role")"',
        "accessory.sh": (
            'docker logs --tail 30 "$container" 2>&1 | redact_env "$(env_file "$service" "$(secrets_name)")"'
        ),
        "migrate.sh": 'run_migration 2>&1 | redact_env "$(env_file "$service" "$role")"',
    }
    for script, pipe in printing.items():
        text = (SCRIPTS_DIR / script).read_text()
        assert pipe in text, f"{script} prints a container's output without redact_env"
        shown = re.findall(r"^.*(?:docker logs|run_migration 2>&1).*$", text, re.MULTILINE)
        assert all("redact_env" in line for line in shown), shown
