"""The `server` section of the stack config: an existing SSH host, or a Hetzner Cloud server made for the stack."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from components import defaults
from components.config.types import HostKey, Model, Network, Port, SshPublicKey, UserName

HETZNER_LOCATIONS = Literal["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]
# Hetzner Cloud's server types (shared Intel and AMD, Arm, dedicated vCPU), as its API lists them: a typo stops
# the preview here instead of failing at Hetzner halfway through an `up`. A new type Hetzner adds goes here.
HETZNER_SERVER_TYPES = Literal[
    "cx22", "cx32", "cx42", "cx52", "cx23", "cx33", "cx43", "cx53",
    "cpx11", "cpx21", "cpx31", "cpx41", "cpx51", "cpx12", "cpx22", "cpx32", "cpx42", "cpx52", "cpx62",
    "cax11", "cax21", "cax31", "cax41",
    "ccx13", "ccx23", "ccx33", "ccx43", "ccx53", "ccx63",
]  # fmt: skip


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
    host: str = Field(min_length=1, description="address or name the deploy connects to over SSH")
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
    ssh_from: list[Network] = Field(
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

    @field_validator("ssh_from")
    @classmethod
    def _networks_are_networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            try:
                ipaddress.ip_network(network)
            except ValueError:
                try:
                    # An address inside the network (host bits set): name the network it meant.
                    meant = ipaddress.ip_network(network, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{network!r} is not a network like 203.0.113.0/24 (address/prefix length)"
                    ) from None
                raise ValueError(f"{network!r} has host bits set: the network is {meant}") from None
        return networks


Server = Annotated[ExistingServer | HetznerServer, Field(discriminator="provider")]
