"""The `server` and `servers` sections of the stack config: an existing SSH host, or a Hetzner Cloud server made for
the stack; several of them by name, and the private `network` Hetzner servers share."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Annotated, Final, Literal, Self

from pydantic import Field, field_validator, model_validator

from components import defaults
from components.config.types import (
    Cidr,
    HostKey,
    Ipv4Cidr,
    Model,
    Port,
    ServerHost,
    SshPublicKey,
    UserName,
    public_key,
)

HETZNER_LOCATIONS = Literal["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]
HETZNER_NETWORK_ZONES = Literal["eu-central", "us-east", "us-west", "ap-southeast"]
# The network zone of each location: a Hetzner network spans the locations of one zone.
HETZNER_ZONE_OF: Final[Mapping[str, str]] = {
    "fsn1": "eu-central", "nbg1": "eu-central", "hel1": "eu-central", "ash": "us-east", "hil": "us-west",
    "sin": "ap-southeast",
}  # fmt: skip
# Hetzner Cloud's server types (shared Intel and AMD, Arm, dedicated vCPU), as its API lists them: a typo stops
# the preview here instead of failing at Hetzner halfway through an `up`. A new type Hetzner adds goes here.
HETZNER_SERVER_TYPES = Literal[
    "cx22", "cx32", "cx42", "cx52", "cx23", "cx33", "cx43", "cx53",
    "cpx11", "cpx21", "cpx31", "cpx41", "cpx51", "cpx12", "cpx22", "cpx32", "cpx42", "cpx52", "cpx62",
    "cax11", "cax21", "cax31", "cax41",
    "ccx13", "ccx23", "ccx33", "ccx43", "ccx53", "ccx63",
]  # fmt: skip


def ip_network(text: str, like: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network `text` names; else an error that says what it is not, or which network it meant."""
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        try:
            # An address inside the network (host bits set): name the network it meant.
            meant = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not a network like {like} (address/prefix length)") from None
        raise ValueError(f"{text!r} has host bits set: the network is {meant}") from None


class Bootstrap(Model):
    """Each step checks first: run again (when a setting changes), they change only what differs."""

    swap_mb: int = Field(
        default=defaults.SWAP_MB,
        ge=0,
        le=65536,
        description="size of /swapfile in MiB when the server has no swap; 0: none",
    )
    unattended_upgrades: bool = Field(
        default=True, description="install unattended-upgrades: Debian's security updates, daily"
    )


class ExistingServer(Model):
    provider: Literal["existing"] = Field(description="existing: any SSH host, Docker installed when missing")
    host: ServerHost = Field(description="address or name the deploy connects to over SSH")
    port: Port = Field(default=defaults.SSH_PORT, description="SSH port")
    user: UserName = Field(
        default=defaults.SSH_USER,
        description="SSH user (root, or one in the docker group)",
    )
    install_docker: bool = Field(default=True, description="install Debian's docker.io when Docker is missing")
    bootstrap: Bootstrap | None = Field(
        default=None,
        description="prepare the server first, as root with the same key: Docker, a swap file, `user` made a "
        "member of the docker group with root's SSH keys, password SSH off, unattended security upgrades",
    )
    private_key_file: str | None = Field(
        default=None,
        min_length=1,
        description="the SSH private key as a file on the deploying machine (~ expanded), instead of the "
        "ssh_private_key secret; it is kept secret in state",
    )
    host_key: HostKey | None = Field(
        default=None,
        description="the server's SSH host key, as `ssh-keyscan -t ed25519 <host>` prints it: deploys ask the "
        "server for a key of this type only, and refuse any other key",
    )
    host_key_file: str | None = Field(
        default=None, min_length=1, description="the host key as a file on the deploying machine, instead of host_key"
    )
    trust_first_use: bool = Field(
        default=False,
        description="instead of a host key: pin the key the server presents at the first deploy (ssh-keyscan)",
    )
    private_ip: str | None = Field(
        default=None,
        description="its address on the private network between the service's servers (an IPv4 or IPv6 address, "
        "never a public one): the others reach its accessories there; required in `servers` with two or more",
    )

    @property
    def ssh_port(self) -> int:
        return self.port

    @field_validator("private_ip")
    @classmethod
    def _private_ip_is_private(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 or IPv6 address like 10.0.1.5") from None
        if address.is_global or address.is_loopback or address.is_unspecified or address.is_multicast:
            raise ValueError(
                f"{value} is not a private address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fd00::/8): the "
                "servers' traffic to each other (Postgres's) never goes to a public one"
            )
        return value

    @model_validator(mode="after")
    def _host_key_given_once(self) -> Self:
        given = [key for key in ("host_key", "host_key_file", "trust_first_use") if getattr(self, key)]
        if not given:
            raise ValueError(
                "host_key: required: the server's SSH host key, e.g. the line `ssh-keyscan -t ed25519 "
                f"{self.host}` prints (or host_key_file, or trust_first_use: true to pin the key it presents first)"
            )
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)}: give the host key one way only")
        return self


