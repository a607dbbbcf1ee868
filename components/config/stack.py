"""The stack config: its top-level keys, and reading them from Pulumi's config.

A stack file holds these under the project's namespace (`quayside:service`, `quayside:roles`, ...).
Secrets are separate config keys set with `pulumi config set --secret`: `ssh_private_key`,
`registry_password`, and one key per name a role lists in `env.secret` (e.g. `DATABASE_URL`). Each must be stored
as a secret (encrypted in the stack file), and is read from a prompt or stdin, never from a command line.

Every error is one line that names the key and what is allowed, raised before any resource exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Final, Literal, Self

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from components import defaults
from components.accessories import defaults as accessory_defaults
from components.config.accessories import ACCESSORIES, Accessories
from components.config.errors import ConfigError, how_to_set_secret, one_line
from components.config.roles import Role
from components.config.servers import (
    HETZNER_LOCATIONS,
    NETWORK_NEEDS,
    ExistingServer,
    HetznerServer,
    Network,
    Server,
    check_servers,
)
from components.config.types import (
    IPV4,
    Digest,
    Directory,
    ImageName,
    Ipv4Address,
    Model,
    Name,
    Port,
    RegistryHost,
    Version,
)

NAMESPACE: Final = "quayside"
# The name servers_by_name() gives the one server of a stack with `server:`.
ONE_SERVER: Final = "server"
# A role listing this secret gets the Postgres accessory's URL when there is one.
DATABASE_URL: Final = "DATABASE_URL"
SSH_PRIVATE_KEY: Final = "ssh_private_key"
REGISTRY_PASSWORD: Final = "registry_password"
# quayside's own secrets, and what each is: no role may read one (env.secret), so no app holds the keys to the servers,
# the registry, the backups or the log sink. postgres_password is not among them: an app may need it (DATABASE_URL
# carries it anyway).
OWN_SECRETS: Final[Mapping[str, str]] = {
    SSH_PRIVATE_KEY: "the servers' SSH key",
    REGISTRY_PASSWORD: "the registry's password",
    accessory_defaults.BACKUP_PASSPHRASE_SECRET: "the backups' passphrase",
    accessory_defaults.S3_ACCESS_KEY_SECRET: "the backups' S3 key",
    accessory_defaults.S3_SECRET_KEY_SECRET: "the backups' S3 key",
    accessory_defaults.BETTERSTACK_TOKEN_SECRET: "Better Stack's token",
}


# A role's lock and env file are named after it in the service's directory on the server, beside the host step's
# lock (host-remove.sh) and each accessory's lock and env file (accessory.sh: accessory-NAME): roles keep off those.
RESERVED_ROLE_NAME: Final = "host"
RESERVED_ROLE_PREFIX: Final = "accessory-"


def check_certifiable(role: str, hosts: list[str], *, own_certificate: bool = False) -> None:
    """Let's Encrypt certifies what kamal-proxy asks for: a public DNS name it can validate over HTTP or TLS-ALPN."""
    if not hosts:
        raise ValueError(f"roles.{role}.hosts: proxy.ssl needs at least one hostname per proxied role")
    for host in [] if own_certificate else hosts:
        if re.fullmatch(IPV4, host):
            why = "is an IP address; Let's Encrypt certifies hostnames"
        elif host.startswith("*."):
            why = "is a wildcard, which only a DNS challenge certifies and kamal-proxy answers HTTP and TLS ones"
        elif "." not in host:
            why = "is no public hostname (it has one label)"
        else:
            continue
        raise ValueError(f"roles.{role}.hosts: {host} {why}: give a hostname like app.example.com for proxy.ssl")


class Registry(Model):
    server: RegistryHost = Field(description="registry host, e.g. ghcr.io (password: config secret)")
    username: str | None = Field(default=None, description="login name; with it, registry_password is required")


