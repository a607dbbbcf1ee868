"""Tags pinned to digests, through the real engine, real Docker and the loopback registry: a re-pushed tag is a
redeploy of its role only, served under load without a failed request, and the server runs exactly the new digest;
ten deploys in a row keep the role's images on the server to `retain_containers` + 1; a re-pushed tag of an
accessory restarts it on the new content with its data kept; a registry that does not answer stops the run before
anything is touched.

Each test pushes images of its own to `quayside-test/pin-<random>` in the loopback registry (other tests use
`quayside-test/app`), built from the demo app with another VERSION, and removes the local tag after the push, so
the server has to pull what it runs, as a real server does.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.support import remote
from tests.support.docker import docker
from tests.support.images import POSTGRES, app
from tests.support.stacks import (
    DemoStack,
    Events,
    changes,
    container_states,
    proxy_routes,
    service_containers,
    sql,
    unique_service,
)
from tests.support.testbed import TestServer, registry_address

# A new version re-runs the swap in place.
UPDATED = ["update"]


@dataclass
class PinRepository:
    """A repository of this test's own in the loopback registry; every digest pushed to it, oldest first."""

    name: str
    pushed: list[str] = field(default_factory=list)

    def push(self, tag: str, version: str, base: str = app("v1")) -> str:
        """Builds `base` (the demo app) with VERSION set to `version`, pushes it as `tag`, drops the local tag;
        returns the digest."""
        ref = f"{self.name}:{tag}"
        dockerfile = f"FROM {base}\nENV VERSION={version}\n"
        subprocess.run(["docker", "build", "--quiet", "--tag", ref, "-"], input=dockerfile, text=True,
                       capture_output=True, check=True, timeout=120)  # fmt: skip
        docker("push", "--quiet", ref)
        digests = docker("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", ref).split()
        digest = next(d.split("@", 1)[1] for d in digests if d.startswith(f"{self.name}@"))
        docker("image", "rm", ref)
        self.pushed.append(digest)
        return digest

    def on_server(self) -> set[str]:
        """The digests of this repository the server's Docker holds images of."""
        listing = docker("images", "--digests", "--format", "{{.Digest}}", self.name)
        return {line for line in listing.split() if line.startswith("sha256:")}

    def remove_from_server(self) -> None:
        for digest in self.on_server():
            docker("image", "rm", f"{self.name}@{digest}", check=False)


@pytest.fixture
def repository() -> Iterator[PinRepository]:
    pins = PinRepository(f"{registry_address()}/quayside-test/pin-{uuid.uuid4().hex[:8]}")
    try:
        yield pins
    finally:
        pins.remove_from_server()


@pytest.fixture
def pinned_demo(tmp_path: Path, test_server: TestServer, repository: PinRepository) -> Iterator[DemoStack]:
    """The demo stack with web deploying `<pin repository>:live`, pushed once (answering `first`)."""
    repository.push("live", "first")
    stack = DemoStack.create(tmp_path, test_server, unique_service("e2e-pin"))
    stack.roles["web"]["image"] = f"{repository.name}:live"
    try:
        yield stack
    finally:
        stack.destroy()


def web_container(demo: DemoStack) -> dict[str, str]:
    """The running web container: its name, image reference as run, image ID, and that image's repo digests."""
    running = service_containers(demo.service, "--filter", "label=quayside.role=web", "--filter", "status=running")
    assert len(running) == 1, container_states(demo.service, "web")
    name, image_ref, image_id = docker("inspect", "--format", "{{.Name}} {{.Config.Image}} {{.Image}}",
                                       running[0]).split()  # fmt: skip
    digests = docker("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", image_id)
    return {"name": name.lstrip("/"), "image": image_ref, "image_id": image_id, "repo_digests": digests}


def test_a_re_pushed_tag_redeploys_only_its_role_under_load_and_the_server_runs_the_new_digest(
    pinned_demo: DemoStack, repository: PinRepository
) -> None:
    demo = pinned_demo
    first = demo.up()
    old_digest = repository.pushed[0]
    assert first.outputs["roles"].value["web"]["version"] == f"live@{old_digest[7:19]}"
    assert first.outputs["roles"].value["web"]["image"] == f"{repository.name}:live@{old_digest}"
    assert demo.get("web") == (200, "first")
    assert changes(demo.preview().change_summary) == set(), "an unchanged tag must be no change"

    new_digest = repository.push("live", "second")
    events = Events()
    demo.preview(events)
    assert {name: ops for name, ops in events.changed().items() if name.endswith(("-swap", "-migrate"))} == {
        f"{demo.service}-web-swap": UPDATED
    }, events.changed()

    with demo.load("web") as load:
        load.wait_for_requests(100)
        result = demo.up()
        load.wait_for_requests(load.report.total + 100)

    assert result.summary.result == "succeeded"
    assert load.report.failures == [] and load.report.version_sequence() == ["first", "second"], load.report.summary()
    assert result.outputs["roles"].value["web"]["version"] == f"live@{new_digest[7:19]}"
    live = web_container(demo)
    assert live["name"] == remote.container_name(demo.service, "web", f"live@{new_digest[7:19]}")
    assert live["image"] == f"{repository.name}:live@{new_digest}"
    assert f"{repository.name}@{new_digest}" in live["repo_digests"].split(), live
    # The replaced version stays for rollback, and so does its image.
    assert container_states(demo.service, "web") == {
        remote.container_name(demo.service, "web", f"live@{old_digest[7:19]}"): "exited",
        remote.container_name(demo.service, "web", f"live@{new_digest[7:19]}"): "running",
    }
    assert repository.on_server() == {old_digest, new_digest}


