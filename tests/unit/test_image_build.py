"""A role's build: where its context and Dockerfile are, what pulumi-docker is given, and the mistakes that stop
the program before any resource exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import config, defaults, image_build
from components.config import examples
from tests.unit.test_config import SECRETS


def stack_building(context: str, **image: str) -> config.StackConfig:
    raw = examples.saas()
    raw["roles"]["backend"]["image"] = {"context": context, **image}
    return config.parse(raw, secrets_set=SECRETS)


def write_context(directory: Path, dockerfile: str = "Dockerfile") -> None:
    directory.mkdir(parents=True)
    (directory / dockerfile).write_text("FROM scratch\n")


def test_the_context_is_relative_to_the_project_directory_and_the_dockerfile_to_the_context(tmp_path: Path) -> None:
    project = tmp_path / "infra"
    spec = stack_building("../backend", dockerfile="docker/Dockerfile.prod").roles["backend"].image

    paths = image_build.build_paths(spec, project)

    assert paths == image_build.BuildPaths(tmp_path / "backend", tmp_path / "backend" / "docker" / "Dockerfile.prod")


def test_the_provider_gets_paths_relative_to_its_working_directory_buildkit_and_the_default_platform(
    tmp_path: Path,
) -> None:
    spec = stack_building("../backend", target="release").roles["backend"].image

    args = image_build.build_args(spec, project=tmp_path / "project", working_dir=tmp_path / "checkout" / "quayside")

    assert args.context == "../../backend"
    assert args.dockerfile == "../../backend/Dockerfile"
    assert args.platform == defaults.BUILD_PLATFORM == "linux/amd64"
    assert args.target == "release"
    assert args.builder_version == "BuilderBuildKit"


def test_the_image_is_pushed_to_the_roles_repository_under_the_registry_tagged_by_stack() -> None:
    stack = stack_building("../backend")
    registry = stack.pull_registry
    assert registry is not None
    named = config.ImageSpec(context=".", repository="acme/backend")

    assert image_build.image_name(registry, "acme", "backend", stack.roles["backend"].image, "prod") == (
        "ghcr.io/acme-backend:prod"
    )
    assert image_build.image_name(registry, "acme", "backend", named, "prod") == "ghcr.io/acme/backend:prod"


def test_existing_context_and_dockerfile_pass(tmp_path: Path) -> None:
    write_context(tmp_path / "backend", "Dockerfile.prod")

    image_build.check_build_inputs(stack_building("backend", dockerfile="Dockerfile.prod"), tmp_path)


def test_a_missing_context_is_one_line_naming_the_key_and_the_project_directory(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as raised:
        image_build.check_build_inputs(stack_building("../backend"), tmp_path / "infra")

    assert str(raised.value) == (
        f"quayside config: roles.backend.image.context: {tmp_path / 'backend'} is no directory "
        f"(a context is relative to the project directory, {tmp_path / 'infra'})"
    )


@pytest.mark.parametrize(("dockerfile", "key"), [(None, "context"), ("Dockerfile.prod", "dockerfile")])
def test_a_missing_dockerfile_is_one_line_naming_the_key(tmp_path: Path, dockerfile: str | None, key: str) -> None:
    (tmp_path / "backend").mkdir()
    image = {"dockerfile": dockerfile} if dockerfile else {}

    with pytest.raises(config.ConfigError) as raised:
        image_build.check_build_inputs(stack_building("backend", **image), tmp_path)

    expected = tmp_path / "backend" / (dockerfile or "Dockerfile")
    assert str(raised.value) == (
        f"quayside config: roles.backend.image.{key}: no Dockerfile at {expected} "
        "(image.dockerfile is relative to the context)"
    )


def test_the_push_check_runs_the_local_script_with_the_username_and_never_the_password() -> None:
    checkout = image_build.PUSH_CHECK.parents[2]

    with_user = image_build.push_check_command("web", config.Registry(server="ghcr.io", username="acme"), checkout)
    anonymous = image_build.push_check_command("web", config.Registry(server="127.0.0.1:5000"), checkout)

    assert with_user == "bash components/local/push-check.sh web ghcr.io acme"
    assert anonymous == "bash components/local/push-check.sh web 127.0.0.1:5000"
