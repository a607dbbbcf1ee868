"""The `quayside` command on a stack of several servers (`servers:`): which servers each verb reaches, what it
prints from each, what it says of one that does not answer, and the rollback's all-or-none switch. The servers
are stand-ins that answer as ssh would (a result, or the error of a connection that failed); the stack's outputs
are as the program exports them (docs/outputs.md: `hosts`, `roles.<R>.servers`, `accessory_servers`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from components.ssh import Endpoint
from quayside_cli import rollback
from quayside_cli.commands import audit, backup, details, exec_, logs, maintenance
from quayside_cli.errors import QuaysideError
from quayside_cli.ssh import Connection
from quayside_cli.stack import Stack

KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHFy"
ADDRESSES: Final = {"app-1": "10.97.0.11", "app-2": "10.97.0.12", "db": "10.97.0.13"}
OUTPUTS: dict[str, Any] = {
    "service": "acme",
    "ssh": {"host": "10.97.0.11", "port": 22, "user": "root", "host_key": KEY},
    "hosts": {name: {"host": at, "port": 22, "user": "root", "host_key": KEY} for name, at in ADDRESSES.items()},
    "servers": {name: {"host": address, "private_ip": address} for name, address in ADDRESSES.items()},
    "roles": {
        "web": {"urls": ["https://acme.com/"], "version": "v2", "image": "ghcr.io/acme/web:v2",
                "servers": ["app-1", "app-2"]},
        "api": {"urls": [], "version": "v2", "image": "ghcr.io/acme/api:v2", "servers": ["app-2"]},
    },
    "accessories": ["postgres", "backup"],
    "accessory_servers": {"postgres": "db", "backup": "db"},
}  # fmt: skip
ONE_SERVER: dict[str, Any] = {
    "service": "acme",
    "ssh": {"host": "203.0.113.7", "port": 2222, "user": "root", "host_key": KEY},
    "roles": {"web": {"urls": ["https://acme.com/"], "version": "v2", "image": "ghcr.io/acme/web:v2"}},
    "accessories": ["postgres"],
}


def stack_with(outputs: dict[str, Any], config: dict[str, Any] | None = None) -> Stack:
    return Stack("prod", Path("/srv/acme"), {}, _outputs=outputs, _config=config)


class Server:
    """A server as a verb's connection sees it: each command answered by `answer`, or by failing to connect."""

    def __init__(self, name: str, answer: Callable[[str], subprocess.CompletedProcess[str]] | None) -> None:
        self.name, self.stack, self.answer = name, "prod", answer
        self.commands: list[str] = []

    def capture(
        self, command: str, *, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        if self.answer is None:
            raise QuaysideError(f"stack prod: cannot reach {self.name} ({ADDRESSES[self.name]}) over SSH (timed out)")
        return self.answer(command)

    def stream(
        self, command: str, each_line: Callable[[str], None], *, force_tty: bool = False
    ) -> subprocess.CompletedProcess[str]:
        done = self.capture(command)
        for line in done.stdout.splitlines():
            each_line(line)
        return subprocess.CompletedProcess(command, done.returncode, "", done.stderr)

    def attach(self, command: str, *, tty: bool, stdin: bool = False) -> int:
        self.commands.append(command)
        return 0


def says(stdout: str, returncode: int = 0, stderr: str = "") -> Callable[[str], subprocess.CompletedProcess[str]]:
    return lambda command: subprocess.CompletedProcess(command, returncode, stdout, stderr)


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Server]:
    """Every verb's connections go to these stand-ins (all answering nothing, until a test says otherwise); the
    stack is OUTPUTS'."""
    made = {name: Server(name, says("")) for name in ADDRESSES}

    @contextlib.contextmanager
    def connect_each(stack: Stack, names: Sequence[str]) -> Iterator[dict[str, Server]]:
        yield {name: made[name] for name in names}

    @contextlib.contextmanager
    def connect(stack: Stack, server: str | None = None) -> Iterator[Server]:
        yield made[server or next(iter(stack.servers))]

    for module in (details, logs, exec_, maintenance, audit, backup):
        monkeypatch.setattr(module, "open_stack", lambda args: stack_with(OUTPUTS), raising=False)
        monkeypatch.setattr(module, "connect_each", connect_each, raising=False)
        monkeypatch.setattr(module, "connect", connect, raising=False)
    return made


