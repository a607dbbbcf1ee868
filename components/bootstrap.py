"""ServerBootstrap: root's steps on a server before any deploy (bootstrap.sh), so that deploys can run as a
non-root user in the docker group. The same steps serve a new Hetzner server and an existing one."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_command import remote

from components import config, steps
from components import remote as commands


def bootstrap_args(
    service: str, deploy_user: str, bootstrap: config.Bootstrap, *, install_docker: bool = True
) -> list[str]:
    return steps.BOOTSTRAP.argv(
        service=service,
        deploy_user=deploy_user,
        swap_mb=bootstrap.swap_mb,
        no_unattended_upgrades=not bootstrap.unattended_upgrades,
        no_install_docker=not install_docker,
    )


@dataclass
class ServerBootstrapArgs:
    service: str
    connection: remote.ConnectionArgs  # as root
    deploy_user: str
    bootstrap: config.Bootstrap
    install_docker: bool = True
    # The server's steps that come first (a volume mounted where the scripts go, which bootstrap.sh then hands
    # to the deploy user).
    after: list[pulumi.Resource] = field(default_factory=list)


class ServerBootstrap(pulumi.ComponentResource):
    """`done` is the step DockerHost waits for. Nothing is undone on delete: the server keeps its user, swap
    and Docker."""

    done: remote.Command

    def __init__(self, name: str, args: ServerBootstrapArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("quayside:index:ServerBootstrap", name, None, opts)
        self._args = args
        service = args.service
        # Root ships the scripts where DockerHost ships them; bootstrap.sh hands the directory to the deploy user.
        scripts = remote.Command(
            f"{name}-scripts",
            connection=args.connection,
            create=commands.install_scripts(service),
            stdin=commands.scripts_archive(),
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.after),
        )
        arguments = bootstrap_args(service, args.deploy_user, args.bootstrap, install_docker=args.install_docker)
        self.done = remote.Command(
            f"{name}-run",
            connection=args.connection,
            create=commands.script(service, steps.BOOTSTRAP.name, arguments, timeout_seconds=1200),
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[scripts]),
        )
        self.register_outputs({"done": self.done.stdout})
