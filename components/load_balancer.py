"""The load balancer in front of the roles' servers (`load_balancer:`), of either kind.

LoadBalancer: the roles' routes on the load balancer's kamal-proxy (`provider: kamal-proxy`).

The balancer is a kamal-proxy like every server's, on a server of the stack that runs no role; each proxied role
gets a route there whose targets are the kamal-proxies of the role's servers, on their private addresses
(balancer.sh). A route is deployed after its role's rollout, so a server joins the targets only once the role
answers there; a server leaving the role leaves the targets in the same update, before its placement's delete
retires the role there (deletes come last).

HetznerLoadBalancer: a Hetzner Load Balancer (`provider: hetzner`) with the servers as private-address targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
from pulumi_command import remote

from components import config, defaults, steps
from components import remote as commands
from components.lazy import lazy_module
from components.network import PrivateNetwork

if TYPE_CHECKING:
    import pulumi_hcloud as hcloud
else:
    hcloud = lazy_module("pulumi_hcloud")  # only a Hetzner Load Balancer needs it

ROUTE_SECONDS = 300
HETZNER_RETRIES = 3


@dataclass
class BalancedRole:
    role: config.Role
    targets: list[str]  # ADDRESS:PORT of the kamal-proxy of each of the role's servers
    deployed: pulumi.Resource  # the role's rollout: its route changes after it


@dataclass
class LoadBalancerArgs:
    service: str
    server: str  # its name in `servers`
    host: pulumi.Input[str]  # its public address
    connection: remote.ConnectionArgs
    proxy: config.Proxy  # the stack's: its TLS settings are the balancer's
    proxy_ready: pulumi.Resource
    roles: dict[str, BalancedRole] = field(default_factory=dict)


def route_args(action: str, service: str, name: str, balanced: BalancedRole | None, proxy: config.Proxy) -> list[str]:
    """balancer.sh's arguments for one role's route (`balanced` None: its removal)."""
    if balanced is None:
        return steps.BALANCER.argv(action, service=service, role=name, proxy_name=defaults.PROXY_CONTAINER)
    role = balanced.role
    health = role.health or config.Health()
    return steps.BALANCER.argv(
        action, service=service, role=name, proxy_name=defaults.PROXY_CONTAINER, target=balanced.targets,
        host=role.hosts, path_prefix=[role.path_prefix] if role.path_prefix else [], health_path=health.path,
        health_interval=health.interval, health_timeout=health.timeout, tls=proxy.ssl,
        no_tls_redirect=proxy.ssl and not proxy.ssl_redirect, deploy_timeout=role.deploy_timeout,
        drain_timeout=role.drain_timeout,
    )  # fmt: skip


class LoadBalancer(pulumi.ComponentResource):
    """`routes`: one command per proxied role on the balancer's server; its delete removes the route."""

    routes: dict[str, remote.Command]
    targets: dict[str, list[str]]
    server: str | None
    host: pulumi.Input[str]

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:LoadBalancer", name, None, opts)
        self.server = args.server
        self.host = args.host
        self.targets = {role: balanced.targets for role, balanced in args.roles.items()}
        self.routes = {
            role: remote.Command(
                f"{name}-{role}",
                connection=args.connection,
                create=commands.script(
                    args.service, steps.BALANCER.name, route_args("deploy", args.service, role, balanced, args.proxy),
                    timeout_seconds=ROUTE_SECONDS,
                ),
                delete=commands.script(
                    args.service, steps.BALANCER.name, route_args("remove", args.service, role, None, args.proxy),
                    timeout_seconds=ROUTE_SECONDS,
                ),
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.proxy_ready, balanced.deployed]),
            )
            for role, balanced in args.roles.items()
        }  # fmt: skip
        self.register_outputs({"server": args.server, "targets": self.targets})


