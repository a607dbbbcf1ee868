"""The `quayside` command's pure parts: argument parsing, the remote command lines it builds (whole, as the server
receives them), the known_hosts line, the details table, and the stack's errors."""

from __future__ import annotations

import argparse
import io
import json
import shlex
from pathlib import Path
from typing import Any, Final

import pytest

from components.ssh import Endpoint
from quayside_cli import progress
from quayside_cli.commands import backup, details, exec_, logs, maintenance
from quayside_cli.errors import QuaysideError
from quayside_cli.main import main, parse
from quayside_cli.ssh import Connection, script
from quayside_cli.stack import Stack, object_value, project_dir

SSH = Endpoint(host="203.0.113.7", port=2222, user="root", host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHFy")
OUTPUTS: dict[str, Any] = {
    "service": "acme",
    "ssh": {"host": SSH.host, "port": SSH.port, "user": SSH.user, "host_key": SSH.host_key},
    "roles": {
        "web": {"urls": ["https://acme.com/"], "version": "v2", "image": "ghcr.io/acme/web:v2"},
        "worker": {"urls": [], "version": "v2", "image": "ghcr.io/acme/worker:v2"},
    },
    "accessories": ["postgres", "backup"],
}


def stack_with(outputs: dict[str, Any]) -> Stack:
    return Stack("prod", Path("/srv/acme"), {}, _outputs=outputs)


# --- arguments ----------------------------------------------------------------------------------------------


def test_everything_after_the_first_double_dash_is_execs_command_even_after_options() -> None:
    args = parse(["-s", "prod", "exec", "web", "--reuse", "-it", "--", "sh", "-c", "echo --not-an-option"])

    assert (args.stack, args.verb, args.role) == ("prod", "exec", "web")
    assert (args.reuse, args.interactive, args.tty) == (True, True, True)
    assert args.command == ["sh", "-c", "echo --not-an-option"]


def test_a_verb_without_a_trailing_command_refuses_a_double_dash(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(["logs", "web", "--", "extra"])

    assert exited.value.code == 2
    assert "quayside logs takes nothing after --" in capsys.readouterr().err


def test_plan_passes_preview_options_after_the_double_dash() -> None:
    assert parse(["plan", "--", "--diff", "--refresh"]).preview_options == ["--diff", "--refresh"]


# --- remote command lines -----------------------------------------------------------------------------------


def test_logs_builds_one_quoted_logs_sh_line_with_only_the_options_given() -> None:
    args = argparse.Namespace(name="web", follow=True, since="10m", lines=None, grep="GET /up; rm -rf /")

    argv = logs.logs_args(stack_with(OUTPUTS), args)

    assert shlex.join(argv) == (
        "--service acme --role web --follow --since 10m --grep 'GET /up; rm -rf /' --proxy-name quayside-proxy"
    )
    assert logs.logs_args(stack_with(OUTPUTS), argparse.Namespace(name="postgres", follow=False, since=None,
                          lines=20, grep=None))[2:4] == ["--accessory", "postgres"]  # fmt: skip


def test_logs_of_an_unknown_name_lists_the_roles_and_accessories() -> None:
    with pytest.raises(QuaysideError) as failed:
        logs.target(stack_with(OUTPUTS), "nope")

    assert str(failed.value) == (
        "stack prod has no role or accessory nope; roles: web, worker; accessories: postgres, backup"
    )


def test_exec_puts_the_command_after_a_double_dash_and_tty_uses_timeout_foreground() -> None:
    argv = exec_.exec_args("acme", "web", ["rails", "console"], reuse=False, interactive=True, tty=True)
    command = script("acme", "exec.sh", argv, timeout_seconds=60, tty=True)

    assert command == (
        "timeout --foreground --kill-after=10s 60s bash /var/lib/quayside/acme/bin/exec.sh --service acme --role web "
        "--proxy-name quayside-proxy --interactive --tty -- rails console"
    )
    assert script("acme", "exec.sh", ["--", "true"], timeout_seconds=60).startswith("timeout --kill-after=10s 60s ")


def test_maintenance_of_every_role_means_the_roles_behind_the_proxy() -> None:
    stack = stack_with(OUTPUTS)

    assert maintenance.roles_of(stack, None) == ["web"]
    with pytest.raises(QuaysideError, match="role worker is not behind the proxy"):
        maintenance.roles_of(stack, "worker")
    assert maintenance.maintenance_args("on", "acme", "web", "Back at 12") == [
        "on", "--service", "acme", "--role", "web", "--message", "Back at 12", "--drain-timeout", "30s",
        "--proxy-name", "quayside-proxy",
    ]  # fmt: skip


def test_restore_with_another_passphrase_sends_it_on_stdin_never_on_the_command_line(tmp_path: Path) -> None:
    old = tmp_path / "old-passphrase"
    old.write_text("the passphrase of 2025\n")

    action, stdin = backup.restore_request("acme-20260101T030000Z.dump.gpg", old)

    assert stdin == "the passphrase of 2025\n"
    assert action == ["restore", "--backup", "acme-20260101T030000Z.dump.gpg", "--passphrase-stdin"]
    assert backup.restore_request("latest", None) == (["restore", "--backup", "latest"], None)
    with pytest.raises(QuaysideError, match=r"^--passphrase-file .*/missing: cannot read it \(No such file"):
        backup.restore_request("latest", tmp_path / "missing")


def test_restore_with_the_private_key_of_the_backups_sends_key_and_passphrase_on_stdin(tmp_path: Path) -> None:
    key = tmp_path / "backups.asc"
    key.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlFgEaxNh\n-----END PGP PRIVATE KEY BLOCK-----\n")
    passphrase = tmp_path / "key-passphrase"
    passphrase.write_text("the key's passphrase\n")

    action, stdin = backup.restore_request("latest", passphrase, key)

    assert action == ["restore", "--backup", "latest", "--passphrase-stdin", "--private-key-stdin"]
    assert stdin == key.read_text() + "the key's passphrase\n"
    assert backup.restore_request("latest", None, key)[1] == key.read_text()
    passphrase.write_text("not a key")
    with pytest.raises(QuaysideError, match=r"^--private-key-file .*: no ASCII-armored private key in it \(write one"):
        backup.restore_request("latest", None, passphrase)


def test_a_reading_s3_key_for_a_write_only_bucket_goes_first_on_stdin(tmp_path: Path) -> None:
    reading = tmp_path / "reading-key"
    reading.write_text("AKIAREADER\nreader/secret\n")

    action, stdin = backup.restore_request("latest", None, None, reading)

    assert action == ["restore", "--backup", "latest", "--s3-key-stdin"] and stdin == "AKIAREADER\nreader/secret\n"
    reading.write_text("AKIAREADER reader/secret\n")
    with pytest.raises(QuaysideError, match=r"^--s3-key-file .*: give the key's id on the first line and its secret"):
        backup.restore_request("latest", None, None, reading)


# --- details --------------------------------------------------------------------------------------------------

NEVER: Final = "0001-01-01T00:00:00Z"
MIB: Final = 2**20


def fact(
    role: str,
    accessory: str,
    version: str,
    state: str,
    health: str,
    hex_digit: str,
    stopped: str,
    memory: tuple[int, int | None] = (0, None),
) -> str:
    """One `container` line of details.sh: a 64-hex ID, a name as docker prints it (with its slash), and `memory`:
    the limit (0: none) and the use (None: not running) in bytes."""
    name = f"/acme-{role or accessory}" + (f"-{version}" if version else "")
    limit, used = memory
    cells = [role, accessory, version, state, health, hex_digit * 64, name, "2026-11-20", stopped, f"{name[6:]}:img",
             str(limit), "-" if used is None else str(used)]  # fmt: skip
    return "\t".join(["container", *cells])


DETAILS_OUTPUT = "\n".join([
    fact("web", "", "v2", "running", "-", "a", NEVER, (512 * MIB, 12 * MIB)),
    fact("web", "", "v1", "exited", "-", "b", "2026-11-25T10:00:05Z", (512 * MIB, None)),
    fact("web", "", "v0", "exited", "-", "c", "2026-11-24T10:00:05Z"),
    fact("worker", "", "v2", "running", "-", "d", NEVER, (0, 40 * MIB)),
    fact("", "postgres", "", "running", "healthy", "e", NEVER, (2**30, 768 * MIB)),
    "route\tacme-web\tacme.com\t/\taaaaaaaaaaaa:80\tstopped\tyes",
    f"memory\t{3 * 2**30 // 2}",
])  # fmt: skip


def test_details_shows_the_live_version_the_rollback_candidates_newest_first_and_maintenance() -> None:
    lines = details.render(stack_with(OUTPUTS), details.parse(DETAILS_OUTPUT))

    assert lines[0] == "stack prod: service acme on root@203.0.113.7:2222"
    assert lines[2:5] == [
        "ROLE    VERSION  CONTAINER                      STATE    HEALTH             ROLLBACK TO  URLS               "
        "MEMORY",
        "web     v2       acme-web-v2 (aaaaaaaaaaaa)     running  maintenance (503)  v1, v0       https://acme.com/  "
        "12 MiB of 512 MiB",
        "worker  v2       acme-worker-v2 (dddddddddddd)  running  running            -            -                  "
        "40 MiB, no limit",
    ]
    assert "acme-web  acme.com  /     aaaaaaaaaaaa:80  stopped  yes" in lines
    assert lines[-5:] == [
        "ACCESSORY  CONTAINER      STATE    HEALTH   IMAGE         MEMORY",
        "postgres   acme-postgres  running  healthy  postgres:img  768 MiB of 1.0 GiB",
        "backup     -              missing  -        -             -",
        "",
        "memory available on 203.0.113.7: 1.5 GiB",
    ]


def test_details_from_a_servers_scripts_of_before_memory_was_shown_shows_no_memory() -> None:
    old_lines = "\n".join("\t".join(line.split("\t")[:11]) for line in DETAILS_OUTPUT.splitlines()[:5])

    lines = details.render(stack_with(OUTPUTS), details.parse(old_lines))

    assert lines[3].endswith("https://acme.com/  -") and lines[-1] == "memory available on 203.0.113.7: -"


def test_details_shows_a_roles_canary_beside_the_version_serving_everyone_else() -> None:
    canary = "\n".join([fact("web", "", "v3", "running", "-", "f", NEVER), "canary\tweb\tv3\t10\tstaff-1,staff-2"])
    output = DETAILS_OUTPUT.replace("\tstopped\t", "\trunning\t") + "\n" + canary

    lines = details.render(stack_with(OUTPUTS), details.parse(output))

    assert lines[3].startswith("web     v2 (canary v3 for 10%, staff-1, staff-2)  acme-web-v2 (aaaaaaaaaaaa)")


def test_details_finds_the_live_container_by_the_fixed_address_the_route_targets() -> None:
    by_address = DETAILS_OUTPUT.replace("aaaaaaaaaaaa:80", "172.20.14.9:80") + "\naddress\taaaaaaaaaaaa\t172.20.14.9"

    lines = details.render(stack_with(OUTPUTS), details.parse(by_address))

    assert lines[3].startswith("web     v2       acme-web-v2 (aaaaaaaaaaaa)"), lines[3]
    assert "acme-web  acme.com  /     172.20.14.9:80  stopped  yes" in lines


def test_a_route_without_a_host_is_a_catch_all() -> None:
    assert details.parse_route(["acme-web", "/", "abc123abc123:80", "running", "no"]) == details.Route(
        "acme-web", "*", "/", "abc123abc123:80", "running", "no"
    )


# --- the stack ------------------------------------------------------------------------------------------------


def test_a_stack_without_outputs_says_it_was_never_deployed() -> None:
    stack = Stack("staging", Path("/srv/acme"), {})
    stack.pulumi = lambda *args, timeout=0: "{}"  # type: ignore[method-assign]

    with pytest.raises(QuaysideError) as failed:
        _ = stack.outputs

    assert str(failed.value) == "stack staging has never been deployed (it has no outputs): run `pulumi up -s staging`"


def test_a_stack_deployed_before_the_ssh_output_asks_for_one_up() -> None:
    stack = Stack("prod", Path("/srv/acme"), {})
    stack.pulumi = lambda *args, timeout=0: '{"server_host": "203.0.113.7"}'  # type: ignore[method-assign]

    with pytest.raises(QuaysideError, match=r"before quayside exported `service` and `ssh`: run `pulumi up -s prod`"):
        _ = stack.outputs


def test_the_key_file_the_stack_names_is_read_and_a_missing_key_says_how_to_set_one(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    stack = Stack("prod", tmp_path, {})
    config = json.dumps({"quayside:server": {"value": json.dumps({"private_key_file": str(key)}), "secret": False}})
    stack.pulumi = lambda *args, timeout=0: config  # type: ignore[method-assign]
    assert stack.private_key() == "-----BEGIN OPENSSH PRIVATE KEY-----\n"

    stack = Stack("prod", tmp_path, {})
    stack.pulumi = lambda *args, timeout=0: "{}"  # type: ignore[method-assign]
    with pytest.raises(QuaysideError, match=r"stack prod has no SSH key: set server\.private_key_file, or"):
        stack.private_key()


def test_a_config_object_comes_as_object_value_or_as_json_text() -> None:
    assert object_value({"objectValue": {"host": "a"}}) == {"host": "a"}
    assert object_value({"value": '{"host": "b"}'}) == {"host": "b"}
    assert object_value(None) == {}


def test_a_cwd_without_pulumi_yaml_is_named(tmp_path: Path) -> None:
    with pytest.raises(QuaysideError, match=f"--cwd {tmp_path} has no Pulumi.yaml"):
        project_dir(tmp_path)


def test_errors_are_one_line_on_stderr_with_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cwd", str(tmp_path), "details"]) == 1
    assert (
        capsys.readouterr().err
        == f"quayside: --cwd {tmp_path} has no Pulumi.yaml: give the quayside project's directory\n"
    )


def test_progress_is_one_plain_line_without_a_terminal() -> None:
    out = io.StringIO()
    with progress.step("backing up acme", out):
        pass
    assert out.getvalue() == "quayside: backing up acme ...\n"


def test_a_stack_on_no_backend_says_to_log_in() -> None:
    stack = Stack("prod", Path("/srv/acme"), {})

    message = stack._explain(("stack", "output"), "error: PULUMI_ACCESS_TOKEN must be set for login during ...")

    assert message.startswith("stack prod: no Pulumi backend is logged in: `pulumi login` (or set PULUMI_BACKEND_URL)")


def test_a_host_key_the_stack_does_not_pin_is_named_and_no_command_runs_past_it() -> None:
    connection = Connection(SSH, "key", "prod")
    refused = (
        "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nThe fingerprint for the ED25519 key sent by the "
        "remote host is\nSHA256:S6Jmn5bl7Cp9heY+nf1Gh6NR5Ik4GtixKj1Z30anwJo.\nHost key verification failed."
    )

    with pytest.raises(QuaysideError) as failed:
        connection._check_connection(255, refused)

    assert str(failed.value) == (
        "stack prod: cannot reach root@203.0.113.7:2222 over SSH (Host key verification failed.): the server shows "
        "another host key (ED25519 SHA256:S6Jmn5bl7Cp9heY+nf1Gh6NR5Ik4GtixKj1Z30anwJo) than the stack's "
        f"`ssh.host_key` output ({connection.endpoint.fingerprint}): check the server, then pulumi up"
    )
    connection._check_connection(3, "")  # the command's own failure is its exit code, not an error here
