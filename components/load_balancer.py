"""LoadBalancer: the roles' routes on the load balancer's kamal-proxy (`load_balancer: {provider: kamal-proxy}`).

The balancer is a kamal-proxy like every server's, on a server of the stack that runs no role; each proxied role
gets a route there whose targets are the kamal-proxies of the role's servers, on their private addresses
(balancer.sh). A route is deployed after its role's rollout, so a server joins the targets only once the role
answers there; a server leaving the role leaves the targets in the same update, before its placement's delete
retires the role there (deletes come last).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_command import remote

from components import config, defaults, steps
from components import remote as commands

ROUTE_SECONDS = 300


@dataclass
class BalancedRole:
    role: config.Role
    targets: list[str]  # ADDRESS:PORT of the kamal-proxy of each of the role's servers
    deployed: pulumi.Resource  # the role's rollout: its route changes after it


@dataclass
class LoadBalancerArgs:
    service: str
    server: str  # its name in `servers`
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
    server: str

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:LoadBalancer", name, None, opts)
        self.server = args.server
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
