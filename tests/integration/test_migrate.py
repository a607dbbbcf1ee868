"""migrate.sh: a one-off container of the new image, with the role's env, before the swap."""

from __future__ import annotations

import subprocess

from tests.integration.conftest import Service
from tests.support import images
from tests.support.docker import docker


def migrate(service: Service, *command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return service.migrate("backend", images.POSTGRES, "m1", "--env", "STAGE=production", "--", *command, stdin=stdin)


def test_a_migration_runs_with_the_role_env_and_its_output_is_shown(service: Service) -> None:
    script = 'test "$DATABASE_PASSWORD" = hunter2 && echo "migrated $STAGE"'

    done = migrate(service, "sh", "-c", script, stdin="DATABASE_PASSWORD=hunter2\n")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "migrated production" in done.stdout
    assert service.audit()[-1].split()[1:] == ["backend", "m1", "migrate", "ok"]
    left = docker("ps", "--all", "--quiet", "--filter", f"label=quayside.service={service.name}",
                  "--filter", "label=quayside.migration=backend")  # fmt: skip
    assert left == ""


def test_a_failed_migration_returns_its_exit_code(service: Service) -> None:
    done = migrate(service, "sh", "-c", "echo 'relation users already exists'; exit 3")

    assert done.returncode == 3
    assert "relation users already exists" in done.stdout
    assert "migrate failed: role backend" in done.stderr
    assert service.audit()[-1].split()[1:] == ["backend", "m1", "migrate", "failed", "(exit", "3)"]


def test_a_migration_needs_a_command(service: Service) -> None:
    # Python never builds such a line (steps.MIGRATE refuses it); the script refuses it too.
    done = service.run("migrate.sh", "--service", service.name, "--role", "backend", "--image", images.POSTGRES,
                       "--version", "m1", "--lock-wait", "300")  # fmt: skip

    assert done.returncode == 1
    assert done.stderr == "migrate: missing the migration command after --\n"
