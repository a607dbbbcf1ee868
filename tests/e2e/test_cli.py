"""The `quayside` command against a stack of its own on the loopback server, deployed by `pulumi up` of quayside's
program through the real engine: the command reads the stack's outputs and config as a user's shell would (the
stack's backend in the environment, `--cwd` the project directory) and reaches the server over SSH as deploys do.

One service (web v1, then v2; Postgres with encrypted backups to moto's S3 on loopback) is deployed once for the
module and destroyed at the end. The rollback test changes what serves, and the public key test how backups are
made, so they run last. Two tests drive the
command through tmux as a person types: `logs -f` (then Ctrl-C) and `exec -it`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from quayside_cli.main import VERBS
from tests.integration.accessory_fixtures import running_s3_store
from tests.support.docker import docker, free_loopback_port
from tests.support.openpgp import key_pair, write_private
from tests.support.polling import wait_for
from tests.support.processes import ProcessWatch
from tests.support.pulumi_engine import PULUMI_HOME, ROOT, pulumi_cli
from tests.support.stacks import (
    STACK,
    DemoStack,
    changes,
    container_name,
    pinned_version,
    registry_image,
    registry_postgres,
    unique_service,
)
from tests.support.testbed import TestServer

QUAYSIDE: Final = ROOT / ".venv" / "bin" / "quayside"
BUCKET: Final = "cli-backups"
API_TOKEN: Final = "cli-token-5e0b7d21c4a9"  # a role secret: exec must see it, no command line may
VERB_NAMES: Final = ("details", "logs", "exec", "rollback", "maintenance", "backup", "restore", "plan", "audit")


@dataclass
class Deployed:
    demo: DemoStack
    env: dict[str, str]

    @property
    def service(self) -> str:
        return self.demo.service

    def quayside(self, *args: str, stack: str = STACK, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`quayside -s STACK --cwd <project> ARGS`, output captured (so not a terminal: plain text)."""
        argv = [str(QUAYSIDE), "-s", stack, "--cwd", str(self.demo.project.work_dir), *args]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def sql(self, statement: str) -> str:
        user = self.service.replace("-", "_")
        return docker(
            "exec", f"{self.service}-postgres", "psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-tA",
            "-U", user, "-d", user, "-c", statement,
        )  # fmt: skip


def command_env(demo: DemoStack) -> dict[str, str]:
    """A user's shell: the stack's backend and passphrase exported, the pinned pulumi on PATH."""
    env = {**os.environ, **demo.project.env(), "PULUMI_HOME": str(PULUMI_HOME)}
    env["PATH"] = f"{pulumi_cli().parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, test_server: TestServer) -> Iterator[Deployed]:
    with running_s3_store() as s3:
        s3.create_bucket(BUCKET)
        demo = DemoStack.create(tmp_path_factory.mktemp("cli"), test_server, unique_service("cli"))
        for role in ("backend", "api"):
            del demo.roles[role]
        demo.roles["web"]["env"] = {"secret": ["API_TOKEN"]}
        demo.config["quayside:accessories"] = {
            "postgres": {"image": registry_postgres(), "version": "15",
                         "publish": {"port": free_loopback_port()}},
            "backup": {"s3": {"bucket": BUCKET, "endpoint": s3.endpoint}, "host_network": True},
        }  # fmt: skip
        demo.secrets.update({
            "API_TOKEN": API_TOKEN, "postgres_password": "cli-pg-7d3f1a", "backup_passphrase": "cli backup phrase",
            "s3_access_key_id": "AKIAQUAYSIDECLI", "s3_secret_access_key": "cli/secret+key",
        })  # fmt: skip
        try:
            demo.up()
            demo.roles["web"]["image"] = registry_image("v2")
            demo.up()
            yield Deployed(demo, command_env(demo))
        finally:
            demo.destroy()
            subprocess.run(["rm", "-rf", str(demo.service_dir)], check=False)


def fetch(url_host: str) -> tuple[int, str]:
    """(status, whole body) of GET / on the loopback proxy for a host."""
    connection = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
    try:
        connection.request("GET", "/", headers={"Host": url_host})
        reply = connection.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        connection.close()


def row_of(output: str, first: str) -> list[str]:
    """The cells (split on 2+ spaces) of the table row starting with `first`."""
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{output}")