class Proxy(Model):
    image: ImageName = Field(default=defaults.PROXY_IMAGE, description="kamal-proxy image repository")
    version: Version = Field(default=defaults.PROXY_VERSION, description="kamal-proxy tag")
    digest: Digest | None = Field(
        default=None,
        description="the digest image:version must name (default: what it names in its registry at each preview and "
        "up)",
    )
    ssl: bool = Field(default=False, description="TLS by Let's Encrypt for every role host")
    ssl_redirect: bool = Field(
        default=True,
        description="with ssl: plain HTTP is answered with a redirect to HTTPS; false: it is served as well",
    )
    http_port: Port = Field(default=defaults.HTTP_PORT, description="host port for HTTP")
    https_port: Port = Field(default=defaults.HTTPS_PORT, description="host port for HTTPS")
    bind: Ipv4Address = Field(default="0.0.0.0", description="the IPv4 address the ports are published on")
    state_dir: Directory = Field(default=defaults.PROXY_STATE_DIR, description="state path in the image")

    @model_validator(mode="after")
    def _ports_differ(self) -> Self:
        if not self.ssl_redirect and not self.ssl:
            raise ValueError("ssl_redirect: false only says something with ssl: true (HTTP is all there is without)")
        if self.http_port == self.https_port:
            raise ValueError(f"https_port {self.https_port} is also http_port: give HTTP and HTTPS a port each")
        return self

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.version}" + (f"@{self.digest}" if self.digest else "")


class LoadBalancer(Model):
    """One address in front of the roles' servers, which leaves a server out while its health checks fail and ends
    TLS; the roles' own proxies then serve plain HTTP on the private network only. `kamal-proxy`: a kamal-proxy on a
    server of the stack routes each role's hostnames to the servers of that role. `hetzner`: a Hetzner Load Balancer
    on the servers' network sends every request to every server running the proxied roles (it does not route by
    hostname), health-checked through the first proxied role by name, with a Hetzner-managed certificate."""

    provider: Literal["kamal-proxy", "hetzner"] = Field(
        description="kamal-proxy on a server of the stack, or a Hetzner Load Balancer"
    )
    server: Name | None = Field(
        default=None, description="with kamal-proxy (required): the server in `servers` it runs on; no role runs there"
    )
    type: Literal["lb11", "lb21", "lb31"] = Field(default="lb11", description="with hetzner: the Load Balancer type")
    location: Literal[HETZNER_LOCATIONS] | None = Field(
        default=None, description="with hetzner: its location (default: the first server's)"
    )

    @model_validator(mode="after")
    def _keys_of_its_kind(self) -> Self:
        if self.provider == "kamal-proxy" and self.server is None:
            raise ValueError("provider kamal-proxy runs on a server of the stack: name it (server: lb)")
        if self.provider == "hetzner" and self.server is not None:
            raise ValueError(
                "server goes with provider kamal-proxy: a Hetzner Load Balancer runs on no server of yours"
            )
        if self.provider == "kamal-proxy" and ("type" in self.model_fields_set or self.location is not None):
            raise ValueError("type and location go with provider hetzner")
        return self


