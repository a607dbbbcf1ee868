"""The main job through the real engine: `pulumi up` of quayside's own program deploys the `local` stack onto the
loopback server. Up from empty, every URL answers, the migration runs once and exits, a second up changes
nothing, destroy leaves nothing behind; a config mistake is one line before anything is touched.

The stack is Pulumi.local.yaml under a service name of its own (`e2e`), so a `scripts/up` deployment of the
`demo` service on the same server is never touched. Fails (never skips) without the CLI, the plugins or the
test server: scripts/setup installs and starts them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
from pulumi import automation as auto

from tests.support.docker import docker
from tests.support.pulumi_engine import QuaysideProject
from tests.support.stacks import (
    changes,
    get,
    local_stack_config,
    pinned_version,
    proxy_routes,
    remove_leftovers,
    service_containers,
)
from tests.support.testbed import TestServer

SERVICE: Final = "e2e"
STACK: Final = "e2e"
# The image tag each role of Pulumi.local.yaml deploys: also the first word its `GET /` answers.
VERSIONS: Final = {"web": "v1", "backend": "v2", "api": "v3"}


@dataclass
class Deployed:
    stack: auto.Stack
    first: auto.UpResult
    first_seconds: float
    service_dir: Path
    audit_lines_before: int  # destroy keeps the audit log: earlier runs' lines are not this one's

    def audit(self) -> list[str]:
        return (self.service_dir / "audit.log").read_text().splitlines()[self.audit_lines_before :]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, test_server: TestServer) -> Iterator[Deployed]:
    remove_leftovers(SERVICE)
    service_dir = Path("/var/lib/quayside") / SERVICE
    audit_log = service_dir / "audit.log"
    audit_lines_before = len(audit_log.read_text().splitlines()) if audit_log.exists() else 0
    project = QuaysideProject.create(tmp_path_factory.mktemp("local-stack"))
    stack = project.stack(STACK, local_stack_config(test_server, SERVICE))
    started = time.monotonic()
    first = stack.up(on_output=print, color="never")
    took = time.monotonic() - started
    print(f"up from empty: {took:.1f} s")
    try:
        yield Deployed(stack, first, took, service_dir, audit_lines_before)
    finally:
        stack.destroy(on_output=print, color="never")


def test_up_from_empty_deploys_every_role_and_every_url_answers_with_its_version(deployed: Deployed) -> None:
    assert deployed.first.summary.result == "succeeded"
    assert set(deployed.first.summary.resource_changes or {}) == {"create"}
    roles = deployed.first.outputs["roles"].value
    assert {name: role["version"] for name, role in roles.items()} == {
        name: pinned_version(tag) for name, tag in VERSIONS.items()
    }
    answers = {name: [get(url) for url in role["urls"]] for name, role in roles.items()}
    assert answers == {name: [(200, version)] for name, version in VERSIONS.items()}
    assert roles["web"]["urls"] == [f"http://web.{SERVICE}.localhost/"]


def test_the_backend_migration_ran_once_and_left_no_container(deployed: Deployed) -> None:
    migrations = [line.split(" ", 1)[1] for line in deployed.audit() if " migrate " in line]
    assert migrations == [f"backend {pinned_version('v2')} migrate ok"]
    names = docker("ps", "--all", "--format", "{{.Names}}").split()
    assert [name for name in names if name.startswith(f"{SERVICE}_backend.migrate_")] == []


def test_a_second_up_changes_nothing_and_keeps_every_container(deployed: Deployed) -> None:
    before = sorted(service_containers(SERVICE))

    second = deployed.stack.up(color="never")

    assert changes(second.summary.resource_changes) == set(), second.summary.resource_changes
    assert sorted(service_containers(SERVICE)) == before


def test_a_preview_after_up_shows_no_changes(deployed: Deployed) -> None:
    summary = deployed.stack.preview(color="never").change_summary
    assert changes(summary) == set(), summary


def test_destroy_leaves_nothing_of_the_service_behind(deployed: Deployed) -> None:
    result = deployed.stack.destroy(color="never")

    assert result.summary.result == "succeeded"
    assert service_containers(SERVICE) == []
    assert [route for route in proxy_routes() if route.startswith(f"{SERVICE}-")] == []
    assert docker("network", "ls", "--quiet", "--filter", f"name=^{SERVICE}$") == ""
    left = sorted(path.name for path in deployed.service_dir.iterdir()) if deployed.service_dir.exists() else []
    assert left in ([], ["audit.log"]), f"{deployed.service_dir} still holds {left}"
    assert deployed.stack.outputs() == {}


def test_a_config_mistake_is_one_line_naming_the_key_and_no_traceback(tmp_path: Path, test_server: TestServer) -> None:
    project = QuaysideProject.create(tmp_path)
    config = local_stack_config(test_server, SERVICE)
    config["quayside:roles"]["web"]["health"] = {"path": "up"}
    stack = project.stack(STACK, config)

    with pytest.raises(auto.errors.CommandError) as failed:
        stack.preview(color="never")

    output = str(failed.value)
    assert "quayside config: roles.web.health.path: must be a path starting with / (/up)" in output
    assert "Traceback" not in output
    assert service_containers(SERVICE) == []
