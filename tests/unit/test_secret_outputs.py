"""What a deploy keeps secret in Pulumi's state: the steps that get an env file and may print what an app prints
(a crash log, a migration's output, an env value) hold their stdout and stderr as secrets, as their stdin."""

from __future__ import annotations

import pulumi

from components import config, stack
from components.config import examples
from tests.support.mocks import RecordingMonitor

PRINTS_APP_OUTPUT = ("-swap", "-migrate", "-rollout")
STREAMS = {"stdin", "stdout", "stderr"}


def one_server() -> config.StackConfig:
    """The SaaS example, its built role pulled instead, on an existing server bootstrapped by quayside."""
    raw = examples.saas()
    raw["roles"]["backend"]["image"] = "ghcr.io/acme/backend:2026.11.1"
    raw["server"]["bootstrap"] = {}
    return config.parse(raw, secrets_set=set(SECRETS))


def several_servers() -> config.StackConfig:
    raw = examples.saas()
    raw["servers"] = {
        name: {
            "provider": "existing",
            "host": f"10.0.1.{number}",
            "private_ip": f"10.0.1.{number}",
            "host_key": examples.HOST_KEY,
        }
        for number, name in enumerate(["app-1", "app-2"], 10)
    }
    del raw["server"]
    raw["accessories"]["postgres"]["server"] = "app-2"
    raw["roles"]["backend"]["image"] = "ghcr.io/acme/backend:2026.11.1"
    return config.parse(raw, secrets_set=set(SECRETS))


SECRETS = {
    name: f"{name}-value"
    for name in ("ssh_private_key", "registry_password", "postgres_password", "backup_passphrase",
                 "s3_access_key_id", "s3_secret_access_key", "betterstack_token")
}  # fmt: skip


def secret(name: str) -> pulumi.Output[str]:
    return pulumi.Output.secret(SECRETS[name])


def printed_output_kept_secret(program: config.StackConfig, monitor: RecordingMonitor) -> dict[str, bool]:
    """Each command the program registers: whether its stdout and stderr are secret outputs (with its stdin)."""

    @pulumi.runtime.test
    def deploy() -> None:
        stack.deploy(program, secret)

    deploy()
    return {
        name: set(outputs) >= STREAMS
        for name, outputs in monitor.secret_outputs.items()
        if monitor.types[name] in ("command:remote:Command", "command:local:Command")
    }


def test_swaps_migrations_and_accessory_boots_keep_what_they_printed_secret(mock_monitor: RecordingMonitor) -> None:
    secret_output = printed_output_kept_secret(one_server(), mock_monitor)

    assert {name for name, kept in secret_output.items() if kept} == {
        "acme-web-swap", "acme-backend-migrate", "acme-backend-swap", "acme-api-swap", "acme-worker-swap",
        "acme-postgres-container", "acme-backup-container", "acme-vector-container",
    }  # fmt: skip
    # What prints no app output and no env stays readable: the server's set-up, the proxy, the registry login.
    assert {name for name, kept in secret_output.items() if not kept} == {
        "acme-bootstrap-scripts", "acme-bootstrap-run", "acme-host-scripts", "acme-host-docker",
        "acme-host-registry-login", "acme-proxy-container", "acme-backup-image", "quayside-stack-id",
    }  # fmt: skip


def test_on_several_servers_each_rollout_keeps_what_the_swaps_printed_secret(mock_monitor: RecordingMonitor) -> None:
    secret_output = printed_output_kept_secret(several_servers(), mock_monitor)

    assert {name for name, kept in secret_output.items() if kept} == {
        "acme-web-rollout", "acme-backend-migrate", "acme-backend-rollout", "acme-api-rollout", "acme-worker-rollout",
        "acme-postgres-container", "acme-backup-container", "acme-vector-container", "acme-vector-app-2-container",
    }  # fmt: skip