def test_every_verb_has_help_and_the_top_level_help_names_them_all() -> None:
    top = subprocess.run([str(QUAYSIDE), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert top.returncode == 0, top.stderr
    assert [verb for verb in VERB_NAMES if f"\n    {verb} " in top.stdout] == list(VERB_NAMES), top.stdout
    assert len(VERBS) == 8  # backup's module also gives restore
    for verb in VERB_NAMES:
        done = subprocess.run([str(QUAYSIDE), verb, "--help"], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: quayside {verb} "), done.stdout


# --- reading the stack and the server ---------------------------------------------------------------------


def test_details_shows_the_live_version_its_rollback_candidate_routes_and_accessories(deployed: Deployed) -> None:
    done = deployed.quayside("details")

    assert done.returncode == 0, done.stderr
    service = deployed.service
    web = row_of(done.stdout, "web")
    v1, v2 = pinned_version("v1"), pinned_version("v2")
    live = f"{container_name(service, 'web', 'v2')} ({web[2].split('(')[1][:-1]})"
    assert web[1:6] == [v2, live, "running", "serving", v1], web
    assert web[6] == f"http://web.{service}.localhost/"
    assert re.fullmatch(r"\d+ MiB, no limit", web[7]), web
    assert row_of(done.stdout, f"{service}-web")[1:3] == [f"web.{service}.localhost", "/"]
    assert row_of(done.stdout, "postgres")[1:4] == [f"{service}-postgres", "running", "healthy"]
    assert re.fullmatch(r"\d+ MiB(, no limit| of \d+ MiB)", row_of(done.stdout, "postgres")[5]), done.stdout
    assert re.fullmatch(r"memory available on 127\.0\.0\.1: \d+\.\d GiB", done.stdout.splitlines()[-1]), done.stdout
    assert row_of(done.stdout, "backup")[1:3] == [f"{service}-backup", "running"]
    assert done.stdout.splitlines()[0] == f"stack {STACK}: service {service} on root@127.0.0.1:2222"
    assert "quayside: reading stack e2e ..." in done.stderr  # progress, as plain text without a terminal


def test_logs_show_what_the_app_printed_filtered_and_limited(deployed: Deployed) -> None:
    everything = deployed.quayside("logs", "web")
    grepped = deployed.quayside("logs", "web", "--grep", "listening", "--since", "1h", "--lines", "5")
    postgres = deployed.quayside("logs", "postgres", "--lines", "50")

    assert everything.returncode == 0, everything.stderr
    assert "app v2: listening on :80" in everything.stdout
    assert grepped.returncode == 0, grepped.stderr
    assert [line for line in grepped.stdout.splitlines() if line] == [
        "app v2: listening on :80 (healthy: yes, ignore TERM: no)"
    ]
    assert postgres.returncode == 0 and "database system is ready to accept connections" in postgres.stdout


def test_exec_runs_in_a_one_off_container_with_the_role_env_and_returns_the_exit_code(deployed: Deployed) -> None:
    live = docker("ps", "--quiet", "--filter", f"name=^{container_name(deployed.service, 'web', 'v2')}$")
    script = 'echo "version=$VERSION port=$PORT"; printf %s "$API_TOKEN" | sha256sum; hostname; exit 7'

    with ProcessWatch() as processes:
        one_off = deployed.quayside("exec", "web", "--", "sh", "-c", script)
    inside = deployed.quayside("exec", "web", "--reuse", "--", "hostname")

    assert one_off.returncode == 7, one_off.stderr
    lines = one_off.stdout.splitlines()
    assert lines[0] == "version=v2 port=80"
    assert lines[1].split()[0] == hashlib.sha256(API_TOKEN.encode()).hexdigest()
    assert lines[2] != live, "without --reuse the command runs in a container of its own"
    assert inside.returncode == 0 and inside.stdout.strip() == live
    env_dir = deployed.demo.service_dir / "env"
    assert [path.name for path in env_dir.iterdir() if path.name.startswith(".exec-")] == []
    on_network = docker(
        "ps", "--all", "--filter", f"network={deployed.service}", "--format", '{{.Label "quayside.service"}}'
    )
    assert set(on_network.split()) == {deployed.service}, "a one-off container was left behind"
    assert any("exec.sh --service" in line for line in processes.seen), "the watch saw the exec run"
    assert [line for line in processes.seen if API_TOKEN in line] == [], "the secret was on a command line"


def test_a_wrong_role_and_a_stack_never_deployed_are_named_with_what_to_do(deployed: Deployed) -> None:
    deployed.demo.project.stack("never", deployed.demo.config)  # created, never deployed

    wrong_role = deployed.quayside("exec", "nope", "--", "true")
    wrong_name = deployed.quayside("logs", "nope")
    never = deployed.quayside("details", stack="never")

    assert wrong_role.returncode == 1
    assert wrong_role.stderr.splitlines()[-1] == "quayside: stack e2e has no role nope; its roles: web"
    assert wrong_name.stderr.splitlines()[-1] == (
        "quayside: stack e2e has no role or accessory nope; roles: web; accessories: postgres, backup"
    )
    assert never.returncode == 1
    assert never.stderr.splitlines()[-1] == (
        "quayside: stack never has never been deployed (it has no outputs): run `pulumi up -s never`"
    )


def test_audit_prints_the_server_log_newest_first(deployed: Deployed) -> None:
    done = deployed.quayside("audit")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    times = [line.split()[0] for line in lines]
    assert times == sorted(times, reverse=True) and len(lines) >= 2
    events = [" ".join(line.split()[1:4]) for line in lines]
    v1, v2 = pinned_version("v1"), pinned_version("v2")
    assert events.index(f"web {v2} deploy") < events.index(f"web {v1} deploy"), events


def test_plan_of_the_deployed_stack_says_nothing_changes(deployed: Deployed) -> None:
    deployed.demo.stack()  # writes the stack file as deployed

    done = deployed.quayside("plan")

    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"nothing changes: all \d+ resources stay as they are\n", done.stdout), done.stdout


# --- changing what serves ---------------------------------------------------------------------------------


def test_maintenance_answers_503_with_the_message_while_on_and_200_after(deployed: Deployed) -> None:
    host = f"web.{deployed.service}.localhost"

    on = deployed.quayside("maintenance", "on", "web", "--message", "Back at noon, sorry")
    during = fetch(host)
    details = deployed.quayside("details")
    off = deployed.quayside("maintenance", "off")
    after = fetch(host)

    assert on.returncode == 0, on.stderr
    assert on.stdout.strip() == 'web: maintenance on, quayside-proxy answers 503 with "Back at noon, sorry"'
    assert during[0] == 503 and "Back at noon, sorry" in during[1], during
    assert row_of(details.stdout, "web")[4] == "maintenance (503)"
    assert off.returncode == 0, off.stderr
    live = docker("ps", "--quiet", "--filter", f"name=^{container_name(deployed.service, 'web', 'v2')}$")
    assert after == (200, f"v2 {live}\n")
    assert [" ".join(line.split()[1:4]) for line in deployed.quayside("audit", "--lines", "2").stdout.splitlines()] == [
        f"web {pinned_version('v2')} maintenance", f"web {pinned_version('v2')} maintenance"
    ]  # fmt: skip


def test_backup_now_then_restore_latest_brings_back_a_row(deployed: Deployed) -> None:
    deployed.sql("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept by the backup')")

    made = deployed.quayside("backup", "now")
    listed = deployed.quayside("backup", "list")
    deployed.sql("UPDATE notes SET body = 'written after the backup'; INSERT INTO notes VALUES ('also after')")
    refused = deployed.quayside("restore", "latest")
    restored = deployed.quayside("restore", "latest", "--yes")

    assert made.returncode == 0, made.stdout + made.stderr
    assert "encrypted, verified by reading it back" in made.stdout
    database = deployed.service.replace("-", "_")
    assert len(listed.stdout.split()) == 1 and listed.stdout.startswith(f"{database}-"), listed.stdout
    assert refused.returncode == 1 and "add --yes" in refused.stderr
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert deployed.sql("SELECT body FROM notes") == "kept by the backup"


# --- as a person types it: tmux ---------------------------------------------------------------------------


@dataclass
class Terminal:
    """One tmux window of its own server (socket), running a command as a login shell would."""

    socket: str
    session: str

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", self.session)

    def wait_for(self, check: Callable[[str], bool], what: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"no {what} on the terminal within {seconds}s:\n{self.screen()}")

    def type(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)


@pytest.fixture
def terminal(deployed: Deployed, tmp_path: Path) -> Iterator[Callable[[list[str]], Terminal]]:
    socket = f"quayside-cli-{os.getpid()}"
    started: list[Terminal] = []

    def start(args: list[str]) -> Terminal:
        # The environment goes through a script of its own: a tmux server keeps its first client's environment.
        runner = tmp_path / f"run-{len(started)}.sh"
        exports = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in deployed.env.items()
                          if re.fullmatch(r"[A-Z_][A-Z0-9_]*", key))  # fmt: skip
        argv = [str(QUAYSIDE), "-s", STACK, "--cwd", str(deployed.demo.project.work_dir), *args]
        runner.write_text(f'{exports}{shlex.join(argv)}\necho "EXITED $?"\nsleep 600\n')
        runner.chmod(0o700)
        session = f"cli{len(started)}"
        found = Terminal(socket, session)
        found.tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50", f"bash {shlex.quote(str(runner))}")
        started.append(found)
        return found

    yield start
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
    Path(f"/tmp/tmux-{os.getuid()}/{socket}").unlink(missing_ok=True)  # kill-server leaves the socket file


def remote_processes(pattern: str) -> list[str]:
    listing = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False).stdout
    return [line for line in listing.splitlines() if "pgrep" not in line]


