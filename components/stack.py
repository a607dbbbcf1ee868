"""Wires the components in deploy order and returns the stack outputs (the contract other stacks read)."""

from __future__ import annotations

import re
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi_command import local, remote

from components import config, drift, image_build, image_pin, image_transfer
from components.accessories.wiring import DeployedAccessories, SecretReader, Site, deploy_accessories
from components.bootstrap import ServerBootstrap, ServerBootstrapArgs
from components.host import DockerHost, DockerHostArgs
from components.load_balancer import (
    BalancedRole,
    HetznerLoadBalancer,
    HetznerLoadBalancerArgs,
    LoadBalancer,
    LoadBalancerArgs,
)
from components.network import PrivateNetwork, PrivateNetworkArgs
from components.proxy import Proxy, ProxyArgs
from components.role import AppRole, AppRoleArgs
from components.server import (
    ExistingServer,
    ExistingServerArgs,
    HetznerServer,
    HetznerServerArgs,
    host_key_rotation_name,
    web_ports,
)


@dataclass
class ServerSide:
    """One server of the service and the steps that make it ready; the roles and accessories placed on it wait for
    `ready`."""

    name: str
    server: ExistingServer | HetznerServer
    connection: remote.ConnectionArgs  # every step's on the server: the server's, checked by the drift check's read
    bootstrap: ServerBootstrap | None
    host: DockerHost
    proxy: Proxy | None  # on a server that runs a role behind the proxy
    private_ip: str | None  # the server's address on the service's private network (several servers only)

    @property
    def ready(self) -> list[pulumi.Resource]:
        login = [self.host.registry_login] if self.host.registry_login is not None else []
        return [self.host.ready, *([self.proxy.ready] if self.proxy is not None else []), *login]


@dataclass
class Deployment:
    servers: dict[str, ServerSide]
    roles: dict[str, AppRole]
    accessories: DeployedAccessories
    service: str
    several: bool  # `servers:` (by name) rather than one `server:`
    balancer: LoadBalancer | HetznerLoadBalancer | None = None

    @property
    def first(self) -> ServerSide:
        return next(iter(self.servers.values()))

    @property
    def server(self) -> ExistingServer | HetznerServer:
        return self.first.server

    @property
    def bootstrap(self) -> ServerBootstrap | None:
        return self.first.bootstrap

    @property
    def host(self) -> DockerHost:
        return self.first.host

    @property
    def proxy(self) -> Proxy:
        proxy = next((side.proxy for side in self.servers.values() if side.proxy is not None), None)
        assert proxy is not None, "every stack has a proxied role or, with one server, a proxy anyway"
        return proxy

    def heals(self) -> dict[str, dict[str, pulumi.Output[int]]]:
        """Server → its parts besides the roles (kamal-proxy, the accessories) → the drifts of each healed."""
        found = self.accessories.heals()
        for name, side in self.servers.items():
            if side.proxy is not None:
                found.setdefault(name, {})[drift.PROXY] = side.proxy.heal
        return found

    def outputs(self) -> dict[str, Any]:
        """The stack outputs: names and shapes are a contract other stacks read (StackReference). A stack on
        several servers adds each server's addresses and where each role and accessory runs."""
        outputs: dict[str, Any] = {
            "server_host": self.server.host,
            "proxy_version": self.proxy.version,
            "roles": {
                name: {
                    "urls": role.urls,
                    "version": role.once_deployed(role.version),
                    "image": role.once_deployed(role.image_ref),
                    "heals": role.once_deployed(role.heal),
                    **({"servers": role.servers} if self.several else {}),
                    **canary_output(role),
                }
                for name, role in self.roles.items()
            },
            **self.accessories.outputs(),
            # What the `quayside` command reads to reach the server as deploys do (none of it is secret).
            "service": self.service,
            "ssh": ssh_output(self.first),
            "accessories": [name for name in config.ACCESSORIES if getattr(self.accessories, name) is not None],
            drift.PARTS_OUTPUT: self.heals(),
        }
        if self.several:
            outputs["servers"] = {
                name: {"host": side.server.host, "private_ip": side.private_ip} for name, side in self.servers.items()
            }
            outputs["hosts"] = {name: ssh_output(side) for name, side in self.servers.items()}
            outputs["accessory_servers"] = self.accessories.servers
        if self.balancer is not None:
            outputs["load_balancer"] = {
                **({"server": self.balancer.server} if self.balancer.server else {}),
                "host": self.balancer.host, "targets": self.balancer.targets,
            }  # fmt: skip
        return outputs