def test_a_pinned_version_keeps_its_name_and_a_re_pushed_tag_still_reaches_the_server(
    pinned_demo: DemoStack, repository: PinRepository
) -> None:
    demo = pinned_demo
    demo.roles["web"]["version"] = "release"
    assert demo.up().outputs["roles"].value["web"]["version"] == "release"

    new_digest = repository.push("live", "second")
    events = Events()
    with demo.load("web") as load:
        load.wait_for_requests(100)
        result = demo.up(events)
        load.wait_for_requests(load.report.total + 100)

    # Same version: the swap is updated in place with the new digest, and swap.sh sees another image, not "live".
    assert events.changed().get(f"{demo.service}-web-swap") == ["update"], events.changed()
    assert "web already live" not in result.stdout
    assert load.report.failures == [] and load.report.version_sequence() == ["first", "second"], load.report.summary()
    live = web_container(demo)
    assert live["name"] == remote.container_name(demo.service, "web", "release")
    assert live["image"] == f"{repository.name}:live@{new_digest}"


def test_ten_deploys_in_a_row_keep_the_images_of_retained_versions_only(
    pinned_demo: DemoStack, repository: PinRepository
) -> None:
    demo = pinned_demo
    retain = 2
    demo.roles["web"]["retain_containers"] = retain
    demo.up()
    counts = []
    for number in range(1, 11):
        repository.push("live", f"deploy-{number}")
        demo.up()
        assert demo.get("web") == (200, f"deploy-{number}")
        held = repository.on_server()
        counts.append(len(held))
        # The live version and the `retain` newest stopped ones; every older digest has left the server.
        kept = set(repository.pushed[-(retain + 1) :])
        assert held == kept, f"deploy {number}: server holds {sorted(held)}, expected {sorted(kept)}"
    print(f"images of the role on the server after each of 10 deploys: {counts}")
    assert len(container_states(demo.service, "web")) == retain + 1


def test_a_re_pushed_tag_of_postgres_restarts_it_on_the_new_content_with_its_data_kept(
    tmp_path: Path, test_server: TestServer, repository: PinRepository
) -> None:
    first = repository.push("15", "first", base=POSTGRES)
    demo = DemoStack.create(tmp_path, test_server, unique_service("e2e-pin-pg"))
    demo.config["quayside:accessories"] = {"postgres": {"image": f"{repository.name}:15", "version": "15"}}
    demo.secrets["postgres_password"] = "pin-pg-2b9e51"
    container = f"{demo.service}-postgres"
    try:
        demo.up()
        sql(demo, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('written on the first push')")
        assert docker("inspect", "--format", "{{.Config.Image}}", container) == f"{repository.name}:15@{first}"
        assert changes(demo.preview().change_summary) == set(), "an unchanged tag must be no change"

        second = repository.push("15", "second", base=POSTGRES)
        events = Events()
        demo.up(events)

        assert events.changed() == {f"{demo.service}-postgres-container": ["update"]}, events.changed()
        assert docker("inspect", "--format", "{{.Config.Image}}", container) == f"{repository.name}:15@{second}"
        assert "VERSION=second" in docker("inspect", "--format", "{{json .Config.Env}}", container)
        assert sql(demo, "SELECT body FROM notes") == "written on the first push"
        assert changes(demo.preview().change_summary) == set(), "the run after it changes nothing"
    finally:
        demo.destroy()
        subprocess.run(["rm", "-rf", str(demo.service_dir)], check=False)


def test_an_unreachable_registry_fails_the_run_in_one_line_naming_the_role_and_touches_nothing(
    tmp_path: Path, test_server: TestServer
) -> None:
    demo = DemoStack.create(tmp_path, test_server, unique_service("e2e-pin"))
    unreachable = "127.0.0.1:9/quayside-test/pin-nowhere:live"
    demo.roles["api"]["image"] = unreachable

    for run in (demo.preview, demo.up):
        with pytest.raises(auto.errors.CommandError) as failed:
            run()
        output = str(failed.value)
        assert f"quayside: roles.api.image: cannot read the digest of {unreachable} from registry 127.0.0.1:9: " in (
            output
        ), output
        assert "Traceback" not in output

    assert service_containers(demo.service) == []
    assert [route for route in proxy_routes() if route.startswith(f"{demo.service}-")] == []
    resources = (demo.stack().export_stack().deployment or {}).get("resources") or []
    assert {resource["type"] for resource in resources} <= {"pulumi:pulumi:Stack"}, resources
