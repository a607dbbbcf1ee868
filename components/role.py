"""AppRole: one role's image, its optional migration, and the health-checked swap of its container.

A new version updates the swap command in place: Pulumi runs swap.sh with it (boot beside the old,
kamal-proxy health-checks and switches; the old is stopped in the background and kept for rollback), and
nothing waits for a delete at the end of the update. Any other change re-runs swap.sh with the new options
on the same version; it boots a fresh container because the config hash differs. The command's delete
(retire.sh) runs when the role leaves the stack: it removes the role's route and containers.

On several servers the same swap runs on each server of the role, through one rollout (components/rollout.py):
in waves of `boot.limit` servers, all or none. Each server's placement command retires the role there when the
server leaves the role.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass, field
from typing import TypeVar, cast

import pulumi
from pulumi_command import local, remote

from components import config, defaults, image_build, rollout, steps
from components import remote as commands
from components.drift import DriftCheck
from components.image_transfer import ImageTransfer, ImageTransferArgs
from components.swap_command import certificate_path, lock_wait, swap_args, swap_timeout, version_of

CERTIFICATE_SECONDS = 120
T = TypeVar("T")


@dataclass
class AppRoleArgs:
    service: str
    name: str
    role: config.Role
    connection: remote.ConnectionArgs
    proxy: config.Proxy  # the proxy of the role's servers
    served_by: config.Proxy | None = None  # what the role's URLs reach, when not `proxy` (a load balancer's)
    secrets: dict[str, pulumi.Input[str]] = field(default_factory=dict)  # the role's env.secret values
    registry: config.Registry | None = None
    registry_password: pulumi.Input[str] | None = None
    pinned_image: str | None = None  # image.ref pinned to its digest (image_pin.pin_roles); None: as written
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    # registry: none: the ID of image.ref in the deploying machine's engine, sent to the server after `host_ready`.
    local_image_id: str | None = None
    host_ready: pulumi.Resource | None = None
    servers: list[str] = field(default_factory=list)  # the names of the role's servers (the stack's outputs)
    # With several servers: how to reach each server of the role (the first, `connection`, runs the migration),
    # and how many of them swap at once. Empty: the one server `connection` reaches, with a swap command of its own.
    placements: dict[str, remote.ConnectionArgs] = field(default_factory=dict)
    hosts_at_once: int = 1
    # ssl_certificate's two secrets: the certificate (with any intermediates) and its private key, in PEM.
    certificate: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None
    # What serves on the role's servers against what the stack recorded (components/drift.py); None: not checked.
    drift: DriftCheck | None = None


def retire_args(service: str, name: str, role: config.Role, version: str) -> list[str]:
    return steps.RETIRE.argv(
        service=service, role=name, version=version, proxy=role.proxy, proxy_name=defaults.PROXY_CONTAINER,
        lock_wait=lock_wait(role),
    )  # fmt: skip


def migrate_args(service: str, name: str, role: config.Role, image_ref: str, version: str) -> list[str]:
    assert role.migrate is not None
    env = [f"{key}={value}" for key, value in sorted(role.env.clear.items())]
    return steps.MIGRATE.argv(
        service=service, role=name, image=image_ref, version=version, env=env, command=role.migrate,
        lock_wait=lock_wait(role),
    )  # fmt: skip


def certificate_args(action: str, service: str, name: str, proxy: config.Proxy) -> list[str]:
    return steps.TLS_CERTIFICATE.argv(
        action, service=service, role=name, proxy_name=defaults.PROXY_CONTAINER, state_dir=proxy.state_dir,
        path=certificate_path(proxy, service, name),
    )  # fmt: skip


def pem_bundle(role: config.Role, certificate: str, key: str) -> str:
    """The one file the proxy reads a role's certificate and key from; refuses what is not PEM, naming the secret."""
    assert role.ssl_certificate is not None
    if "-----BEGIN CERTIFICATE-----" not in certificate:
        raise ValueError(
            f"secret {role.ssl_certificate.certificate_pem} holds no PEM certificate (-----BEGIN CERTIFICATE-----): "
            "set it from the certificate file"
        )
    if "PRIVATE KEY-----" not in key or "-----BEGIN CERTIFICATE-----" in key:
        raise ValueError(
            f"secret {role.ssl_certificate.private_key_pem} holds no PEM private key alone (-----BEGIN ... PRIVATE "
            "KEY-----): set it from the key file"
        )
    return f"{certificate.strip()}\n{key.strip()}\n"


