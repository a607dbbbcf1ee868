"""A role's image built from its context by pulumi-docker's `docker.Image`, pushed to the stack's registry.

Paths: `image.context` is relative to the project directory (where Pulumi.yaml is), `image.dockerfile` to the
context. The docker provider opens both relative to its own working directory, which is the program's (the
project directory, or the directory Pulumi.yaml's `main` names), so quayside hands it paths relative to that:
the state holds no absolute path of one checkout.

The provider hashes the context (less .dockerignore) with the Dockerfile into its inputs at every preview:
an unchanged context is no diff and no build; a changed one is an update that builds, pushes, and gives the
pushed digest, which the role deploys. Build and push output streams as the resource's status while it runs.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pulumi
from pulumi_command import local

from components import config, defaults
from components.lazy import lazy_module

if TYPE_CHECKING:
    import pulumi_docker as docker
else:
    docker = lazy_module("pulumi_docker")  # only a stack that builds an image needs it

DEFAULT_DOCKERFILE: Final = "Dockerfile"
PUSH_CHECK: Final = Path(__file__).parent / "local" / "push-check.sh"


@dataclass(frozen=True)
class BuildPaths:
    context: Path
    dockerfile: Path


def build_paths(spec: config.ImageSpec, project_dir: Path) -> BuildPaths:
    """The context and the Dockerfile as absolute paths, from the project directory."""
    assert spec.context is not None
    context = Path(os.path.normpath(project_dir / Path(spec.context).expanduser()))
    dockerfile = Path(os.path.normpath(context / (spec.dockerfile or DEFAULT_DOCKERFILE)))
    return BuildPaths(context=context, dockerfile=dockerfile)


def project_dir() -> Path:
    """Where Pulumi.yaml is (the program's working directory when the engine does not say)."""
    return Path(pulumi.get_root_directory() or os.getcwd())


def check_build_inputs(stack: config.StackConfig, project: Path) -> None:
    """Every role's context and Dockerfile exist: a mistake stops the program before any resource exists."""
    for name, role in stack.roles.items():
        if role.image.context is None:
            continue
        paths = build_paths(role.image, project)
        if paths.context.resolve() in project.resolve().parents:
            # The builder is sent all the context holds: a directory above the project holds its neighbours too (a
            # home directory, the file system). The project directory itself is an app's usual context, as Kamal's.
            raise config.ConfigError(
                f"quayside config: roles.{name}.image.context: {role.image.context} is a directory above the project "
                f"directory ({project}): give the app's own directory (., web, ../web)"
            )
        if not paths.context.is_dir():
            raise config.ConfigError(
                f"quayside config: roles.{name}.image.context: {paths.context} is no directory "
                f"(a context is relative to the project directory, {project})"
            )
        if not paths.dockerfile.is_file():
            key = "dockerfile" if role.image.dockerfile else "context"
            raise config.ConfigError(
                f"quayside config: roles.{name}.image.{key}: no Dockerfile at {paths.dockerfile} "
                "(image.dockerfile is relative to the context)"
            )


def image_name(registry: config.Registry, service: str, role: str, spec: config.ImageSpec, tag: str) -> str:
    """Where the build is pushed: the role's repository under the registry, tagged by stack (the digest pins)."""
    return f"{registry.server}/{spec.repository or f'{service}-{role}'}:{tag}"


def build_args(spec: config.ImageSpec, project: Path, working_dir: Path) -> docker.DockerBuildArgs:
    paths = build_paths(spec, project)
    return docker.DockerBuildArgs(
        context=os.path.relpath(paths.context, working_dir),
        dockerfile=os.path.relpath(paths.dockerfile, working_dir),
        target=spec.target,
        args=spec.args or None,
        platform=spec.platform or defaults.BUILD_PLATFORM,
        # BuildKit through the engine's API: no buildx plugin needed (Debian's docker.io 20.10 has none).
        builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
    )


def push_check_command(role: str, registry: config.Registry, working_dir: Path) -> str:
    """Runs on the deploying machine: does the registry take pushes with the stack's credentials?"""
    script = os.path.relpath(PUSH_CHECK, working_dir)
    return shlex.join(["bash", script, role, registry.server, *([registry.username] if registry.username else [])])


@dataclass
class RoleBuild:
    service: str
    role: str
    spec: config.ImageSpec
    registry: config.Registry
    registry_password: pulumi.Input[str] | None = None


def built_image(name: str, build: RoleBuild, parent: pulumi.Resource) -> pulumi.Output[str]:
    """Builds and pushes the role's image; the pushed digest (`<registry>/<repo>@sha256:...`), known after `up`.

    A check runs first, at the first deploy and when the registry or its credentials change: the provider's own
    refusal names neither the registry nor the key to set."""
    registry_password = build.registry_password if build.registry.username else None
    check = local.Command(
        f"{name}-push-check",
        create=push_check_command(build.role, build.registry, Path.cwd()),
        stdin=registry_password,
        opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["stdin"]),
    )
    image = docker.Image(
        f"{name}-image",
        image_name=image_name(build.registry, build.service, build.role, build.spec, pulumi.get_stack()),
        build=build_args(build.spec, project_dir(), Path.cwd()),
        registry=docker.RegistryArgs(
            server=build.registry.server, username=build.registry.username, password=build.registry_password
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[check]),
    )
    # The digest, not the moving tag: the same build is the same version everywhere.
    return image.repo_digest