def canary_output(role: AppRole) -> dict[str, Any]:
    """While a role declares a canary: its `version` serves only this share, beside the version serving before."""
    canary = role.canary
    return {"canary": {"percent": canary.percent, "allow": canary.allow}} if canary is not None else {}


def ssh_output(side: ServerSide) -> dict[str, Any]:
    server = side.server
    return {"host": server.host, "port": server.port, "user": server.user, "host_key": server.host_key}


# Names no service, so a rename of `service` keeps it: each server records it beside the service (host.sh) and can
# tell a renamed service of this stack from another stack's.
STACK_ID_RESOURCE = "quayside-stack-id"


def stack_identity() -> pulumi.Output[str]:
    """A random ID made at the stack's first `up` and kept in its state from then on."""
    made = local.Command(
        STACK_ID_RESOURCE,
        create=shlex.join(["echo", uuid.uuid4().hex]),
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions(ignore_changes=["create"]),  # made once: a new text each run changes nothing
    )
    return made.stdout.apply(lambda out: (out or "").strip())


def deploy(
    stack: config.StackConfig,
    secret: SecretReader,
    read_digest: image_pin.DigestReader | None = None,
    read_server: drift.ServerReader | None = None,
) -> Deployment:
    """`read_digest` pins each image the servers pull (the roles', kamal-proxy's, the accessories') from `repo:tag`
    to the digest it names now (None: images deploy as written); it runs first, so a registry that does not answer
    fails the run before any resource is declared. With registry: none, the local images' IDs are read first
    instead, so a missing one fails the run just as early.
    `read_server` reads what serves on a server beside what the stack's steps recorded there, for the drift check
    (None: no check)."""
    local_images = image_transfer.local_image_ids(stack)
    pulled = {name: role for name, role in stack.roles.items() if name not in local_images}
    pins = image_pin.pin_images(image_pin.pulled_images(stack, pulled), read_digest) if read_digest is not None else {}
    stack = image_pin.with_pins(stack, pins)
    service = stack.service
    image_build.check_build_inputs(stack, image_build.project_dir())
    registry_password = secret("registry_password") if "registry_password" in stack.secret_names() else None
    network = private_network(stack)
    stack_id = stack_identity()
    proxied = stack.proxy_servers()
    drift_check = drift.DriftCheck(service, read_server) if read_server is not None else None
    sides: dict[str, ServerSide] = {}
    for index, (name, settings) in enumerate(stack.servers_by_name().items()):
        sides[name] = _server_side(
            stack, Placement(name, index, stack.several_servers), settings, secret, registry_password, network,
            with_proxy=name in proxied, stack_id=stack_id, drift_check=drift_check,
        )  # fmt: skip
    sites = {name: Site(side.connection, side.host.ready, side.private_ip) for name, side in sides.items()}
    accessories = deploy_accessories(stack, sites, secret, drift_check)

    roles: dict[str, AppRole] = {}
    for name in deploy_order(stack):
        role = stack.roles[name]
        placed = {server: sides[server] for server in _role_servers(stack, name)}
        first = next(iter(placed.values()))
        roles[name] = AppRole(
            f"{service}-{name}",
            AppRoleArgs(
                service=service,
                name=name,
                role=role,
                connection=first.connection,
                proxy=stack.app_proxy(),
                served_by=stack.proxy,
                secrets={key: _role_secret(key, secret, accessories) for key in role.env.secret},
                certificate=(
                    (secret(role.ssl_certificate.certificate_pem), secret(role.ssl_certificate.private_key_pem))
                    if role.ssl_certificate is not None
                    else None
                ),
                registry=stack.pull_registry,
                registry_password=registry_password,
                pinned_image=pins.get(image_pin.role_key(name)),
                # Every role boots after the database answers: any of them may run queries at start.
                depends_on=[
                    *(step for side in placed.values() for step in side.ready),
                    *accessories.ready,
                    *(roles[other].deployed for other in role.depends_on),
                ],
                local_image_id=local_images.get(name),
                host_ready=first.host.ready,
                servers=list(placed),
                placements={server: side.connection for server, side in placed.items()}
                if stack.several_servers
                else {},
                hosts_at_once=role.boot.hosts_at_once(len(placed)) if role.boot is not None else len(placed),
                drift=drift_check,
            ),
        )

    balancer = _load_balancer(stack, sides, roles, network)
    return Deployment(sides, roles, accessories, service, stack.several_servers, balancer)