def certificate_id(certificate: str) -> str:
    """Names a certificate in a swap's command line: the hash of its PEM text (public, like the certificate)."""
    return hashlib.sha256(certificate.strip().encode()).hexdigest()[:16]


def env_file(values: dict[str, str]) -> str:
    """KEY=VALUE lines, as docker --env-file reads them (one line each: a newline would split a value)."""
    for key, value in values.items():
        if "\n" in value:
            raise ValueError(f"secret {key} holds a newline; docker env files cannot carry one")
    return "".join(f"{key}={value}\n" for key, value in sorted(values.items()))


class AppRole(pulumi.ComponentResource):
    """`deployed` is the swap command (on several servers, the rollout): roles that depend on this one wait for it.
    On several servers, each server of the role has a placement, whose delete retires the role there, and one
    rollout (components/rollout.py, on the deploying machine) swaps them all, all or none."""

    deployed: remote.Command | local.Command
    migration: remote.Command | None
    placements: dict[str, remote.Command]
    certificates: list[remote.Command]
    transfer: ImageTransfer | None = None
    image_ref: pulumi.Output[str]
    version: pulumi.Output[str]
    heal: pulumi.Output[int]  # how many drifts of the role `up` has put right (components/drift.py)
    urls: list[str]
    servers: list[str]

    def __init__(self, name: str, args: AppRoleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:AppRole", name, None, opts)
        self._args = args
        self.image_ref = self._image(name)
        self.version = self.image_ref.apply(lambda ref: version_of(args.role, ref))
        self.urls = urls(args.role, args.served_by or args.proxy)
        self.heal = (
            args.drift.role_heal(args.name, args.servers, self.version)
            if args.drift is not None
            else pulumi.Output.from_input(0)
        )
        # Secret in, secret out: the env file inherits the secrecy of its values.
        stdin: pulumi.Output[str] = (
            pulumi.Output.all(**args.secrets).apply(env_file) if args.secrets else pulumi.Output.from_input("")
        )
        self.migration = self._migrate(name, stdin) if args.role.migrate else None
        self.servers = args.servers
        self.placements = {server: self._place(name, server, index) for index, server in enumerate(args.placements)}
        self.certificates = self._certificates(name)
        self._certificate_id: pulumi.Output[str | None] = (
            pulumi.Output.unsecret(pulumi.Output.from_input(args.certificate[0]).apply(certificate_id))
            if args.certificate is not None
            else pulumi.Output.from_input(None)
        )
        self.deployed = self._roll_out(name, stdin) if args.placements else self._swap(name, stdin)
        if args.role.canary is not None:
            # The plan shows a new image as a changed swap; this says what the swap will do with it.
            pulumi.log.info(
                f"{args.name}: a new version goes live as a canary for {args.role.canary.said()}; the version serving "
                "keeps everyone else until canary is removed (promote) or the image set back (abort)",
                resource=self,
            )
        if args.role.memory_short == "stop_first":
            pulumi.log.info(
                f"{args.name}: when a server has less memory available than a new version may take, the version "
                "serving stops before the new one boots (an outage of the role there, its requests held meanwhile)",
                resource=self,
            )
        self.register_outputs(
            {
                "urls": self.urls,
                "version": self.version,
                "image": self.image_ref,
                "servers": self.servers,
                "heals": self.heal,
            }
        )

    @property
    def canary(self) -> config.Canary | None:
        return self._args.role.canary

    def once_deployed(self, value: pulumi.Output[T]) -> pulumi.Output[T]:
        """`value` once the role's deploy succeeds. A deploy that fails resolves nothing, so the stack's outputs are
        not registered and keep those of the last `pulumi up` that succeeded: what the servers serve."""
        return pulumi.Output.all(self.deployed.id, value).apply(lambda settled: cast(T, settled[1]))

    def _image(self, name: str) -> pulumi.Output[str]:
        spec = self._args.role.image
        if self._args.local_image_id is not None:
            return pulumi.Output.from_input(self._send_image(name, self._args.local_image_id))
        if spec.ref is not None:
            return pulumi.Output.from_input(self._args.pinned_image or spec.ref)
        registry = self._args.registry
        assert registry is not None  # config: a build needs a registry
        build = image_build.RoleBuild(self._args.service, self._args.name, spec, registry, self._args.registry_password)
        return image_build.built_image(name, build, parent=self)

    def _send_image(self, name: str, image_id: str) -> str:
        a = self._args
        assert a.role.image.ref is not None
        self.transfer = ImageTransfer(
            f"{name}-image",
            ImageTransferArgs(
                service=a.service, ref=a.role.image.ref, image_id=image_id, connection=a.connection,
                depends_on=[a.host_ready] if a.host_ready is not None else a.depends_on,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )  # fmt: skip
        return self.transfer.image_ref

    def _image_sent(self) -> list[pulumi.Resource]:
        return [self.transfer.sent] if self.transfer is not None else []

    def _migrate(self, name: str, stdin: pulumi.Output[str]) -> remote.Command:
        a = self._args
        create = pulumi.Output.all(self.image_ref, self.version).apply(
            lambda rv: commands.script(
                a.service, steps.MIGRATE.name, migrate_args(a.service, a.name, a.role, rv[0], rv[1]),
                timeout_seconds=swap_timeout(a.role),
            )
        )  # fmt: skip
        return remote.Command(
            f"{name}-migrate",
            connection=a.connection,
            create=create,
            stdin=stdin,
            # Once per version: a new version replaces the command (create runs the migration); a change of env,
            # secrets or timeouts alone is an update, which only says so.
            update=self.version.apply(lambda v: shlex.join(["echo", f"the migration of {v} ran already"])),
            triggers=[self.version],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*a.depends_on, *self._image_sent()],
                additional_secret_outputs=commands.SECRET_STREAMS,
            ),
        )

    def _swap(self, name: str, stdin: pulumi.Output[str]) -> remote.Command:
        a = self._args
        timeout = swap_timeout(a.role)
        create = pulumi.Output.all(self.image_ref, self.version, self._certificate_id, self.heal).apply(
            lambda values: commands.script(
                a.service, steps.SWAP.name,
                swap_args(
                    a.service, a.name, a.role, values[0], values[1], proxy=a.proxy, certificate_id=values[2],
                    heal=values[3],
                ),
                timeout_seconds=timeout,
            )
        )  # fmt: skip
        delete = self.version.apply(
            lambda v: commands.script(
                a.service, steps.RETIRE.name, retire_args(a.service, a.name, a.role, v), timeout_seconds=timeout
            )
        )
        waits_for = [
            *a.depends_on, *self._image_sent(), *([self.migration] if self.migration else []), *self.certificates
        ]  # fmt: skip
        return remote.Command(
            f"{name}-swap",
            connection=a.connection,
            create=create,
            delete=delete,
            stdin=stdin,
            # Every change, a new version too, re-runs create: swap.sh stops what it replaced itself, so no delete
            # of an old command is left for the end of the update.
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=waits_for,
                additional_secret_outputs=commands.SECRET_STREAMS,
                # Older swaps hold `triggers: [version]` in state, a replace-on-change input: a replace would run
                # retire.sh, which removes the role. Their triggers are left as they are.
                ignore_changes=["triggers"],
                # A forced replace (`pulumi up --replace`) retires the role first, then boots it afresh: created
                # first, the new swap would find its version live, and the old one's delete would then remove it.
                delete_before_replace=True,
            ),
        )

    def _place(self, name: str, server: str, index: int) -> remote.Command:
        """The role on one of its servers: nothing to do on create; its delete (the server left the role, or the
        role the stack) retires the role there. The first server's keeps the one-server swap command's place."""
        a = self._args
        timeout = swap_timeout(a.role)
        alias = [pulumi.Alias(name=f"{name}-swap")] if index == 0 else []
        return remote.Command(
            f"{name}-on-{server}",
            connection=a.placements[server],
            create=shlex.join(["echo", f"{a.name} is placed on {server}"]),
            delete=self.version.apply(
                lambda v: commands.script(
                    a.service, steps.RETIRE.name, retire_args(a.service, a.name, a.role, v), timeout_seconds=timeout
                )
            ),
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=a.depends_on, aliases=alias),
        )

    def _certificates(self, name: str) -> list[remote.Command]:
        """The role's own certificate (ssl_certificate) in the proxy of each of its servers, before its swap."""
        a = self._args
        if a.certificate is None:
            return []
        bundle = pulumi.Output.all(*a.certificate).apply(lambda pem: pem_bundle(a.role, str(pem[0]), str(pem[1])))
        where = a.placements or {"": a.connection}
        return [
            remote.Command(
                f"{name}-certificate-on-{server}" if server else f"{name}-certificate",
                connection=connection,
                create=commands.script(
                    a.service, steps.TLS_CERTIFICATE.name, certificate_args("write", a.service, a.name, a.proxy),
                    timeout_seconds=CERTIFICATE_SECONDS,
                ),
                # The end of an update that drops the certificate, or the role: its swap no longer serves the file.
                delete=commands.script(
                    a.service, steps.TLS_CERTIFICATE.name, certificate_args("remove", a.service, a.name, a.proxy),
                    timeout_seconds=CERTIFICATE_SECONDS,
                ),
                stdin=bundle,  # the secrets' secrecy goes with it; and stdin is secret in state
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=a.depends_on, additional_secret_outputs=commands.SECRET_STREAMS
                ),
            )
            for server, connection in where.items()
        ]  # fmt: skip

    def _roll_out(self, name: str, stdin: pulumi.Output[str]) -> local.Command:
        """The rollout of a version (or of new options) to every server of the role, all or none."""
        a = self._args
        servers = list(a.placements.items())
        addresses = pulumi.Output.all(*(pulumi.Output.all(c.host, c.port, c.user) for _, c in servers))
        create = pulumi.Output.all(self.image_ref, self.version, addresses, self._certificate_id, self.heal).apply(
            lambda values: shlex.join(
                ["python3", os.path.relpath(rollout.__file__), *rollout.command_line(
                    a.service, a.name, limit=a.hosts_at_once, timeout_seconds=swap_timeout(a.role),
                    servers=[
                        rollout.Target(server, str(user or "root"), str(host), int(port or 22))
                        for (server, _), (host, port, user) in zip(servers, values[2], strict=True)
                    ],
                    swap_argv=swap_args(
                        a.service, a.name, a.role, values[0], values[1], proxy=a.proxy, certificate_id=values[3],
                        heal=values[4],
                    ),
                )]
            )
        )  # fmt: skip
        # Every quayside connection has a key and a host key (server.py).
        keys = pulumi.Output.all(*(pulumi.Output.all(c.private_key, c.host_key) for _, c in servers))
        secrets = pulumi.Output.all(stdin, keys).apply(
            lambda values: rollout.stdin_document(
                env_file=str(values[0]),
                private_keys={server: str(key[0]) for (server, _), key in zip(servers, values[1], strict=True)},
                host_keys={server: str(key[1]) for (server, _), key in zip(servers, values[1], strict=True)},
            )
        )
        # Not for the placements: they only say where the role is (a new version updates each, over SSH), and their
        # deletes come at the end of the update anyway.
        waits_for = [*a.depends_on, *([self.migration] if self.migration else []), *self.certificates]
        return local.Command(
            f"{name}-rollout",
            create=create,
            stdin=secrets,
            add_previous_output_in_env=False,
            # The keys and the env file, and what the swaps printed: secret in state.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=waits_for, additional_secret_outputs=commands.SECRET_STREAMS
            ),
        )


def urls(role: config.Role, proxy: config.Proxy) -> list[str]:
    if not role.proxy:
        return []
    scheme, port, default_port = ("https", proxy.https_port, 443) if proxy.ssl else ("http", proxy.http_port, 80)
    authority_port = "" if port == default_port else f":{port}"
    path = role.path_prefix or "/"
    return [f"{scheme}://{host}{authority_port}{path}" for host in role.hosts or [proxy.bind]]
