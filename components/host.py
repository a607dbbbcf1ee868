"""DockerHost: the server made ready for containers: scripts shipped, Docker present, the service network."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_command import remote

from components import config, steps
from components import remote as commands


@dataclass
class DockerHostArgs:
    service: str
    connection: remote.ConnectionArgs
    stack_id: pulumi.Input[str]  # the stack's identity (stack.py): which stack deployed the service on the server
    install_docker: bool = True
    registry: config.Registry | None = None
    registry_password: pulumi.Input[str] | None = None
    # Steps of the server that come first (a volume mounted where the scripts go).
    after: list[pulumi.Resource] = field(default_factory=list)


class DockerHost(pulumi.ComponentResource):
    """`ready` is the step later commands depend on (depending on the component itself may not wait:
    pulumi/pulumi#8721)."""

    ready: remote.Command
    registry_login: remote.Command | None

    def __init__(self, name: str, args: DockerHostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:DockerHost", name, None, opts)
        self._args = args
        scripts = self._install_scripts(name)
        self.ready = self._prepare_host(name, scripts)
        self.registry_login = self._log_in_to_registry(name) if args.registry_password is not None else None
        self.register_outputs({"scripts": scripts.id, "ready": self.ready.stdout})

    def _command(
        self,
        name: str,
        create: pulumi.Input[str],
        *,
        delete: str | None = None,
        stdin: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> remote.Command:
        return remote.Command(
            name,
            connection=self._args.connection,
            create=create,
            delete=delete,
            stdin=stdin,
            add_previous_output_in_env=False,
            opts=opts or pulumi.ResourceOptions(parent=self),
        )

    def _install_scripts(self, name: str) -> remote.Command:
        # The archive on stdin: a change to a script is an update that ships it again.
        service = self._args.service
        return self._command(
            f"{name}-scripts",
            commands.install_scripts(service),
            delete=commands.remove_scripts(service),  # last of all: every other delete runs a script
            stdin=commands.scripts_archive(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._args.after),
        )

    def _prepare_host(self, name: str, scripts: remote.Command) -> remote.Command:
        service = self._args.service
        create = pulumi.Output.from_input(self._args.stack_id).apply(
            lambda stack_id: commands.script(
                service, steps.HOST.name,
                steps.HOST.argv(
                    service=service, no_install_docker=not self._args.install_docker, stack_id=stack_id.strip()
                ),
                timeout_seconds=900,
            )
        )  # fmt: skip
        delete = commands.script(
            service, steps.HOST_REMOVE.name, steps.HOST_REMOVE.argv(service=service), timeout_seconds=600
        )
        return self._command(
            f"{name}-docker", create, delete=delete, opts=pulumi.ResourceOptions(parent=self, depends_on=[scripts])
        )

    def _log_in_to_registry(self, name: str) -> remote.Command:
        registry = self._args.registry
        assert registry is not None and registry.username is not None
        args = steps.REGISTRY_LOGIN.argv(server=registry.server, username=registry.username)
        create = commands.script(self._args.service, steps.REGISTRY_LOGIN.name, args, timeout_seconds=120)
        return self._command(
            f"{name}-registry-login",
            create,
            stdin=self._args.registry_password,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ready], additional_secret_outputs=["stdin"]),
        )