def _load_balancer(
    stack: config.StackConfig, sides: dict[str, ServerSide], roles: dict[str, AppRole], network: PrivateNetwork | None
) -> LoadBalancer | HetznerLoadBalancer | None:
    """Each proxied role's route on the load balancer's kamal-proxy, to the proxies of the role's servers; or a
    Hetzner Load Balancer to the servers of the proxied roles."""
    settings = stack.load_balancer
    if settings is None:
        return None
    if settings.server is None:
        return _hetzner_load_balancer(stack, settings, sides, network)
    side = sides[settings.server]
    assert side.proxy is not None  # the balancer's server runs a proxy (proxy_servers)
    port = stack.app_proxy().http_port
    balanced = {
        name: BalancedRole(
            role,
            [f"{stack.private_address(server)}:{port}" for server in stack.role_servers(name)],
            roles[name].deployed,
        )
        for name, role in stack.roles.items()
        if role.proxy
    }
    return LoadBalancer(
        f"{stack.service}-balancer",
        LoadBalancerArgs(
            service=stack.service, server=side.name, host=side.server.host, connection=side.connection,
            proxy=stack.proxy, proxy_ready=side.proxy.ready, roles=balanced,
        ),
    )  # fmt: skip


def _hetzner_load_balancer(
    stack: config.StackConfig,
    settings: config.LoadBalancer,
    sides: dict[str, ServerSide],
    network: PrivateNetwork | None,
) -> HetznerLoadBalancer:
    assert network is not None  # the config requires Hetzner servers, which always join one
    servers = stack.balanced_servers()
    machines = {name: sides[name].server for name in servers}
    hetzner = {name: machine for name, machine in machines.items() if isinstance(machine, HetznerServer)}
    assert len(hetzner) == len(machines)  # the config requires Hetzner servers
    first = stack.servers_by_name()[servers[0]]
    assert isinstance(first, config.HetznerServer)
    return HetznerLoadBalancer(
        f"{stack.service}-balancer",
        HetznerLoadBalancerArgs(
            service=stack.service, settings=settings, location=settings.location or first.location, network=network,
            servers={name: machine.machine for name, machine in hetzner.items()},
            addresses={name: stack.private_address(name) or "" for name in servers}, proxy=stack.proxy,
            target_port=stack.app_proxy().http_port,
            roles={name: role for name, role in stack.roles.items() if role.proxy},
        ),
    )  # fmt: skip


def server_proxy(stack: config.StackConfig, server: str, private_ip: str | None) -> config.Proxy:
    """The kamal-proxy a server runs: the stack's; behind a load balancer, a role server's publishes plain HTTP on its
    private address only, for the balancer."""
    if stack.load_balancer is None or server == stack.load_balancer.server or private_ip is None:
        return stack.proxy
    return stack.app_proxy().model_copy(update={"bind": private_ip})