def test_logs_follow_in_a_terminal_prints_new_lines_and_ends_on_ctrl_c(
    deployed: Deployed, terminal: Callable[[list[str]], Terminal]
) -> None:
    shell = terminal(["logs", "web", "-f"])
    shell.wait_for(lambda screen: "app v2: listening on :80" in screen, "first log line")

    marker = f"marker-{os.getpid()}"
    said = deployed.quayside("exec", "web", "--reuse", "--", "sh", "-c", f"echo {marker} >/proc/1/fd/1")
    assert said.returncode == 0, said.stderr
    shell.wait_for(lambda screen: marker in screen, "the line printed after the follow began")
    pattern = f"logs.sh --service {deployed.service}"
    assert remote_processes(pattern), "the follow runs on the server"

    shell.type("C-c")
    screen = shell.wait_for(lambda screen: "EXITED " in screen, "the end of the command")

    assert re.search(r"EXITED (130|0)\b", screen), screen
    wait_for("the follow on the server ending on Ctrl-C", lambda: remote_processes(pattern) == [], seconds=15)


def test_exec_it_in_a_terminal_is_an_interactive_shell_with_its_exit_code(
    deployed: Deployed, terminal: Callable[[list[str]], Terminal]
) -> None:
    shell = terminal(["exec", "web", "-it", "--", "sh"])
    shell.wait_for(lambda screen: re.search(r"[#$] $", screen.rstrip("\n")) is not None, "a shell prompt")

    shell.type("echo answer-$((6 * 7)) on $VERSION", "Enter")
    shell.wait_for(lambda screen: "answer-42 on v2" in screen, "the command's output")
    shell.type("exit 3", "Enter")
    screen = shell.wait_for(lambda screen: "EXITED " in screen, "the end of the session")

    assert "EXITED 3" in screen, screen