class HetznerVolume(Model):
    """Formatted (ext4) by Hetzner when it is made, never again; its mount never hides files already there."""

    size_gb: int = Field(
        ge=defaults.HETZNER_VOLUME_MIN_GB,
        le=defaults.HETZNER_VOLUME_MAX_GB,
        description=f"size in GB ({defaults.HETZNER_VOLUME_MIN_GB} to {defaults.HETZNER_VOLUME_MAX_GB}, as Hetzner "
        "allows); it can grow later (the file system grows with it), never shrink",
    )
    delete_protection: bool = Field(default=True, description="refuse to delete the volume (and the data on it)")


class HetznerServer(Model):
    provider: Literal["hetzner"] = Field(description="hetzner: a Hetzner Cloud server made by pulumi-hcloud")
    type: HETZNER_SERVER_TYPES = Field(default="cx22", description="server type, e.g. cx32")
    location: Literal[HETZNER_LOCATIONS] = Field(default="nbg1", description="the Hetzner Cloud location")
    image: str = Field(default="debian-12", description="operating system image")
    ssh_public_key: SshPublicKey = Field(description="public half of ssh_private_key, installed for root")
    # Replacing the server loses everything on it: Hetzner refuses to delete it unless this is false.
    delete_protection: bool = Field(default=True, description="refuse to delete or rebuild the server")
    ssh_from: list[Cidr] = Field(
        default_factory=lambda: list(defaults.ANYWHERE),
        min_length=1,
        description="the networks SSH (port 22) is open to, as CIDRs; HTTP, HTTPS and ICMP are open to all",
    )
    user: UserName = Field(
        default=defaults.DEPLOY_USER,
        description="the user deploys connect as after the bootstrap (root's keys, in the docker group)",
    )
    bootstrap: Bootstrap = Field(
        default_factory=Bootstrap, description="the bootstrap, which runs as root before the first deploy"
    )
    primary_ipv4: bool = Field(
        default=False,
        description="a primary IPv4 of its own, kept when the server goes (and protected as the server is): a "
        "replaced server keeps the address, and DNS stays right",
    )
    volume: HetznerVolume | None = Field(
        default=None,
        description=f"a Hetzner volume mounted at {defaults.REMOTE_ROOT}/<service> (accessory data, logs, the "
        "audit log): it outlives the server, and a replaced server gets it back",
    )

    @property
    def ssh_port(self) -> int:
        """Hetzner's images' sshd listens on the standard port, and the firewall opens it."""
        return defaults.SSH_PORT

    @field_validator("ssh_from")
    @classmethod
    def _networks_are_networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            ip_network(network, like="203.0.113.0/24")
        return networks


Server = Annotated[ExistingServer | HetznerServer, Field(discriminator="provider")]