def _role_servers(stack: config.StackConfig, role: str) -> list[str]:
    return stack.role_servers(role) if stack.several_servers else list(stack.servers_by_name())


@dataclass(frozen=True)
class Placement:
    """A server's place in the stack: its name, its index among the servers, and whether there are several (then
    its resources carry its name, and the first server's keep the names a one-server stack gives them)."""

    name: str
    index: int
    several: bool

    def resource(self, service: str, kind: str) -> tuple[str, pulumi.ResourceOptions | None]:
        """The resource name of one of the server's parts, and the alias that keeps a one-server stack's."""
        if not self.several:
            return f"{service}-{kind}", None
        named = f"{service}-{kind}-{self.name}"
        first = pulumi.ResourceOptions(aliases=[pulumi.Alias(name=f"{service}-{kind}")]) if self.index == 0 else None
        return named, first

    @property
    def config_key(self) -> str:
        """The server's own config key, as errors name it."""
        return f"servers.{self.name}" if self.several else config.ONE_SERVER

    def key(self, field: str) -> str:
        """The config key of one of the server's settings."""
        return f"{self.config_key}.{field}"


def _server_side(
    stack: config.StackConfig,
    placement: Placement,
    settings: config.ExistingServer | config.HetznerServer,
    secret: SecretReader,
    registry_password: pulumi.Output[str] | None,
    network: PrivateNetwork | None,
    *,
    with_proxy: bool,
    stack_id: pulumi.Output[str],
    drift_check: drift.DriftCheck | None,
) -> ServerSide:
    service = stack.service
    name, opts = placement.resource(service, "server")
    server: ExistingServer | HetznerServer
    private_ip = stack.private_address(placement.name) if placement.several else None
    if isinstance(settings, config.ExistingServer):
        server = ExistingServer(
            name,
            ExistingServerArgs(
                server=settings,
                private_key=_private_key(placement, settings, secret),
                host_key=_host_key(placement, settings),
            ),
            opts,
        )
    else:
        server = HetznerServer(
            name,
            HetznerServerArgs(
                service=service, server=settings, private_key=secret("ssh_private_key"),
                label=placement.name if placement.several else None,
                network=network.attachment(private_ip) if network is not None and private_ip is not None else None,
                web_ports=web_ports(server_proxy(stack, placement.name, private_ip), with_proxy=with_proxy),
            ),
            opts,
        )  # fmt: skip
    connection, bootstrap_connection = server.connection, server.bootstrap_connection
    if drift_check is not None:
        drift_check.add_server(placement.name, server.connection, host_key_pin(placement, settings, name))
        connection = drift_check.checked(placement.name, connection)
        if bootstrap_connection is not None:
            bootstrap_connection = drift_check.checked(placement.name, bootstrap_connection)
    bootstrap = _bootstrap(service, placement, settings, server, bootstrap_connection)
    name, opts = placement.resource(service, "host")
    host = DockerHost(
        name,
        DockerHostArgs(
            service=service,
            connection=connection,
            stack_id=stack_id,
            install_docker=getattr(settings, "install_docker", True),
            registry=stack.pull_registry,
            registry_password=registry_password,
            after=[bootstrap.done] if bootstrap is not None else server.ready,
        ),
        opts,
    )
    proxy = None
    if with_proxy:
        name, opts = placement.resource(service, "proxy")
        proxy = Proxy(
            name,
            ProxyArgs(
                service=service, connection=connection, proxy=server_proxy(stack, placement.name, private_ip),
                host_ready=host.ready, heal=drift.heal_of(drift_check, placement.name, drift.PROXY),
            ),
            opts,
        )  # fmt: skip
    return ServerSide(placement.name, server, connection, bootstrap, host, proxy, private_ip)


def private_network(stack: config.StackConfig) -> PrivateNetwork | None:
    """The Hetzner network every server of a service on several Hetzner servers joins."""
    settings = stack.servers_by_name().values()
    if not stack.several_servers or not all(isinstance(server, config.HetznerServer) for server in settings):
        return None
    return PrivateNetwork(f"{stack.service}-network", PrivateNetworkArgs(service=stack.service, network=stack.network))