# --- the stack ------------------------------------------------------------------------------------------------


def test_a_one_server_stack_is_one_server_named_server_where_everything_runs() -> None:
    stack = stack_with(ONE_SERVER)

    assert stack.servers == {"server": Endpoint("203.0.113.7", 2222, "root", KEY)}
    assert (stack.several_servers, stack.role_servers("web"), stack.accessory_server("postgres")) == (
        False, ["server"], "server",
    )  # fmt: skip


def test_a_stack_of_several_servers_knows_each_servers_endpoint_and_where_each_role_and_accessory_runs() -> None:
    stack = stack_with(OUTPUTS)

    assert stack.several_servers
    assert list(stack.servers) == ["app-1", "app-2", "db"]
    assert stack.servers["app-2"] == Endpoint("10.97.0.12", 22, "root", KEY)
    assert (stack.role_servers("web"), stack.role_servers("api")) == (["app-1", "app-2"], ["app-2"])
    assert (stack.accessory_server("backup"), stack.accessory_server("vector")) == ("db", "app-1")


def test_host_picks_one_of_the_roles_servers_and_an_unknown_one_is_told_with_the_roles_servers() -> None:
    stack = stack_with(OUTPUTS)

    assert stack.chosen_server("web", stack.role_servers("web"), None) == "app-1"
    assert stack.chosen_server("web", stack.role_servers("web"), "app-2") == "app-2"
    with pytest.raises(QuaysideError) as failed:
        stack.chosen_server("web", stack.role_servers("web"), "db")
    assert str(failed.value) == "stack prod: role web has no server db; its servers: app-1, app-2"


def test_each_server_has_its_own_key_file_and_the_secret_key_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "app-1.key").write_text("KEY OF APP-1\n")
    servers = {"app-1": {"provider": "existing", "private_key_file": "app-1.key"}, "app-2": {"provider": "hetzner"}}
    config = {"quayside:servers": {"objectValue": servers}, "quayside:ssh_private_key": {"secret": True}}
    stack = Stack("prod", tmp_path, {}, _outputs=OUTPUTS, _config=config)
    asked: list[tuple[str, ...]] = []

    def pulumi(*args: str, timeout: float = 0, scoped: bool = True) -> str:
        asked.append(args)
        return "THE SECRET KEY\n"

    stack.pulumi = pulumi  # type: ignore[method-assign]

    assert stack.private_key("app-1") == "KEY OF APP-1\n"
    assert [stack.private_key("app-2"), stack.private_key("db")] == ["THE SECRET KEY\n"] * 2
    assert asked == [("config", "get", "quayside:ssh_private_key")]


def test_a_server_without_a_key_names_its_own_key_setting(tmp_path: Path) -> None:
    config = {"quayside:servers": {"objectValue": {"app-2": {"provider": "existing", "private_key_file": "gone"}}}}
    stack = Stack("prod", tmp_path, {}, _outputs=OUTPUTS, _config=config)

    with pytest.raises(QuaysideError, match=r"^stack prod: servers\.app-2\.private_key_file: cannot read .*/gone "):
        stack.private_key("app-2")
    with pytest.raises(QuaysideError, match=r"^stack prod has no SSH key: set servers\.db\.private_key_file, or "):
        stack.private_key("db")


def test_a_connection_that_fails_names_its_server_and_address() -> None:
    connection = Connection(Endpoint("10.97.0.12", 22, "root", KEY), "key", "prod", "app-2")

    with pytest.raises(QuaysideError) as failed:
        connection._check_connection(255, "ssh: connect to host 10.97.0.12 port 22: Connection timed out")

    assert str(failed.value).startswith(
        "stack prod: cannot reach app-2 (root@10.97.0.12:22) over SSH (ssh: connect to host 10.97.0.12 port 22: "
        "Connection timed out)"
    )


