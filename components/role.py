"""AppRole: one role's image, its optional migration, and the health-checked swap of its container.

A new version replaces the swap command: Pulumi creates the new one (swap.sh: boot beside the old,
kamal-proxy health-checks and switches, the old is stopped and kept for rollback) and, once the update
has succeeded, deletes the old one (retire.sh: leaves that version stopped, or, when the role is gone,
removes its route and containers). Any other change re-runs swap.sh with the new options on the same
version; it boots a fresh container because the config hash differs.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import pulumi
from pulumi_command import remote

from components import config, defaults
from components import remote as commands
from components.lazy import lazy_module

if TYPE_CHECKING:
    import pulumi_docker as docker
else:
    docker = lazy_module("pulumi_docker")  # only an image built from a context needs it

PULL_SECONDS: Final = 300


@dataclass
class AppRoleArgs:
    service: str
    name: str
    role: config.Role
    connection: remote.ConnectionArgs
    proxy: config.Proxy
    secrets: dict[str, pulumi.Input[str]] = field(default_factory=dict)  # the role's env.secret values
    registry: config.Registry | None = None
    registry_password: pulumi.Input[str] | None = None
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def version_of(role: config.Role, image_ref: str) -> str:
    """The role's version name: pinned, or the digest's first 12 hex, or the tag."""
    if role.version is not None:
        return role.version
    if "@sha256:" in image_ref:
        return image_ref.split("@sha256:", 1)[1][:12]
    return image_ref.rsplit(":", 1)[1]


def swap_args(
    service: str, name: str, role: config.Role, image_ref: str, version: str, *, tls: bool = False
) -> list[str]:
    health = role.health or config.Health()
    options = [
        "--port", str(role.port),
        *commands.switch("proxy", role.proxy),
        *(["--tls"] if tls and role.proxy else []),
        *commands.flags("host", role.hosts),
        *commands.flag("path-prefix", role.path_prefix),
        *(["--health-path", health.path, "--health-interval", health.interval, "--health-timeout", health.timeout]
          if role.proxy else []),
        "--deploy-timeout", role.deploy_timeout,
        "--drain-timeout", role.drain_timeout,
        "--readiness-delay", str(role.readiness_delay),
        "--retain", str(role.retain_containers),
        "--stop-timeout", str(role.stop_timeout),
        *commands.flags("env", (f"{key}={value}" for key, value in sorted(role.env.clear.items()))),
        *commands.flags("volume", role.volumes),
        *commands.flag("memory", role.memory),
        *commands.flag("cpus", role.cpus),
        "--proxy-name", defaults.PROXY_CONTAINER,
        *commands.flags("cmd", role.cmd or []),
    ]  # fmt: skip
    return [
        "--service", service, "--role", name, "--image", image_ref, "--version", version,
        "--config-hash", config_hash(options), *options,
    ]  # fmt: skip


def config_hash(options: list[str]) -> str:
    """Names the container's public options; the script mixes in the secret env file's own hash."""
    return hashlib.sha256(json.dumps(options).encode()).hexdigest()[:16]


def retire_args(service: str, name: str, role: config.Role, version: str) -> list[str]:
    return [
        "--service", service, "--role", name, "--version", version,
        *commands.switch("proxy", role.proxy), "--proxy-name", defaults.PROXY_CONTAINER,
    ]  # fmt: skip


def migrate_args(service: str, name: str, role: config.Role, image_ref: str, version: str) -> list[str]:
    assert role.migrate is not None
    env = (f"{key}={value}" for key, value in sorted(role.env.clear.items()))
    return [
        "--service", service, "--role", name, "--image", image_ref, "--version", version,
        *commands.flags("env", env), "--", *role.migrate,
    ]  # fmt: skip


def swap_timeout(role: config.Role) -> int:
    waits = (
        commands.seconds(role.deploy_timeout) + commands.seconds(role.drain_timeout) + role.readiness_delay
        + role.stop_timeout
    )  # fmt: skip
    return defaults.LOCK_TIMEOUT_SECONDS + PULL_SECONDS + waits + defaults.STEP_SLACK_SECONDS


def env_file(values: dict[str, str]) -> str:
    """KEY=VALUE lines, as docker --env-file reads them (one line each: a newline would split a value)."""
    for key, value in values.items():
        if "\n" in value:
            raise ValueError(f"secret {key} holds a newline; docker env files cannot carry one")
    return "".join(f"{key}={value}\n" for key, value in sorted(values.items()))


class AppRole(pulumi.ComponentResource):
    """`deployed` is the swap command: roles that depend on this one wait for it."""

    deployed: remote.Command
    migration: remote.Command | None
    image_ref: pulumi.Output[str]
    version: pulumi.Output[str]
    urls: list[str]

    def __init__(self, name: str, args: AppRoleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:AppRole", name, None, opts)
        self._args = args
        self.image_ref = self._image(name)
        self.version = self.image_ref.apply(lambda ref: version_of(args.role, ref))
        self.urls = urls(args.role, args.proxy)
        # Secret in, secret out: the env file inherits the secrecy of its values.
        stdin: pulumi.Output[str] = (
            pulumi.Output.all(**args.secrets).apply(env_file) if args.secrets else pulumi.Output.from_input("")
        )
        self.migration = self._migrate(name, stdin) if args.role.migrate else None
        self.deployed = self._swap(name, stdin)
        self.register_outputs({"urls": self.urls, "version": self.version, "image": self.image_ref})

    def _image(self, name: str) -> pulumi.Output[str]:
        spec = self._args.role.image
        if spec.ref is not None:
            return pulumi.Output.from_input(spec.ref)
        registry = self._args.registry
        if registry is None:
            raise ValueError(f"roles.{self._args.name}.image: a build needs registry: {{server: ...}} to push to")
        image = docker.Image(
            f"{name}-image",
            image_name=f"{registry.server}/{self._args.service}-{self._args.name}:quayside",
            build=docker.DockerBuildArgs(
                context=spec.context, dockerfile=spec.dockerfile, target=spec.target, args=spec.args or None
            ),
            registry=docker.RegistryArgs(
                server=registry.server, username=registry.username, password=self._args.registry_password
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The digest, not the moving tag: the same build is the same version everywhere.
        return image.repo_digest

    def _migrate(self, name: str, stdin: pulumi.Output[str]) -> remote.Command:
        a = self._args
        create = pulumi.Output.all(self.image_ref, self.version).apply(
            lambda rv: commands.script(
                a.service, "migrate.sh", migrate_args(a.service, a.name, a.role, rv[0], rv[1]),
                timeout_seconds=swap_timeout(a.role),
            )
        )  # fmt: skip
        return remote.Command(
            f"{name}-migrate",
            connection=a.connection,
            create=create,
            stdin=stdin,
            # Once per version: a new version replaces the command (create runs the migration); a change of env,
            # secrets or timeouts alone is an update, which only says so.
            update=self.version.apply(lambda v: shlex.join(["echo", f"the migration of {v} ran already"])),
            triggers=[self.version],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=a.depends_on, additional_secret_outputs=["stdin"]),
        )

    def _swap(self, name: str, stdin: pulumi.Output[str]) -> remote.Command:
        a = self._args
        timeout = swap_timeout(a.role)
        create = pulumi.Output.all(self.image_ref, self.version).apply(
            lambda rv: commands.script(
                a.service, "swap.sh", swap_args(a.service, a.name, a.role, rv[0], rv[1], tls=a.proxy.ssl),
                timeout_seconds=timeout,
            )
        )  # fmt: skip
        delete = self.version.apply(
            lambda v: commands.script(
                a.service, "retire.sh", retire_args(a.service, a.name, a.role, v), timeout_seconds=timeout
            )
        )
        waits_for = [*a.depends_on, *([self.migration] if self.migration else [])]
        return remote.Command(
            f"{name}-swap",
            connection=a.connection,
            create=create,
            delete=delete,
            stdin=stdin,
            # A new version is a new command (so the old one's delete retires it); other changes re-run create.
            triggers=[self.version],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits_for, additional_secret_outputs=["stdin"]),
        )


def urls(role: config.Role, proxy: config.Proxy) -> list[str]:
    if not role.proxy:
        return []
    scheme, port, default_port = ("https", proxy.https_port, 443) if proxy.ssl else ("http", proxy.http_port, 80)
    authority_port = "" if port == default_port else f":{port}"
    path = role.path_prefix or "/"
    return [f"{scheme}://{host}{authority_port}{path}" for host in role.hosts or [proxy.bind]]
