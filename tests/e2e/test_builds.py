"""Roles built from a context (`image: {context: ...}`) by `pulumi up` of quayside's own program, through the real
engine and pulumi-docker's provider: built with the local engine's BuildKit, pushed to the loopback registry, the
pushed digest deployed on the loopback server, with HTTP load counted through a rebuild.

Each test's stack has two roles, web and api, each built from a context of its own in the scratch project directory
(where Pulumi.yaml is, which contexts are relative to). The Dockerfile starts FROM the demo app in the loopback
registry (nothing is pulled from Docker Hub) and copies `app-version`, whose content the app answers with.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import yaml
from pulumi import automation as auto

from tests.support import remote
from tests.support.docker import docker, free_loopback_port
from tests.support.polling import wait_for
from tests.support.stacks import (
    DemoStack,
    Events,
    changes,
    container_states,
    registry_image,
    service_containers,
    unique_service,
)
from tests.support.testbed import TestServer, registry_address

# A new version re-runs the swap in place.
UPDATED: Final = ["update"]
# The demo app's entrypoint answers `GET /` with $VERSION first: here it comes from the copied file.
DOCKERFILE: Final = f"""\
FROM {registry_image("v1")}
COPY app-version /app-version
ENTRYPOINT ["/bin/sh", "-c", "VERSION=$(cat /app-version) exec /bin/sh /entrypoint.sh"]
"""
# api's, beside its context's other files: a build argument in the answer, and a last stage that cannot be built,
# which `target: release` leaves out.
STAGED_DOCKERFILE: Final = f"""\
FROM {registry_image("v1")} AS release
COPY app-version /app-version
ARG FLAVOUR=plain
ENV FLAVOUR=$FLAVOUR
ENTRYPOINT ["/bin/sh", "-c", "VERSION=$(cat /app-version)-$FLAVOUR exec /bin/sh /entrypoint.sh"]

FROM release AS unfinished
COPY no-such-file /
"""


def write_context(directory: Path, version: str, dockerfile: str = "Dockerfile", text: str = DOCKERFILE) -> None:
    (directory / dockerfile).parent.mkdir(parents=True, exist_ok=True)
    (directory / dockerfile).write_text(text)
    (directory / "app-version").write_text(f"{version}\n")


def built_stack(tmp_path: Path, test_server: TestServer) -> DemoStack:
    """The demo stack's web and api roles, each built from its own context (`web-app`, `api-app`) in the project
    directory; api's from a Dockerfile elsewhere in its context, a target stage and a build argument."""
    stack = DemoStack.create(tmp_path, test_server, unique_service("e2e-build"))
    roles = stack.roles
    del roles["backend"]
    roles["api"].pop("depends_on")
    write_context(stack.project.work_dir / "web-app", "web-1")
    write_context(stack.project.work_dir / "api-app", "api-1", "docker/Dockerfile.release", STAGED_DOCKERFILE)
    roles["web"]["image"] = {"context": "web-app"}
    roles["api"]["image"] = {
        "context": "api-app", "dockerfile": "docker/Dockerfile.release", "target": "release",
        "args": {"FLAVOUR": "tuned"},
    }  # fmt: skip
    stack.config["quayside:registry"] = {"server": registry_address()}
    return stack


@pytest.fixture
def built(tmp_path: Path, test_server: TestServer) -> Iterator[DemoStack]:
    stack = built_stack(tmp_path, test_server)
    first = stack.up()
    try:
        assert stack.get("web") == (200, "web-1") and stack.get("api") == (200, "api-1-tuned")
        # The build's and the push's own output showed while they ran.
        assert f"Successfully tagged {registry_address()}/{stack.service}-web:e2e" in first.stdout
        assert f"The push refers to repository [{registry_address()}/{stack.service}-api]" in first.stdout
        yield stack
    finally:
        stack.destroy()
        for name in ("web", "api"):  # the local tag of the build; the pushed repositories are the test's own
            docker("rmi", f"{registry_address()}/{stack.service}-{name}:e2e", check=False)