def test_a_streamed_command_hands_over_each_line_as_it_comes_and_returns_its_code_and_stderr() -> None:
    connection = Connection(Endpoint("10.97.0.12", 22, "root", KEY), "key", "prod", "app-2")
    connection.argv = lambda command, **options: ["sh", "-c", command]  # type: ignore[method-assign]
    seen: list[str] = []

    done = connection.stream("printf 'one\\ntwo\\r\\n'; echo 'went wrong' >&2; exit 3", seen.append)

    assert (seen, done.returncode, done.stderr) == (["one", "two"], 3, "went wrong\n")


def test_a_stream_still_running_when_its_connection_closes_is_ended() -> None:
    started, seen = threading.Event(), []
    answers: list[subprocess.CompletedProcess[str]] = []

    with Connection(Endpoint("10.97.0.12", 22, "root", KEY), "key", "prod", "app-2") as connection:
        connection.argv = lambda command, **options: ["sh", "-c", command]  # type: ignore[method-assign]

        def each_line(line: str) -> None:
            seen.append(line)
            started.set()

        follower = threading.Thread(
            target=lambda: answers.append(connection.stream("echo following; exec sleep 600", each_line))
        )
        follower.start()
        assert started.wait(timeout=30)
    follower.join(timeout=30)

    assert not follower.is_alive()
    assert (seen, answers[0].returncode) == (["following"], -signal.SIGTERM)


# --- details --------------------------------------------------------------------------------------------------

NEVER: Final = "0001-01-01T00:00:00Z"


def fact(role: str, accessory: str, version: str, state: str, hex_digit: str, stopped: str = NEVER) -> str:
    name = f"/acme-{role or accessory}" + (f"-{version}" if version else "")
    cells = [role, accessory, version, state, "-", hex_digit * 64, name, "2026-11-20", stopped, f"{name[6:]}:img"]
    return "\t".join(["container", *cells])


def test_details_shows_each_role_on_each_of_its_servers_and_a_silent_server_in_one_line(
    servers: dict[str, Server], capsys: pytest.CaptureFixture[str]
) -> None:
    servers["app-1"].answer = says("\n".join([
        fact("web", "", "v2", "running", "a"), fact("web", "", "v1", "exited", "b", "2026-11-25T10:00:05Z"),
        "route\tacme-web\tacme.com\t/\taaaaaaaaaaaa:80\trunning\tyes", f"memory\t{2 * 2**30}",
    ]))  # fmt: skip
    servers["app-2"].answer = None
    servers["db"].answer = says(fact("", "postgres", "", "running", "e"))

    code = details.run(argparse.Namespace())

    assert code == 1
    assert capsys.readouterr().out.splitlines() == [
        "stack prod: service acme on 3 servers: app-1 (root@10.97.0.11:22), app-2 (root@10.97.0.12:22), "
        "db (root@10.97.0.13:22)",
        "stack prod: cannot reach app-2 (10.97.0.12) over SSH (timed out)",
        "",
        "ROLE  SERVER  VERSION  CONTAINER                   STATE    HEALTH   ROLLBACK TO  URLS               MEMORY",
        "web   app-1   v2       acme-web-v2 (aaaaaaaaaaaa)  running  serving  v1           https://acme.com/  -",
        "",
        "ROUTE     SERVER  HOST      PATH  TARGET           STATE    TLS",
        "acme-web  app-1   acme.com  /     aaaaaaaaaaaa:80  running  yes",
        "",
        "ACCESSORY  SERVER  CONTAINER      STATE    HEALTH  IMAGE         MEMORY",
        "postgres   db      acme-postgres  running  -       postgres:img  -",
        "backup     db      -              missing  -       -             -",
        "",
        "memory available on app-1: 2.0 GiB, db: -",
    ]
    assert all(len(server.commands) == 1 for server in servers.values()), "details.sh runs once on each server"


def test_details_sh_failing_on_one_server_names_it_and_its_last_line(
    servers: dict[str, Server], capsys: pytest.CaptureFixture[str]
) -> None:
    servers["db"].answer = says("", 1, "details: docker is not running\n")

    assert details.run(argparse.Namespace()) == 1
    assert capsys.readouterr().out.splitlines()[1] == (
        "stack prod: details.sh failed on db (10.97.0.13): details: docker is not running"
    )


# --- logs -----------------------------------------------------------------------------------------------------