class StackConfig(Model):
    service: Name = Field(description="the service name: container, network and proxy route prefix")
    # The config secrets the stack has set (parse() records them): a secret read only when set is needed then.
    _secrets_set: frozenset[str] = PrivateAttr(default=frozenset())
    server: Server | None = Field(
        default=None,
        description="the server: an existing SSH host, or a Hetzner Cloud server; required unless `servers` "
        "gives several instead",
    )
    servers: dict[Name, Server] | None = Field(
        default=None,
        min_length=1,
        description="several servers by name, instead of `server`: each an existing SSH host or a Hetzner Cloud "
        "server, with the keys of `server`; roles and accessories are placed on them by name, and they reach each "
        "other on a private network (Hetzner's, or the existing servers' private_ip)",
    )
    network: Network | None = Field(
        default=None,
        description="only with Hetzner servers in `servers`, which always join one: when not given, it is made with "
        "the keys below at their defaults",
    )
    registry: Registry | Literal["none"] | None = Field(
        default=None,
        description="the registry roles' images are pulled from; `none`: no registry, each role's image is an "
        "image of the deploying machine's Docker engine (image: myapp:dev), sent to the server over SSH, only the "
        "layers it lacks, and versioned by its image ID",
    )
    proxy: Proxy = Field(default_factory=Proxy, description="kamal-proxy, shared by every role on the server")
    load_balancer: LoadBalancer | None = Field(
        default=None,
        description="with servers: one public address for the roles on several servers, TLS there (proxy.ssl), a "
        "server that fails routed around",
    )
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

    @model_validator(mode="before")
    @classmethod
    def _network_for_hetzner_servers(cls, value: Any) -> Any:
        # Hetzner servers in `servers` always join a network: `network` at its defaults unless given.
        servers = value.get("servers") if isinstance(value, Mapping) else None
        if not isinstance(servers, Mapping) or value.get("network") is not None:
            return value
        hetzner = any(
            isinstance(server, Mapping) and server.get("provider") == "hetzner" for server in servers.values()
        )
        return {**value, "network": {}} if hetzner else value

    @model_validator(mode="after")
    def _servers_fit_together(self) -> Self:
        if self.load_balancer is not None and self.servers is None:
            raise ValueError("load_balancer: goes with servers: (a balancer spreads a role over several servers)")
        if (self.server is None) == (self.servers is None):
            raise ValueError(
                "server and servers: give one of them" if self.server else "server: required (or servers, for several)"
            )
        if self.servers is None:
            self._check_one_server()
        else:
            check_servers(self.servers, self.network)
            self._check_placements()
            self._check_load_balancer()
        return self

    def _check_load_balancer(self) -> None:
        balancer = self.load_balancer
        if balancer is None:
            return
        if balancer.provider == "hetzner":
            self._check_hetzner_balancer()
        else:
            self._check_known("load_balancer.server", [balancer.server or ""])
        for name, role in self.roles.items():
            if balancer.server is not None and balancer.server in (role.servers or []):
                raise ValueError(
                    f"roles.{name}.servers: {balancer.server} is load_balancer.server: the balancer's kamal-proxy "
                    "publishes its ports; place the role on the other servers"
                )
            if role.ssl_certificate is not None:
                raise ValueError(
                    f"roles.{name}.ssl_certificate: with load_balancer, TLS ends at the balancer, which takes "
                    "certificates from Let's Encrypt only (for now): remove it"
                )
        if not any(role.proxy for role in self.roles.values()):
            raise ValueError("load_balancer: no role uses the proxy (every role has proxy: false): remove it")

    def _check_hetzner_balancer(self) -> None:
        """A Hetzner Load Balancer joins the servers' Hetzner network and sends each request to any of its targets."""
        existing = [name for name, server in self.servers_by_name().items() if isinstance(server, ExistingServer)]
        if existing:
            raise ValueError(
                f"load_balancer: provider hetzner reaches its targets on the Hetzner network, and {existing[0]} is an "
                "existing server: use provider kamal-proxy"
            )
        placements = {name: self.role_servers(name) for name, role in self.roles.items() if role.proxy}
        first, *others = placements.items()
        differing = next(((name, servers) for name, servers in others if servers != first[1]), None)
        if differing is not None:
            raise ValueError(
                f"load_balancer: a Hetzner Load Balancer sends every hostname to every target, and roles {first[0]} "
                f"({', '.join(first[1])}) and {differing[0]} ({', '.join(differing[1])}) run on different servers: "
                "place the proxied roles on the same servers, or use provider kamal-proxy"
            )

    def balanced_servers(self) -> list[str]:
        """The servers a Hetzner Load Balancer sends to: those of the proxied roles (all the same ones)."""
        return next(self.role_servers(name) for name, role in self.roles.items() if role.proxy)

    def _check_one_server(self) -> None:
        """With `server:`, there is nothing to place: keys that place on servers or join them are refused."""
        if self.network is not None:
            raise ValueError(f"network: {NETWORK_NEEDS}")
        keys = [f"roles.{name}.servers" for name, role in self.roles.items() if role.servers is not None]
        keys += [f"accessories.{name}.server" for name in ACCESSORIES if self._placed(name) is not None]
        if keys:
            raise ValueError(f"{keys[0]}: goes with servers: (this stack has one server:)")

    def _check_placements(self) -> None:
        """Every role and accessory is placed on servers `servers` names, and every role on one at least."""
        for name in ACCESSORIES:
            self._check_known(f"accessories.{name}.server", [placed] if (placed := self._placed(name)) else [])
        postgres = self.accessories.postgres if self.accessories is not None else None
        if postgres is not None and postgres.server is None and len(self.servers_by_name()) > 1:
            # Its data stays where it first ran: a default that follows the order of `servers` could move it.
            raise ValueError(
                f"accessories.postgres.server: required with several servers: name the one its data lives on "
                f"({', '.join(self.servers_by_name())})"
            )
        for name, role in self.roles.items():
            self._check_known(f"roles.{name}.servers", role.servers or [])
            if not self.role_servers(name):
                raise ValueError(
                    f"roles.{name}.servers: every server holds accessories only ({', '.join(self.servers_by_name())}): "
                    "name the servers it runs on"
                )
        if postgres is not None and postgres.hold_requests is not None:
            raise ValueError(
                "accessories.postgres.hold_requests: goes with one server: (the roles' proxies on other servers "
                "cannot be held from postgres's server)"
            )
        backup = self.accessories.backup if self.accessories is not None else None
        postgres_server = self.accessory_server("postgres")
        if backup is not None and backup.host_network and self.accessory_server("backup") != postgres_server:
            raise ValueError(
                "accessories.backup.server: host_network reaches Postgres on its own server's loopback: place it on "
                f"{postgres_server}, postgres's server"
            )

    @model_validator(mode="after")
    def _roles_fit_together(self) -> Self:
        if self.sends_images and self.servers is not None:
            raise ValueError(
                "registry: none sends each image to one server over SSH; with servers:, give a registry the servers "
                "pull from (registry: {server: ...})"
            )
        routes: dict[tuple[str, str], str] = {}
        for name, role in self.roles.items():
            if name == RESERVED_ROLE_NAME or name.startswith(RESERVED_ROLE_PREFIX):
                raise ValueError(
                    f"roles.{name}: quayside names its own parts on the server '{RESERVED_ROLE_NAME}' and "
                    f"'{RESERVED_ROLE_PREFIX}...': name the role otherwise (web, worker, ...)"
                )
            for other in role.depends_on:
                if other not in self.roles or other == name:
                    raise ValueError(f"roles.{name}.depends_on: {other!r} is not another role ({self._role_names()})")
            for host in (role.hosts or [""]) if role.proxy else []:
                route = (host, role.path_prefix or "/")
                if route in routes:
                    where = f"host {host or '(any)'} path {route[1]}"
                    raise ValueError(f"roles.{name}.hosts: {where} is already served by role {routes[route]}")
                routes[route] = name
            if role.ssl_certificate is not None and not self.proxy.ssl:
                raise ValueError(f"roles.{name}.ssl_certificate: serving a certificate needs proxy: {{ssl: true}}")
            if self.proxy.ssl and role.proxy:
                # A certificate of the user's own may name what Let's Encrypt would not (an IP, a wildcard).
                check_certifiable(name, role.hosts, own_certificate=role.ssl_certificate is not None)
            read = role.secret_names()
            own = next((secret for secret in read if secret in OWN_SECRETS), None)
            if own is not None:
                raise ValueError(
                    f"roles.{name}.{read[own]}: {own} is quayside's own secret ({OWN_SECRETS[own]}), not the "
                    "app's: give the app a secret of its own"
                )
            if DATABASE_URL in role.env.clear and self.accessories is not None and self.accessories.postgres:
                raise ValueError(
                    f"roles.{name}.env.clear: {DATABASE_URL} is set by quayside from accessories.postgres: remove it "
                    f"from env.clear (list it in env.secret to get it)"
                )
            if self.sends_images and role.image.context is not None:
                raise ValueError(
                    f"roles.{name}.image: registry: none sends an image of the local Docker engine: give its "
                    "reference (image: myapp:dev), or a registry to build for"
                )
            if role.image.context is not None and self.registry is None:
                raise ValueError(f"roles.{name}.image.context: a build needs registry: {{server: ...}} to push to")
        self._check_no_cycle()
        return self

    @model_validator(mode="after")
    def _ports_free(self) -> Self:
        """Each port quayside publishes on a server is free there: the proxy's two, Postgres's published one, and the
        server's SSH port differ (Docker would fail to publish a taken one, halfway through an `up`)."""
        postgres = self.accessories.postgres if self.accessories is not None else None
        published = postgres.publish if postgres is not None else None
        for name, server in self.servers_by_name().items():
            where = f"server {name}" if self.several_servers else "the server"
            taken = {server.ssh_port: f"{where}'s SSH port"}
            if published is not None and self.accessory_server("postgres") == name:
                if published.port in taken:
                    raise ValueError(
                        f"accessories.postgres.publish.port: {published.port} is {taken[published.port]}: choose "
                        "another port"
                    )
                taken[published.port] = f"accessories.postgres.publish.port on {where}"
            if name not in self.proxy_servers():
                continue
            for key, port in (("http_port", self.proxy.http_port), ("https_port", self.proxy.https_port)):
                if port in taken:
                    raise ValueError(f"proxy.{key}: {port} is {taken[port]}: give the proxy another port")
        return self

    def proxy_servers(self) -> list[str]:
        """The servers kamal-proxy runs on: the one server of a stack with `server:`, always; with `servers:`, each
        server a proxied role runs on."""
        servers = list(self.servers_by_name())
        if not self.several_servers:
            return servers
        proxied = {server for name, role in self.roles.items() if role.proxy for server in self.role_servers(name)}
        if self.load_balancer is not None and self.load_balancer.server is not None:
            proxied.add(self.load_balancer.server)
        return [name for name in servers if name in proxied]

    def app_proxy(self) -> Proxy:
        """The proxy the roles' servers run: `proxy`, or behind a load balancer plain HTTP (TLS ends there); each
        server's then publishes on its private address only (stack.py)."""
        return self.proxy if self.load_balancer is None else self.proxy.model_copy(update={"ssl": False})

    @property
    def several_servers(self) -> bool:
        """`servers:` was given (even with one server in it): resources are named per server."""
        return self.servers is not None

    def servers_by_name(self) -> dict[str, ExistingServer | HetznerServer]:
        """Every server by its name in `servers`, in order; a stack with `server:` has one, named `server`."""
        if self.servers is not None:
            return dict(self.servers)
        assert self.server is not None  # one of the two, as validated
        return {ONE_SERVER: self.server}

    @property
    def first_server(self) -> ExistingServer | HetznerServer:
        """`server`, or the first of `servers`: where the one-server stack's resources are."""
        return next(iter(self.servers_by_name().values()))

    def role_servers(self, role: str) -> list[str]:
        """The names of the servers `role` runs on: its `servers`, else every server but the accessory-only ones and
        the load balancer's."""
        chosen = self.roles[role].servers
        if chosen is not None:
            return list(chosen)
        balancer = {self.load_balancer.server} if self.load_balancer and self.load_balancer.server else set()
        return [name for name in self.servers_by_name() if name not in self._accessory_only() | balancer]

    def accessory_server(self, name: str) -> str:
        """The name of the server accessory `name` (postgres, backup, vector) runs on: its `server`, else Postgres
        and Vector on the first server (the first of those it runs on), the backups on Postgres's."""
        if name not in ACCESSORIES:
            raise ValueError(f"no accessory {name!r}: accessories are {', '.join(ACCESSORIES)}")
        placed = self._placed(name)
        if placed is not None:
            return placed
        if name == "backup":
            return self.accessory_server("postgres")
        return next(iter(self.servers_by_name()))

    def vector_servers(self) -> list[str]:
        """The servers Vector runs on: its `server`, else every server (each ships its own server's logs)."""
        placed = self._placed("vector")
        return [placed] if placed is not None else list(self.servers_by_name())

    def private_address(self, name: str) -> str | None:
        """Server `name`'s address on the private network: an existing server's private_ip, a Hetzner server's
        address in `network` (by its place in `servers`); None for a one-server stack without private_ip."""
        servers = self.servers_by_name()
        server = servers[name]
        if isinstance(server, ExistingServer):
            return server.private_ip
        return self.network.address_of(list(servers).index(name)) if self.network is not None else None

    def _placed(self, name: str) -> str | None:
        accessory = getattr(self.accessories, name, None) if self.accessories is not None else None
        return accessory.server if accessory is not None else None

    def _accessory_only(self) -> set[str]:
        """Servers some accessory names in its `server` and no role in its `servers`."""
        with_roles = {server for role in self.roles.values() for server in role.servers or []}
        return {placed for name in ACCESSORIES if (placed := self._placed(name)) is not None} - with_roles

    def _check_known(self, key: str, names: list[str]) -> None:
        servers = self.servers_by_name()
        unknown = next((name for name in names if name not in servers), None)
        if unknown is not None:
            raise ValueError(f"{key}: unknown server {unknown!r}; servers: {', '.join(servers)}")

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
        needed = {name for role in self.roles.values() for name in role.secret_names()}
        if self.accessories is not None:
            needed |= self.accessories.secret_names() | (self.accessories.kept_secret_names() & self._secrets_set)
            if self.accessories.postgres is not None:
                needed.discard(DATABASE_URL)  # the Postgres accessory provides it
        if any(getattr(server, "private_key_file", None) is None for server in self.servers_by_name().values()):
            needed.add(SSH_PRIVATE_KEY)
        if self.pull_registry is not None and self.pull_registry.username is not None:
            needed.add(REGISTRY_PASSWORD)
        return needed


