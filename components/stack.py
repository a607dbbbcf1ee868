"""Wires the components in deploy order and returns the stack outputs (the contract other stacks read)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pulumi

from components import config, image_build, image_pin, image_transfer
from components.accessories.wiring import DeployedAccessories, SecretReader, deploy_accessories
from components.bootstrap import ServerBootstrap, ServerBootstrapArgs
from components.host import DockerHost, DockerHostArgs
from components.proxy import Proxy, ProxyArgs
from components.role import AppRole, AppRoleArgs
from components.server import ExistingServer, ExistingServerArgs, HetznerServer, HetznerServerArgs

# The accessories a stack may have, each a container `<service>-<name>` on the server.
ACCESSORIES: Final = ("postgres", "backup", "vector")


@dataclass
class Deployment:
    server: ExistingServer | HetznerServer
    bootstrap: ServerBootstrap | None
    host: DockerHost
    proxy: Proxy
    roles: dict[str, AppRole]
    accessories: DeployedAccessories
    service: str

    def outputs(self) -> dict[str, Any]:
        """The stack outputs: names and shapes are a contract other stacks read (StackReference)."""
        return {
            "server_host": self.server.host,
            "proxy_version": self.proxy.version,
            "roles": {
                name: {"urls": role.urls, "version": role.version, "image": role.image_ref}
                for name, role in self.roles.items()
            },
            **self.accessories.outputs(),
            # What the `quayside` command reads to reach the server as deploys do (none of it is secret).
            "service": self.service,
            "ssh": {
                "host": self.server.host,
                "port": self.server.port,
                "user": self.server.user,
                "host_key": self.server.host_key,
            },
            "accessories": [name for name in ACCESSORIES if getattr(self.accessories, name) is not None],
        }


def deploy(
    stack: config.StackConfig, secret: SecretReader, read_digest: image_pin.DigestReader | None = None
) -> Deployment:
    """`read_digest` pins each role's `repo:tag` to the digest it names now (None: images deploy as written);
    it runs first, so a registry that does not answer fails the run before any resource is declared. With
    registry: none, the local images' IDs are read first instead, so a missing one fails the run just as early."""
    local_images = image_transfer.local_image_ids(stack)
    pulled = {name: role for name, role in stack.roles.items() if name not in local_images}
    pins = image_pin.pin_roles(pulled, read_digest) if read_digest is not None else {}
    service = stack.service
    image_build.check_build_inputs(stack, image_build.project_dir())
    server: ExistingServer | HetznerServer
    if isinstance(stack.first_server, config.ExistingServer):
        server = ExistingServer(
            f"{service}-server",
            ExistingServerArgs(
                server=stack.first_server,
                private_key=_private_key(stack.first_server, secret),
                host_key=_host_key(stack.first_server),
            ),
        )
    else:
        server = HetznerServer(
            f"{service}-server",
            HetznerServerArgs(service=service, server=stack.first_server, private_key=secret("ssh_private_key")),
        )
    bootstrap = _bootstrap(service, stack.first_server, server)
    registry_password = secret("registry_password") if "registry_password" in stack.secret_names() else None
    host = DockerHost(
        f"{service}-host",
        DockerHostArgs(
            service=service,
            connection=server.connection,
            install_docker=getattr(stack.first_server, "install_docker", True),
            registry=stack.pull_registry,
            registry_password=registry_password,
            after=[bootstrap.done] if bootstrap is not None else server.ready,
        ),
    )
    proxy = Proxy(
        f"{service}-proxy",
        ProxyArgs(service=service, connection=server.connection, proxy=stack.proxy, host_ready=host.ready),
    )
    accessories = deploy_accessories(service, stack.accessories, server.connection, host.ready, secret)
    # Every role boots after the database answers: any of them may run queries at start.
    host_steps: list[pulumi.Resource] = [host.ready, proxy.ready, *accessories.ready]
    if host.registry_login is not None:
        host_steps.append(host.registry_login)

    roles: dict[str, AppRole] = {}
    for name in deploy_order(stack):
        role = stack.roles[name]
        roles[name] = AppRole(
            f"{service}-{name}",
            AppRoleArgs(
                service=service,
                name=name,
                role=role,
                connection=server.connection,
                proxy=stack.proxy,
                secrets={key: _role_secret(key, secret, accessories) for key in role.env.secret},
                registry=stack.pull_registry,
                registry_password=registry_password,
                pinned_image=pins.get(name),
                depends_on=[*host_steps, *(roles[other].deployed for other in role.depends_on)],
                local_image_id=local_images.get(name),
                host_ready=host.ready,
            ),
        )

    return Deployment(server, bootstrap, host, proxy, roles, accessories, service)


def _bootstrap(
    service: str, settings: config.ExistingServer | config.HetznerServer, server: ExistingServer | HetznerServer
) -> ServerBootstrap | None:
    """Root's steps first, when the server has them (always for Hetzner, on request for an existing server)."""
    if settings.bootstrap is None or server.bootstrap_connection is None:
        return None
    return ServerBootstrap(
        f"{service}-bootstrap",
        ServerBootstrapArgs(
            service=service,
            connection=server.bootstrap_connection,
            deploy_user=settings.user,
            bootstrap=settings.bootstrap,
            install_docker=getattr(settings, "install_docker", True),
            after=server.ready,
        ),
    )


def _private_key(server: config.ExistingServer, secret: SecretReader) -> pulumi.Output[str]:
    """The `ssh_private_key` secret, or the key file the stack names (read here, kept secret from here on)."""
    if server.private_key_file is None:
        return secret("ssh_private_key")
    text = _read_named_file("server.private_key_file", server.private_key_file, "set the ssh_private_key secret")
    return pulumi.Output.secret(text)


def _host_key(server: config.ExistingServer) -> str | None:
    """The host key connections must see, or None when the stack trusts the first one the server presents."""
    if server.host_key_file is not None:
        text = _read_named_file("server.host_key_file", server.host_key_file, "give server.host_key")
        if re.fullmatch(config.HOST_KEY_PATTERN, text.strip()) is None:
            raise config.ConfigError(
                f"quayside config: server.host_key_file: {server.host_key_file} holds no SSH public key line "
                "(ssh-ed25519 AAAA...)"
            )
        return config.public_key(text)
    return config.public_key(server.host_key) if server.host_key is not None else None


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