def logs_args(name: str, host: str | None = None, follow: bool = False) -> argparse.Namespace:
    return argparse.Namespace(name=name, host=host, follow=follow, since=None, lines=None, grep=None)


def test_logs_of_a_role_on_two_servers_come_in_a_block_per_server_each_line_after_its_name(
    servers: dict[str, Server], capsys: pytest.CaptureFixture[str]
) -> None:
    servers["app-1"].answer = says("app v2: listening on :80\nGET /up 200\n")
    servers["app-2"].answer = says("app v2: listening on :80\n", 1, "logs: the proxy routes nothing\n")

    code = logs.run(logs_args("web"))

    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == [
        "app-1 | app v2: listening on :80", "app-1 | GET /up 200", "app-2 | app v2: listening on :80",
    ]  # fmt: skip
    assert err.splitlines() == ["app-2 | logs: the proxy routes nothing"]
    assert "logs.sh --service acme --role web " in servers["app-1"].commands[0]


def test_logs_followed_on_two_servers_print_each_line_as_it_comes_after_its_servers_name(
    servers: dict[str, Server], capsys: pytest.CaptureFixture[str]
) -> None:
    servers["app-1"].answer = says("one\n")
    servers["app-2"].answer = says("two\n")

    assert logs.run(logs_args("web", follow=True)) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == ["app-1 | one", "app-2 | two"]
    assert all("--follow" in servers[name].commands[0] for name in ("app-1", "app-2"))


def test_logs_of_one_server_are_as_on_a_one_server_stack(servers: dict[str, Server]) -> None:
    assert logs.run(logs_args("web", host="app-2")) == 0
    assert logs.run(logs_args("postgres")) == 0

    assert [len(servers[name].commands) for name in ADDRESSES] == [0, 1, 1]
    assert "--accessory postgres" in servers["db"].commands[0]
    with pytest.raises(QuaysideError, match=r"^stack prod: role web has no server db; its servers: app-1, app-2$"):
        logs.run(logs_args("web", host="db"))


# --- exec, maintenance, audit, backup ---------------------------------------------------------------------------


def test_exec_runs_on_the_roles_first_server_or_the_one_host_names(servers: dict[str, Server]) -> None:
    def run(host: str | None) -> None:
        exec_.run(
            argparse.Namespace(role="web", host=host, command=["true"], reuse=False, interactive=False, tty=False)
        )

    run(None)
    run("app-2")

    assert [len(servers[name].commands) for name in ADDRESSES] == [1, 1, 0]
    assert "exec.sh --service acme --role web " in servers["app-2"].commands[0]


def test_maintenance_changes_the_role_on_each_of_its_servers_each_line_after_the_servers_name(
    servers: dict[str, Server], capsys: pytest.CaptureFixture[str]
) -> None:
    servers["app-1"].answer = says("maintenance: web: maintenance on, quayside-proxy answers 503\n")
    servers["app-2"].answer = None

    code = maintenance.run(argparse.Namespace(action="on", role=None, message=None))

    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == ["app-1 | web: maintenance on, quayside-proxy answers 503"]
    assert err.splitlines()[-1] == "quayside: stack prod: cannot reach app-2 (10.97.0.12) over SSH (timed out)"


def test_audit_merges_every_servers_log_newest_first_each_line_after_its_server(
    servers: dict[str, Server], capsys: pytest.CaptureFixture[str]
) -> None:
    servers["app-1"].answer = says("2026-11-25T10:00:09Z web v2 deploy ok\n2026-11-25T10:00:01Z web v1 deploy ok\n")
    servers["app-2"].answer = says("2026-11-25T10:00:05Z web v2 deploy ok\n")
    servers["db"].answer = says("2026-11-25T09:00:00Z postgres 15 boot ok\n")

    assert audit.run(argparse.Namespace(lines=3)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "app-1 | 2026-11-25T10:00:09Z web v2 deploy ok",
        "app-2 | 2026-11-25T10:00:05Z web v2 deploy ok",
        "app-1 | 2026-11-25T10:00:01Z web v1 deploy ok",
    ]