def test_a_one_file_change_in_one_context_rebuilds_and_redeploys_that_role_only_under_load(built: DemoStack) -> None:
    unchanged = Events()
    assert changes(built.preview(unchanged).change_summary) == set(), unchanged.changed()

    (built.project.work_dir / "web-app" / "app-version").write_text("web-2\n")
    previewed = Events()
    built.preview(previewed)
    assert previewed.changed() == {f"{built.service}-web-image": ["update"], f"{built.service}-web-swap": UPDATED}

    events = Events()
    with built.load("web") as load:
        load.wait_for_requests(100)
        result = built.up(events)
        load.wait_for_requests(load.report.total + 100)

    assert result.summary.result == "succeeded"
    assert events.changed() == previewed.changed()
    report = load.report
    assert report.failures == [] and report.version_sequence() == ["web-1", "web-2"], report.summary()
    assert built.get("api") == (200, "api-1-tuned")
    # The role runs the pushed digest: its version name is the digest's first 12 hex.
    running = [name for name, state in container_states(built.service, "web").items() if state == "running"]
    digest = result.outputs["roles"].value["web"]["image"]
    assert digest.startswith(f"{registry_address()}/{built.service}-web@sha256:"), digest
    assert running == [remote.container_name(built.service, "web", digest.split("@sha256:")[1][:12])]
    print(f"rebuild of web: {report.summary()}")


def test_a_failing_build_step_fails_up_naming_the_role_and_step_and_changes_nothing(built: DemoStack) -> None:
    before = container_states(built.service, "web")
    dockerfile = built.project.work_dir / "web-app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "COPY no-such-asset /www/\n")
    (built.project.work_dir / "web-app" / "app-version").write_text("web-2\n")

    with pytest.raises(auto.errors.CommandError) as failed:
        built.up()

    message = str(failed.value)
    assert f"docker:index:Image ({built.service}-web-image):" in message
    assert 'failed to compute cache key: "/no-such-asset" not found' in message
    assert container_states(built.service, "web") == before
    assert built.get("web") == (200, "web-1") and built.get("api") == (200, "api-1-tuned")


def test_a_missing_context_stops_preview_with_one_line_naming_the_key(tmp_path: Path, test_server: TestServer) -> None:
    stack = built_stack(tmp_path, test_server)
    stack.roles["api"]["image"] = {"context": "no-such-dir"}

    with pytest.raises(auto.errors.CommandError) as failed:
        stack.preview()

    missing = stack.project.work_dir / "no-such-dir"
    assert (
        f"quayside config: roles.api.image.context: {missing} is no directory "
        f"(a context is relative to the project directory, {stack.project.work_dir})"
    ) in str(failed.value)


def bcrypt_hash(password: str) -> str:
    """The registry's htpasswd wants bcrypt; Python 3.11's crypt (deprecated, no extra package) makes it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


def registry_status(address: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[str]:
    """A registry of this test's own on a free loopback port that takes only user quayside with its password."""
    directory = tmp_path / "private-registry"
    directory.mkdir()
    (directory / "htpasswd").write_text(f"quayside:{bcrypt_hash('the-right-one')}\n")
    address = f"127.0.0.1:{free_loopback_port()}"
    settings = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(directory / "data")}},
        "http": {"addr": address},
        "auth": {"htpasswd": {"realm": "quayside-test", "path": str(directory / "htpasswd")}},
    }
    (directory / "config.yml").write_text(yaml.safe_dump(settings))
    with (directory / "registry.log").open("w") as log:
        registry = subprocess.Popen(["docker-registry", "serve", str(directory / "config.yml")], stdout=log, stderr=log)
    try:
        wait_for(
            f"the private registry on {address} asking for a login",
            lambda: registry.poll() is not None or registry_status(address) == 401,
            seconds=10,
        )
        assert registry_status(address) == 401, (directory / "registry.log").read_text()
        yield address
    finally:
        registry.terminate()
        registry.wait(timeout=10)


def test_a_registry_refusing_the_push_is_named_with_the_credential_key_to_set(
    tmp_path: Path, test_server: TestServer, private_registry: str
) -> None:
    stack = built_stack(tmp_path, test_server)
    stack.config["quayside:registry"] = {"server": private_registry}
    try:
        with pytest.raises(auto.errors.CommandError) as anonymous:
            stack.up()
        assert (
            f"quayside: role web: registry {private_registry} refused a push without credentials (HTTP 401): "
            "set registry.username in the stack and the registry_password secret "
            "(pulumi config set --secret registry_password)"
        ) in str(anonymous.value)

        stack.config["quayside:registry"] = {"server": private_registry, "username": "quayside"}
        stack.secrets["registry_password"] = "a-wrong-one"
        with pytest.raises(auto.errors.CommandError) as wrong:
            stack.up()
        assert f"quayside: role web: registry {private_registry} refused the login of quayside (" in str(wrong.value)
        assert (
            "set the registry_password secret (pulumi config set --secret registry_password) to a password or token "
            "that may push"
        ) in str(wrong.value)
        assert "a-wrong-one" not in str(wrong.value)
        assert service_containers(stack.service) == []
    finally:
        stack.destroy()
