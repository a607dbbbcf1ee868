"""PrivateNetwork: the Hetzner network a service on several Hetzner servers shares, so that its servers reach each
other (a role's containers reach Postgres on another server) on private addresses only. Hetzner's firewalls filter
public interfaces alone: traffic on the network reaches every port of its servers, and nothing outside it does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components import config
from components.lazy import lazy_module

if TYPE_CHECKING:
    import pulumi_hcloud as hcloud
else:
    hcloud = lazy_module("pulumi_hcloud")


@dataclass
class PrivateNetworkArgs:
    service: str
    network: config.Network | None  # None: the defaults of config.Network


@dataclass(frozen=True)
class Attachment:
    """What a server needs to join the network: the subnet (it waits for it) and its address there."""

    network_id: pulumi.Output[int]
    subnet: hcloud.NetworkSubnet
    ip: str


class PrivateNetwork(pulumi.ComponentResource):
    """An hcloud Network with one cloud subnet; each server joins it at `address_of(its index)`."""

    network: hcloud.Network
    subnet: hcloud.NetworkSubnet

    def __init__(self, name: str, args: PrivateNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:PrivateNetwork", name, None, opts)
        self._settings = args.network or config.Network()
        child = pulumi.ResourceOptions(parent=self)
        self.network = hcloud.Network(
            f"{name}-net",
            name=f"{args.service}-private",
            ip_range=self._settings.ip_range,
            labels={"quayside-service": args.service},
            opts=child,
        )
        self.subnet = hcloud.NetworkSubnet(
            f"{name}-subnet",
            network_id=self.network.id.apply(int),
            type="cloud",
            network_zone=self._settings.zone,
            ip_range=self._settings.subnet,
            opts=child,
        )
        self.register_outputs({"ip_range": self._settings.ip_range, "subnet": self._settings.subnet})

    def attachment(self, ip: str) -> Attachment:
        return Attachment(self.network.id.apply(int), self.subnet, ip)