@dataclass
class HetznerLoadBalancerArgs:
    service: str
    settings: config.LoadBalancer
    location: str
    network: PrivateNetwork
    servers: dict[str, hcloud.Server]  # its targets: the servers of the proxied roles
    addresses: dict[str, str]  # each target's private address
    proxy: config.Proxy  # the stack's: TLS and the public ports
    target_port: int  # the roles' proxies' HTTP port, on the private network
    roles: dict[str, config.Role] = field(default_factory=dict)  # the proxied roles


def health_check(role: config.Role, port: int) -> hcloud.LoadBalancerServiceHealthCheckArgs:
    """The health check of the first proxied role by name, through its proxy (by its first hostname). Hetzner checks
    every `interval` seconds (3 at least) and leaves a target out after `retries` failures."""
    health = role.health or config.Health()
    return hcloud.LoadBalancerServiceHealthCheckArgs(
        protocol="http", port=port, interval=max(3, commands.seconds(health.interval)),
        timeout=max(1, commands.seconds(health.timeout)), retries=HETZNER_RETRIES,
        http=hcloud.LoadBalancerServiceHealthCheckHttpArgs(
            domain=role.hosts[0] if role.hosts else None, path=health.path, status_codes=["2??", "3??"]
        ),
    )  # fmt: skip


class HetznerLoadBalancer(pulumi.ComponentResource):
    """A Hetzner Load Balancer on the servers' network: a private-address target per server, one service (HTTPS with
    a managed certificate for every role's hostname, or HTTP) to the roles' proxies."""

    balancer: hcloud.LoadBalancer
    service: hcloud.LoadBalancerService
    certificate: hcloud.ManagedCertificate | None = None
    host: pulumi.Input[str]
    targets: dict[str, list[str]]
    server: str | None = None

    def __init__(self, name: str, args: HetznerLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:HetznerLoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.balancer = hcloud.LoadBalancer(
            f"{name}-lb", name=f"{args.service}-lb", load_balancer_type=args.settings.type, location=args.location,
            algorithm=hcloud.LoadBalancerAlgorithmArgs(type="round_robin"),
            labels={"quayside-service": args.service}, opts=child,
        )  # fmt: skip
        balancer_id = self.balancer.id.apply(int)
        attached = hcloud.LoadBalancerNetwork(
            f"{name}-network", load_balancer_id=balancer_id, subnet_id=args.network.subnet.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.network.subnet]),
        )  # fmt: skip
        for server, machine in args.servers.items():
            hcloud.LoadBalancerTarget(
                f"{name}-target-{server}", type="server", load_balancer_id=balancer_id,
                server_id=machine.id.apply(int), use_private_ip=True,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[attached]),
            )  # fmt: skip
        hosts = [host for role in args.roles.values() for host in role.hosts]
        first = args.roles[min(args.roles)]
        http: hcloud.LoadBalancerServiceHttpArgs | None = None
        if args.proxy.ssl:
            self.certificate = certificate = hcloud.ManagedCertificate(
                f"{name}-certificate", name=f"{args.service}-lb", domain_names=hosts,
                labels={"quayside-service": args.service}, opts=child,
            )  # fmt: skip
            http = hcloud.LoadBalancerServiceHttpArgs(
                certificates=[certificate.id.apply(int)], redirect_http=args.proxy.ssl_redirect
            )
        self.service = hcloud.LoadBalancerService(
            f"{name}-service", load_balancer_id=self.balancer.id, protocol="https" if args.proxy.ssl else "http",
            listen_port=args.proxy.https_port if args.proxy.ssl else args.proxy.http_port,
            destination_port=args.target_port, health_check=health_check(first, args.target_port), http=http,
            opts=child,
        )  # fmt: skip
        self.host = self.balancer.ipv4
        reached = [f"{args.addresses[server]}:{args.target_port}" for server in args.servers]
        self.targets = {role: reached for role in args.roles}
        self.register_outputs({"host": self.host, "targets": self.targets})