# --- last: the rollback changes what serves, the public key how backups are made --------------------------------------


def test_rollback_brings_v1_back_and_pulumi_state_agrees(deployed: Deployed) -> None:
    done = deployed.quayside("rollback", "web", timeout=600)
    deployed.demo.settle()

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rollback: web from {pinned_version('v2')} to {pinned_version('v1')}" in done.stdout
    assert fetch(f"web.{deployed.service}.localhost")[1].split()[0] == "v1"
    details = deployed.quayside("details")
    web = row_of(details.stdout, "web")
    assert (web[1], web[5]) == (pinned_version("v1"), pinned_version("v2")), details.stdout
    deployed.demo.roles["web"]["image"] = registry_image("v1")
    assert changes(deployed.demo.preview().change_summary) == set(), "state must say v1 after the rollback"


def test_backups_move_to_a_public_key_and_those_made_before_restore_with_the_passphrase_kept(
    deployed: Deployed, tmp_path: Path
) -> None:
    key = key_pair(tmp_path / "gpg")
    older = deployed.quayside("backup", "list").stdout.split()[-1]
    deployed.demo.config["quayside:accessories"]["backup"]["public_key"] = key.public
    deployed.demo.up()  # backup_passphrase stays set: the backups made with it restore as before
    deployed.sql("UPDATE notes SET body = 'in the backup to the key'")

    made = deployed.quayside("backup", "now")
    deployed.sql("UPDATE notes SET body = 'written after it'")
    without_key = deployed.quayside("restore", "latest", "--yes")
    private = write_private(tmp_path / "backups.asc", key.private)
    passphrase = write_private(tmp_path / "key-passphrase", key.passphrase)
    with_key = deployed.quayside(
        "restore", "latest", "--yes", "--private-key-file", str(private), "--passphrase-file", str(passphrase)
    )
    restored_with_key = deployed.sql("SELECT body FROM notes")
    with_passphrase = deployed.quayside("restore", older, "--yes")

    assert made.returncode == 0, made.stdout + made.stderr
    assert f"encrypted to public key {key.fingerprint}, read back unchanged" in made.stdout
    assert without_key.returncode != 0 and "it is encrypted to a public key: give its private key" in without_key.stderr
    assert with_key.returncode == 0, with_key.stdout + with_key.stderr
    assert restored_with_key == "in the backup to the key"
    assert with_passphrase.returncode == 0, with_passphrase.stdout + with_passphrase.stderr
    assert deployed.sql("SELECT body FROM notes") == "kept by the backup"
