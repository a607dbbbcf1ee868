"""The stack config: its top-level keys, and reading them from Pulumi's config.

A stack file holds these under the project's namespace (`quayside:service`, `quayside:roles`, ...).
Secrets are separate config keys set with `pulumi config set --secret`: `ssh_private_key`,
`registry_password`, and one key per name a role lists in `env.secret` (e.g. `DATABASE_URL`).

Every error is one line that names the key and what is allowed, raised before any resource exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal, Self

from pydantic import Field, ValidationError, field_validator, model_validator

from components import defaults
from components.config.accessories import Accessories
from components.config.errors import ConfigError, one_line
from components.config.roles import Role
from components.config.servers import Server
from components.config.types import Directory, Model, Name, Port, Version

NAMESPACE: Final = "quayside"
# A role listing this secret gets the Postgres accessory's URL when there is one.
DATABASE_URL: Final = "DATABASE_URL"


class Registry(Model):
    server: str = Field(min_length=1, description="registry host, e.g. ghcr.io (password: config secret)")
    username: str | None = Field(default=None, description="login name; with it, registry_password is required")


class Proxy(Model):
    image: str = Field(default=defaults.PROXY_IMAGE, description="kamal-proxy image repository")
    version: Version = Field(default=defaults.PROXY_VERSION, description="kamal-proxy tag")
    ssl: bool = Field(default=False, description="TLS by Let's Encrypt for every role host")
    http_port: Port = Field(default=defaults.HTTP_PORT, description="host port for HTTP")
    https_port: Port = Field(default=defaults.HTTPS_PORT, description="host port for HTTPS")
    bind: str = Field(default="0.0.0.0", description="address the ports are published on")
    state_dir: Directory = Field(default=defaults.PROXY_STATE_DIR, description="state path in the image")

    @model_validator(mode="after")
    def _ports_differ(self) -> Self:
        if self.http_port == self.https_port:
            raise ValueError(f"https_port {self.https_port} is also http_port: give HTTP and HTTPS a port each")
        return self

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.version}"


class StackConfig(Model):
    service: Name = Field(description="the service name: container, network and proxy route prefix")
    server: Server = Field(description="the server: an existing SSH host, or a Hetzner Cloud server")
    registry: Registry | Literal["none"] | None = Field(
        default=None,
        description="the registry roles' images are pulled from; `none`: no registry, each role's image is an "
        "image of the deploying machine's Docker engine (image: myapp:dev), sent to the server over SSH, only the "
        "layers it lacks, and versioned by its image ID",
    )
    proxy: Proxy = Field(default_factory=Proxy, description="kamal-proxy, shared by every role on the server")
    roles: dict[Name, Role] = Field(min_length=1, description="app roles by name")
    accessories: Accessories | None = Field(
        default=None, description="Postgres, its backups and Vector, beside the roles; their data is kept"
    )

    @field_validator("registry", mode="before")
    @classmethod
    def _registry_none_or_object(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "none":
            raise ValueError(f"must be `none` or a registry like {{server: ghcr.io, username: acme}} (got {value!r})")
        return value

    @model_validator(mode="after")
    def _roles_fit_together(self) -> Self:
        routes: dict[tuple[str, str], str] = {}
        for name, role in self.roles.items():
            for other in role.depends_on:
                if other not in self.roles or other == name:
                    raise ValueError(f"roles.{name}.depends_on: {other!r} is not another role ({self._role_names()})")
            for host in (role.hosts or [""]) if role.proxy else []:
                route = (host, role.path_prefix or "/")
                if route in routes:
                    where = f"host {host or '(any)'} path {route[1]}"
                    raise ValueError(f"roles.{name}.hosts: {where} is already served by role {routes[route]}")
                routes[route] = name
            if self.proxy.ssl and role.proxy and not role.hosts:
                raise ValueError(f"roles.{name}.hosts: proxy.ssl needs at least one hostname per proxied role")
            if self.sends_images and role.image.context is not None:
                raise ValueError(
                    f"roles.{name}.image: registry: none sends an image of the local Docker engine: give its "
                    "reference (image: myapp:dev), or a registry to build for"
                )
            if role.image.context is not None and self.registry is None:
                raise ValueError(f"roles.{name}.image.context: a build needs registry: {{server: ...}} to push to")
        self._check_no_cycle()
        return self

    @property
    def sends_images(self) -> bool:
        """`registry: none`: roles' images go from the deploying machine's engine to the server over SSH."""
        return self.registry == "none"

    @property
    def pull_registry(self) -> Registry | None:
        """The registry the server pulls from and logs in to, if any."""
        return self.registry if isinstance(self.registry, Registry) else None

    def _role_names(self) -> str:
        return "roles: " + ", ".join(self.roles)

    def _check_no_cycle(self) -> None:
        visiting: set[str] = set()
        done: set[str] = set()

        def visit(name: str, path: list[str]) -> None:
            if name in done:
                return
            if name in visiting:
                raise ValueError(f"roles.{name}.depends_on: a cycle {' -> '.join([*path, name])}")
            visiting.add(name)
            for other in self.roles[name].depends_on:
                visit(other, [*path, name])
            done.add(name)

        for name in self.roles:
            visit(name, [])

    def secret_names(self) -> set[str]:
        """Config secrets this stack needs (role env, accessories, SSH, registry): they must be set before `up`."""
        needed = {name for role in self.roles.values() for name in role.env.secret}
        if self.accessories is not None:
            needed |= self.accessories.secret_names()
            if self.accessories.postgres is not None:
                needed.discard(DATABASE_URL)  # the Postgres accessory provides it
        if getattr(self.server, "private_key_file", None) is None:
            needed.add("ssh_private_key")
        if self.pull_registry is not None and self.pull_registry.username is not None:
            needed.add("registry_password")
        return needed


TOP_LEVEL_KEYS: Final = tuple(StackConfig.model_fields)


def load(values: Mapping[str, str]) -> StackConfig:
    """The stack config from Pulumi's raw config (`{"quayside:roles": "<json>", ...}`), validated."""
    mine = {key.split(":", 1)[1]: value for key, value in values.items() if key.startswith(f"{NAMESPACE}:")}
    raw = {key: _decode(value) for key, value in mine.items() if key in TOP_LEVEL_KEYS}
    config = parse(raw, secrets_set={key for key in mine if key not in TOP_LEVEL_KEYS})
    unknown = sorted(set(mine) - set(TOP_LEVEL_KEYS) - config.secret_names())
    if unknown:
        allowed = ", ".join([*TOP_LEVEL_KEYS, *sorted(config.secret_names())])
        raise ConfigError(f"quayside config: {unknown[0]}: unknown key; allowed: {allowed}")
    return config


def _decode(value: str) -> Any:
    # Structured values arrive as JSON; a plain string (service: acme) does not.
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse(raw: Mapping[str, Any], *, secrets_set: set[str]) -> StackConfig:
    """Validates the stack's config values; `secrets_set` names the keys present as secrets."""
    try:
        config = StackConfig.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(one_line(error.errors()[0], StackConfig)) from None
    missing = sorted(config.secret_names() - secrets_set)
    if missing:
        raise ConfigError(f"quayside config: {missing[0]} is not set: pulumi config set --secret {missing[0]} <value>")
    return config