NETWORK_NEEDS: Final = "goes with hetzner servers in servers: (existing servers give their private_ip)"
# A server's private address in the network's subnet: the first ones are Hetzner's (its gateway is .1).
FIRST_SERVER_ADDRESS: Final = 10
# The IPv4 ranges a Hetzner network's ip_range may be in (RFC 1918).
PRIVATE_RANGES: Final = tuple(ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class Network(Model):
    """The private network of the Hetzner servers in `servers` (an hcloud Network and its subnet): each server joins
    it at the subnet's .10 + its place in `servers` (app-1 10.0.1.10, app-2 10.0.1.11...), and the others reach its
    accessories only there."""

    ip_range: Ipv4Cidr = Field(
        default="10.0.0.0/16",
        description="the network's IPv4 range, private (in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)",
    )
    subnet: Ipv4Cidr = Field(default="10.0.1.0/24", description="the servers' subnet, inside ip_range")
    zone: HETZNER_NETWORK_ZONES = Field(
        default="eu-central",
        description="the network zone, which every server's location must be in (fsn1, nbg1, hel1: eu-central; "
        "ash: us-east; hil: us-west; sin: ap-southeast)",
    )

    @field_validator("ip_range", "subnet")
    @classmethod
    def _private_ipv4_network(cls, value: str) -> str:
        network = ip_network(value, like="10.0.1.0/24")
        if not isinstance(network, ipaddress.IPv4Network) or not any(
            network.subnet_of(private) for private in PRIVATE_RANGES
        ):
            raise ValueError(f"{value} is not a private IPv4 network (in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)")
        return value

    @model_validator(mode="after")
    def _subnet_in_range(self) -> Self:
        if not self.subnet_network.subnet_of(ipaddress.IPv4Network(self.ip_range)):
            raise ValueError(f"subnet {self.subnet} is not inside ip_range {self.ip_range}")
        return self

    @property
    def subnet_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def room(self) -> int:
        """How many servers the subnet has addresses for (from .10 up to, not including, its broadcast)."""
        return max(0, self.subnet_network.num_addresses - FIRST_SERVER_ADDRESS - 1)

    def address_of(self, index: int) -> str:
        """The private address of the server at `index` in `servers` (0: the first): the subnet's .10 + index."""
        if not 0 <= index < self.room:
            raise ValueError(f"the subnet {self.subnet} has addresses for servers 0 to {self.room - 1}, not {index}")
        return str(self.subnet_network.network_address + FIRST_SERVER_ADDRESS + index)


def check_servers(servers: Mapping[str, ExistingServer | HetznerServer], network: Network | None) -> None:
    """The servers of `servers` fit together: all of one provider (no private network joins an existing server
    and a Hetzner one), each host and private address once, every existing one with a private_ip when there are
    several, the Hetzner ones in the network's zone and within its subnet's room."""
    by_provider: dict[str, str] = {}
    for name, server in servers.items():
        by_provider.setdefault(server.provider, name)
    if len(by_provider) > 1:
        raise ValueError(
            f"servers: {by_provider['existing']} is an existing server and {by_provider['hetzner']} a hetzner one: "
            "no private network joins them; give servers of one provider"
        )
    hosts: dict[tuple[str, int], str] = {}
    addresses: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
    for name, server in servers.items():
        if not isinstance(server, ExistingServer):
            continue
        if server.private_ip is None and len(servers) > 1:
            raise ValueError(
                f"servers.{name}.private_ip: required with two or more servers: the address the others reach it at "
                "on your private network"
            )
        if (other := hosts.setdefault((server.host, server.port), name)) != name:
            raise ValueError(f"servers.{name}.host: {server.host} port {server.port} is server {other} already")
        if server.private_ip is not None:
            address = ipaddress.ip_address(server.private_ip)
            if (other := addresses.setdefault(address, name)) != name:
                raise ValueError(f"servers.{name}.private_ip: {server.private_ip} is server {other}'s already")
    if network is not None:
        _check_network(servers, network)


def _check_network(servers: Mapping[str, ExistingServer | HetznerServer], network: Network) -> None:
    first_key: tuple[str, str] | None = None  # every Hetzner server's root gets the one ssh_private_key's half
    for name, server in servers.items():
        if not isinstance(server, HetznerServer):
            raise ValueError(f"network: {NETWORK_NEEDS}")
        first_key = first_key or (name, server.ssh_public_key)
        if public_key(server.ssh_public_key) != public_key(first_key[1]):
            raise ValueError(
                f"servers.{name}.ssh_public_key: differs from {first_key[0]}'s: every server gets the public half "
                "of the one ssh_private_key"
            )
        zone = HETZNER_ZONE_OF[server.location]
        if zone != network.zone:
            raise ValueError(
                f"servers.{name}.location: {server.location} is in network zone {zone}, not in network.zone "
                f"{network.zone}: a network spans one zone"
            )
    if len(servers) > network.room:
        raise ValueError(
            f"network.subnet: {network.subnet} has addresses for {network.room} servers (from .10); "
            f"servers has {len(servers)}"
        )