def test_backups_run_on_the_backup_accessorys_server(servers: dict[str, Server]) -> None:
    assert backup.run_backup(argparse.Namespace(action="list", s3_key_file=None)) == 0

    assert [len(servers[name].commands) for name in ADDRESSES] == [0, 0, 1]
    assert "backup.sh list --service acme" in servers["db"].commands[0]


# --- rollback -------------------------------------------------------------------------------------------------

TARGET: Final = rollback.Deployed("v1", "ghcr.io/acme/web:v1", None)


def rollback_stack(tmp_path: Path) -> Stack:
    for name in ADDRESSES:
        (tmp_path / f"{name}.key").write_text(f"KEY OF {name}\n")
    servers = {name: {"provider": "existing", "private_key_file": f"{name}.key"} for name in ADDRESSES}
    config = {
        "quayside:servers": {"objectValue": servers},
        "quayside:roles": {"objectValue": {"web": {"image": "ghcr.io/acme/web:v2", "health": {"path": "/up"}}}},
        "quayside:proxy": {"objectValue": {}},
    }
    return Stack("prod", tmp_path, {}, _outputs=OUTPUTS, _config=config)


def test_the_fast_switch_across_servers_is_one_rollout_of_the_retained_version_with_the_keys_on_stdin(
    tmp_path: Path,
) -> None:
    stack = rollback_stack(tmp_path)

    rollout = rollback.rollout_command(stack, "web", TARGET)

    assert rollout is not None
    swap = rollback.fast_switch_command(stack, "web", TARGET)
    assert swap is not None
    assert rollout.argv[:2] == [sys.executable, str(rollback.ROLLOUT)]
    assert rollout.argv[2:] == [
        "--service", "acme", "--role", "web", "--limit", "2", "--timeout", str(swap[1]), "--retained-only",
        "--server", "app-1=root@10.97.0.11:22", "--server", "app-2=root@10.97.0.12:22",
        "--", *shlex.split(swap[0])[5:],
    ]  # fmt: skip
    assert "--retained-only" in rollout.argv[rollout.argv.index("--") :]
    assert json.loads(rollout.stdin) == {
        "private_keys": {"app-1": "KEY OF app-1\n", "app-2": "KEY OF app-2\n"},
        "host_keys": {"app-1": KEY, "app-2": KEY},
        "env_file": "",
    }
    assert not [word for word in rollout.argv if "KEY OF" in word], "no key on the command line"


def fake_rollout(tmp_path: Path, body: str) -> Path:
    """A components/rollout.py stand-in: it records its arguments and stdin, then does what `body` says."""
    script = tmp_path / "rollout.py"
    script.write_text(
        "import json, pathlib, sys\n"
        f"pathlib.Path({str(tmp_path / 'called.json')!r}).write_text("
        "json.dumps({'argv': sys.argv[1:], 'stdin': json.load(sys.stdin)}))\n" + body
    )
    return script


def test_a_rollback_across_servers_switches_all_of_them_in_one_rollout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(rollback, "ROLLOUT", fake_rollout(tmp_path, "print('app-1: swap: web now v1')\n"))

    assert rollback.switch_fast(rollback_stack(tmp_path), "web", TARGET) == ""

    called = json.loads((tmp_path / "called.json").read_text())
    assert called["argv"][called["argv"].index("--retained-only") + 1 :][:4] == [
        "--server", "app-1=root@10.97.0.11:22", "--server", "app-2=root@10.97.0.12:22",
    ]  # fmt: skip
    assert set(called["stdin"]["private_keys"]) == {"app-1", "app-2"}
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "  app-1: swap: web now v1"
    assert out[1].startswith("rollback: web serves v1 on app-1, app-2 (")


def test_a_rollout_that_fails_on_one_server_is_no_fast_switch_and_says_why() -> None:
    failed = "rollout: web: no retained container of v1 on app-2 (10.97.0.12); app-1 went back to v2"
    done = subprocess.CompletedProcess(["rollout.py"], 1, "app-1: swap: web now v1\n", f"{failed}\n")

    assert rollback.told(done, "rollout.py") == failed
    assert rollback.told(subprocess.CompletedProcess(["rollout.py"], 2, "", ""), "rollout.py") == (
        "rollout.py exited with 2"
    )