TOP_LEVEL_KEYS: Final = tuple(StackConfig.model_fields)


def load(values: Mapping[str, str], *, secret_keys: Collection[str]) -> StackConfig:
    """The stack config from Pulumi's raw config (`{"quayside:roles": "<json>", ...}`), validated; `secret_keys` are
    the full keys Pulumi stores encrypted (`quayside:ssh_private_key`)."""
    mine = {key.split(":", 1)[1]: value for key, value in values.items() if key.startswith(f"{NAMESPACE}:")}
    raw = {key: _decode(value) for key, value in mine.items() if key in TOP_LEVEL_KEYS}
    config = parse(raw, secrets_set={key for key in mine if key not in TOP_LEVEL_KEYS})
    unknown = sorted(set(mine) - set(TOP_LEVEL_KEYS) - config.secret_names())
    stale = next((key for key in unknown if f"{NAMESPACE}:{key}" in secret_keys), None)
    if stale is not None:
        # Left behind when a role stops naming it (env.secret, ssl_certificate): an encrypted value nothing reads.
        raise ConfigError(
            f"quayside config: {stale} is a secret no key of the stack names: remove it (pulumi config rm {stale}), "
            "or name it where it is meant to be read"
        )
    if unknown:
        allowed = ", ".join([*TOP_LEVEL_KEYS, *sorted(config.secret_names())])
        raise ConfigError(f"quayside config: {unknown[0]}: unknown key; allowed: {allowed}")
    plain = sorted(name for name in config.secret_names() if f"{NAMESPACE}:{name}" not in secret_keys)
    if plain:
        # Its value sits readable in Pulumi.<stack>.yaml (and in the repository's history, once committed).
        raise ConfigError(
            f"quayside config: {plain[0]} is in plain text in the stack file: set it again as a secret (which "
            f"replaces it): {how_to_set_secret(plain[0])}"
        )
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
    config._secrets_set = frozenset(secrets_set)
    missing = sorted(config.secret_names() - secrets_set)
    if missing:
        raise ConfigError(f"quayside config: {missing[0]} is not set: {how_to_set_secret(missing[0])}")
    return config
