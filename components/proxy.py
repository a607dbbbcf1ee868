"""Proxy: kamal-proxy on the server's HTTP/HTTPS ports, its routes kept on a named volume, its version pinned."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components import config, defaults, steps
from components import remote as commands


@dataclass
class ProxyArgs:
    service: str
    connection: remote.ConnectionArgs
    proxy: config.Proxy
    host_ready: remote.Command
    heal: pulumi.Input[int] = 0  # the drifts healed (components/drift.py)


def boot_args(service: str, proxy: config.Proxy, heal: int = 0) -> list[str]:
    return steps.PROXY.argv(
        "boot",
        image=proxy.image_ref,
        network=service,
        name=defaults.PROXY_CONTAINER,
        proxy_network=defaults.PROXY_NETWORK,
        http_port=proxy.http_port,
        https_port=proxy.https_port,
        bind=proxy.bind,
        state_volume=defaults.PROXY_STATE_VOLUME,
        state_dir=proxy.state_dir,
        heal=heal or None,
    )


def remove_args(service: str) -> list[str]:
    return steps.PROXY.argv(
        "remove", network=service, name=defaults.PROXY_CONTAINER, proxy_network=defaults.PROXY_NETWORK
    )


class Proxy(pulumi.ComponentResource):
    """One kamal-proxy per server, shared by the services on it; each service's network is joined to it, beside
    the proxy's own. A new version or port reboots it (brief downtime, as `kamal proxy reboot`) once every service
    on it asks for the same; routes survive on its volume."""

    ready: remote.Command
    version: str
    heal: pulumi.Output[int]  # once `ready` has run

    def __init__(self, name: str, args: ProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:Proxy", name, None, opts)
        self.version = args.proxy.version
        self.ready = remote.Command(
            f"{name}-container",
            connection=args.connection,
            create=pulumi.Output.from_input(args.heal).apply(
                lambda count: commands.script(
                    args.service, steps.PROXY.name, boot_args(args.service, args.proxy, count), timeout_seconds=600
                )
            ),
            delete=commands.script(args.service, steps.PROXY.name, remove_args(args.service), timeout_seconds=120),
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.host_ready]),
        )
        # Resolved once the proxy's step has run: an `up` that fails registers no outputs.
        self.heal = pulumi.Output.all(self.ready.id, args.heal).apply(lambda done: int(done[1]))
        self.register_outputs({"version": self.version, "image": args.proxy.image_ref})