def _bootstrap(
    service: str,
    placement: Placement,
    settings: config.ExistingServer | config.HetznerServer,
    server: ExistingServer | HetznerServer,
    connection: remote.ConnectionArgs | None,
) -> ServerBootstrap | None:
    """Root's steps first, when the server has them (always for Hetzner, on request for an existing server), over
    root's `connection` to it."""
    if settings.bootstrap is None or connection is None:
        return None
    name, opts = placement.resource(service, "bootstrap")
    return ServerBootstrap(
        name,
        ServerBootstrapArgs(
            service=service,
            connection=connection,
            deploy_user=settings.user,
            bootstrap=settings.bootstrap,
            install_docker=getattr(settings, "install_docker", True),
            after=server.ready,
        ),
        opts,
    )


def _private_key(placement: Placement, server: config.ExistingServer, secret: SecretReader) -> pulumi.Output[str]:
    """The `ssh_private_key` secret, or the key file the stack names (read here, kept secret from here on)."""
    if server.private_key_file is None:
        return secret("ssh_private_key")
    key = placement.key("private_key_file")
    text = _read_named_file(key, server.private_key_file, "set the ssh_private_key secret")
    return pulumi.Output.secret(text)


def _host_key(placement: Placement, server: config.ExistingServer) -> str | None:
    """The host key connections must see, or None when the stack trusts the first one the server presents."""
    if server.host_key_file is not None:
        key = placement.key("host_key_file")
        text = _read_named_file(key, server.host_key_file, f"give {placement.key('host_key')}")
        if re.fullmatch(config.HOST_KEY_PATTERN, text.strip()) is None:
            raise config.ConfigError(
                f"quayside config: {key}: {server.host_key_file} holds no SSH public key line (ssh-ed25519 AAAA...)"
            )
        return config.public_key(text)
    return config.public_key(server.host_key) if server.host_key is not None else None


def host_key_pin(
    placement: Placement, settings: config.ExistingServer | config.HetznerServer, server_resource: str
) -> drift.HostKeyPin:
    """Where the server's pinned host key comes from, for the one line that refuses a server showing another."""
    if isinstance(settings, config.HetznerServer):
        rotation = host_key_rotation_name(server_resource)
        return drift.HostKeyPin(
            placement.config_key,
            placement.config_key,
            f"have it make and pin a new one: `pulumi up --replace URN`, URN that of {rotation} (pulumi stack "
            "--show-urns)",
        )
    given = "host_key_file" if settings.host_key_file is not None else "host_key"
    if settings.trust_first_use:
        return drift.HostKeyPin(
            placement.config_key,
            placement.key("trust_first_use"),
            f"pin it in {placement.key('host_key')}, in place of trust_first_use (which pinned the first key seen)",
        )
    return drift.HostKeyPin(placement.config_key, placement.key(given), f"pin it in {placement.key(given)}")


def _read_named_file(key: str, named: str, instead: str) -> str:
    path = Path(named).expanduser()
    try:
        return path.read_text()
    except OSError as error:
        raise config.ConfigError(
            f"quayside config: {key}: cannot read {path} ({error.strerror}): name a readable file, or remove "
            f"the key and {instead}"
        ) from None


def _role_secret(key: str, secret: SecretReader, accessories: DeployedAccessories) -> pulumi.Output[str]:
    if key == config.DATABASE_URL and accessories.database_url is not None:
        return accessories.database_url
    return secret(key)


def deploy_order(stack: config.StackConfig) -> list[str]:
    """Roles after the roles they depend on; otherwise in config order (config rejects cycles)."""
    ordered: list[str] = []

    def place(name: str) -> None:
        if name not in ordered:
            for other in stack.roles[name].depends_on:
                place(other)
            ordered.append(name)

    for name in stack.roles:
        place(name)
    return ordered
