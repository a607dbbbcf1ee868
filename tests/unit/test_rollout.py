"""The rollout across servers (components/rollout.py) without a server: its command line and stdin, the waves a
limit makes, which servers go back after a failure and how, and the one line it ends with; the whole rollout driven
through a stand-in for SSH that answers as the steps would."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from components import config, defaults, rollout, ssh, steps
from components.rollout import Failure, GoBack, Live, Outcome, Request, Server, WentBack
from components.swap_command import swap_args

ROOT: Final = Path(__file__).resolve().parents[2]
HOST_KEY: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9u5mVwK0p2Zr7xqQb3cJYtLk8dWn1sFv6gHe4aRz0"
WEB: Final = config.Role.model_validate({"image": "ghcr.io/acme/web:v2", "health": {"path": "/up"}})
V1: Final = Live("v1", "ghcr.io/acme/web:v1@sha256:" + "1" * 64)
V2_IMAGE: Final = "ghcr.io/acme/web:v2@sha256:" + "2" * 64
SWAP_ARGV: Final = swap_args("acme", "web", WEB, V2_IMAGE, "v2")
ADDRESSES: Final = {"app-1": "10.97.0.11", "app-2": "10.97.0.12", "app-3": "10.97.0.13"}
UNHEALTHY: Final = "swap failed: role web on qs-host-2: target failed to become healthy (health path /up)"


def server(name: str) -> Server:
    return Server(name, ssh.Endpoint(ADDRESSES[name], 22, "root", HOST_KEY))


def command_line(
    *extra: str, servers: Sequence[str] = tuple(ADDRESSES), swap: Sequence[str] = SWAP_ARGV, limit: str = "1"
) -> list[str]:
    words = ["--service", "acme", "--role", "web", "--limit", limit, "--timeout", "600", *extra]
    for name in servers:
        words += ["--server", f"{name}=root@{ADDRESSES[name]}:22"]
    return [*words, "--", *swap]


def stdin(**changes: object) -> str:
    given = {
        "private_keys": dict.fromkeys(ADDRESSES, "KEY"), "host_keys": dict.fromkeys(ADDRESSES, HOST_KEY),
        "env_file": "SECRET=1\n",
    }  # fmt: skip
    return json.dumps({**given, **changes})


def request(*extra: str, limit: int = 1, servers: Sequence[str] = tuple(ADDRESSES)) -> Request:
    return rollout.parse_request(command_line(*extra, servers=servers, limit=str(limit)), stdin())


# --- a stand-in for the servers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    server: str
    script: str
    args: tuple[str, ...]
    stdin: str | None

    @property
    def values(self) -> dict[str, object]:
        return steps.SCRIPTS[self.script].parse(self.args)


@dataclass
class Servers:
    """Answers each step as the servers would: live.sh with `live`, a swap as `swaps` says for its server and version
    (ok when not listed), retire.sh ok. Records every call, in order."""

    live: dict[str, Live | None] = field(default_factory=lambda: dict.fromkeys(ADDRESSES, V1))
    swaps: dict[tuple[str, str, bool], Outcome] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self, server: Server, step: steps.Script, args: Sequence[str], *, stdin: str | None, timeout_seconds: int,
        show: bool,
    ) -> Outcome:  # fmt: skip
        call = Call(server.name, step.name, tuple(args), stdin)
        with self.lock:
            self.calls.append(call)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return self.answer(call)
        finally:
            with self.lock:
                self.running -= 1

    def answer(self, call: Call) -> Outcome:
        if call.server in self.unreachable:
            return Outcome(255, stderr=f"ssh: connect to host {ADDRESSES[call.server]} port 22: Connection refused\n")
        if call.script == "live.sh":
            live = self.live[call.server]
            return Outcome(0, stdout=f"{live.version} {live.image}\n" if live else "")
        if call.script == "swap.sh":
            values = call.values
            key = (call.server, str(values["version"]), bool(values.get("retained_only")))
            return self.swaps.get(key, Outcome(0, stdout="swap: web now ...\n", seconds=1.0))
        return Outcome(0)

    def touched(self) -> list[tuple[str, str, str]]:
        """(server, script, version) of each call that changes something, in order."""
        return [(c.server, c.script, str(c.values["version"])) for c in self.calls if c.script != "live.sh"]


def failed_swap(line: str = UNHEALTHY) -> Outcome:
    return Outcome(1, stdout="swap: web v2: deploy to acme-web-v2\n", stderr=f"{line}\ncontainer acme-web-v2: ...\n")


# --- the command line -------------------------------------------------------------------------------------------


def test_the_command_line_and_stdin_give_the_servers_with_their_host_keys_and_the_swap_as_swap_args_built_it() -> None:
    parsed = rollout.parse_request(command_line(), stdin())

    assert [s.name for s in parsed.servers] == ["app-1", "app-2", "app-3"]
    assert parsed.servers[1].endpoint == ssh.Endpoint("10.97.0.12", 22, "root", HOST_KEY)
    assert (parsed.limit, parsed.timeout_seconds, parsed.retained_only) == (1, 600, False)
    assert parsed.swap_argv == tuple(SWAP_ARGV)
    assert (parsed.version, parsed.env_file, parsed.private_keys["app-2"]) == ("v2", "SECRET=1\n", "KEY")


def test_retained_only_sends_each_swap_its_retained_only_switch() -> None:
    parsed = rollout.parse_request(command_line("--retained-only"), stdin())

    assert parsed.retained_only
    assert steps.SWAP.parse(parsed.swap_argv)["retained_only"] is True


def test_a_server_is_named_user_at_host_and_port_an_ipv6_address_in_brackets() -> None:
    assert rollout.parse_server("app-1=deploy@[2001:db8::7]:2222") == ("app-1", "deploy", "2001:db8::7", 2222)
    assert rollout.parse_server("db=root@db.acme.com:22") == ("db", "root", "db.acme.com", 22)


@pytest.mark.parametrize(
    ("argv", "given", "said"),
    [
        (command_line()[:-len(SWAP_ARGV) - 1], stdin(), "swap.sh's arguments go after --"),
        (command_line(swap=swap_args("acme", "api", WEB, V2_IMAGE, "v2")), stdin(), "are for acme api, not acme web"),
        (command_line(swap=["--service", "acme", "--colour", "red"]), stdin(), "swap.sh has no option --colour"),
        (["--server", "app-1=10.97.0.11", *command_line()], stdin(), "'app-1=10.97.0.11' is not NAME=USER@HOST:PORT"),
        (command_line("--server", "app-1=root@10.97.0.11:22"), stdin(), "each server once"),
        (command_line(), stdin(host_keys={"app-1": HOST_KEY}), "host_keys and private_keys need a key of server app-2"),
        (command_line(), stdin(env_file=None), "stdin: env_file is missing or not a string"),
        (command_line(), "KEY", "stdin is not JSON"),
        (command_line()[4:], stdin(), "the following arguments are required: --service, --role"),
        (command_line(limit="0"), stdin(), "--limit and --timeout take a whole number from 1 up"),
    ],
)  # fmt: skip
def test_a_command_line_or_stdin_it_cannot_take_is_refused_in_one_line_naming_what(
    argv: list[str], given: str, said: str
) -> None:
    with pytest.raises(rollout.UsageError, match=said.replace("(", r"\(").replace(")", r"\)")):
        rollout.parse_request(argv, given)


def test_run_by_a_bare_python3_without_site_packages_it_answers_a_wrong_call_in_one_line() -> None:
    # -S: no site-packages, so no pydantic: the rollout needs the standard library only.
    done = subprocess.run(
        [sys.executable, "-S", "components/rollout.py", "--service", "acme"],
        cwd=ROOT, input="{}", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "rollout: swap.sh's arguments go after --\n"


# --- the plan ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(1, [["a"], ["b"], ["c"]]), (2, [["a", "b"], ["c"]]), (3, [["a", "b", "c"]]), (1000, [["a", "b", "c"]])],
)
def test_the_limit_cuts_the_servers_into_waves_in_their_order(limit: int, expected: list[list[str]]) -> None:
    assert rollout.waves(["a", "b", "c"], limit) == expected


def test_live_sh_prints_version_and_image_or_nothing() -> None:
    assert Live.read(f"v1 {V1.image}\n") == V1
    assert Live.read("") is None
    with pytest.raises(ValueError, match="not VERSION IMAGE"):
        Live.read("v1")


def test_only_the_servers_switched_from_another_version_or_from_none_go_back() -> None:
    one, two, three = (server(name) for name in ADDRESSES)
    before = {"app-1": V1, "app-2": Live("v2", V2_IMAGE), "app-3": None}

    assert rollout.going_back([one, two, three], before, "v2") == [GoBack(one, V1), GoBack(three, None)]


def test_going_back_is_the_same_swap_with_the_earlier_image_and_version_so_a_kept_container_fits() -> None:
    back = steps.SWAP.parse(rollout.back_args(SWAP_ARGV, V1, retained_only=True))
    forward = steps.SWAP.parse(SWAP_ARGV)

    assert (back["image"], back["version"], back["retained_only"]) == (V1.image, "v1", True)
    assert {**back, "image": V2_IMAGE, "version": "v2", "retained_only": False} == {**forward, "retained_only": False}
    assert "retained_only" not in steps.SWAP.parse(rollout.back_args(SWAP_ARGV, V1, retained_only=False))


def test_a_server_that_ran_none_retires_the_role_with_the_swaps_proxy_settings() -> None:
    assert rollout.retire_args(SWAP_ARGV) == steps.RETIRE.argv(
        service="acme", role="web", version="v2", proxy=True, proxy_name=defaults.PROXY_CONTAINER,
        lock_wait=steps.SWAP.parse(SWAP_ARGV)["lock_wait"],
    )  # fmt: skip


def test_a_swaps_first_line_of_failure_is_its_own_before_a_docker_or_ssh_line() -> None:
    pulled = Outcome(1, stderr="Error response from daemon: manifest unknown\nswap failed: role web: could not pull\n")

    assert pulled.failure(steps.SWAP) == "swap failed: role web: could not pull"
    assert Outcome(1, stderr="  \nswap: missing required option --port\n").failure(steps.SWAP) == (
        "swap: missing required option --port"
    )
    assert Outcome(255, stderr="Host key verification failed.\n").failure(steps.SWAP) == "Host key verification failed."
    assert Outcome(124).failure(steps.SWAP) == "swap.sh exited 124"


# --- the one line -----------------------------------------------------------------------------------------------


def test_a_failure_names_the_swaps_line_the_server_and_its_address_and_where_the_others_went() -> None:
    one, two, three = (server(name) for name in ADDRESSES)

    assert rollout.failure_message("web", [Failure(two, UNHEALTHY)], [WentBack(one, V1)]) == (
        f"rollout: web: {UNHEALTHY} on app-2 (10.97.0.12); app-1 went back to v1"
    )
    assert rollout.failure_message("web", [Failure(one, UNHEALTHY)], []) == (
        f"rollout: web: {UNHEALTHY} on app-1 (10.97.0.11); no other server had switched"
    )
    many = rollout.failure_message(
        "web",
        [Failure(two, UNHEALTHY), Failure(three, "swap failed: x")],
        [WentBack(one, V1), WentBack(three, V1), WentBack(three, None), WentBack(one, V1, "swap: no kept container")],
    )
    assert many == (
        f"rollout: web: {UNHEALTHY} on app-2 (10.97.0.12); it failed on app-3 (10.97.0.13) too: swap failed: x; "
        "app-1 could not go back to v1: swap: no kept container; app-1 and app-3 went back to v1; "
        "app-3 no longer runs web (none before)"
    )


# --- the whole rollout, through the stand-in --------------------------------------------------------------------


def test_with_limit_one_the_servers_switch_one_after_the_other_in_their_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    servers = Servers()

    assert rollout.roll(request(), servers) == 0

    assert servers.touched() == [("app-1", "swap.sh", "v2"), ("app-2", "swap.sh", "v2"), ("app-3", "swap.sh", "v2")]
    assert [c.stdin for c in servers.calls if c.script == "swap.sh"] == ["SECRET=1\n"] * 3
    assert [c.args for c in servers.calls if c.script == "swap.sh"] == [tuple(SWAP_ARGV)] * 3
    out = capsys.readouterr().out
    assert "rollout: web: v2 to app-1, app-2 and app-3, 1 at a time; live now: app-1 v1, app-2 v1, app-3 v1\n" in out
    assert "rollout: web: wave 3 of 3: app-3\n" in out
    assert out.splitlines()[-1].startswith("rollout: web: v2 live on app-1, app-2 and app-3 in ")


def test_every_server_is_read_before_any_is_touched_and_a_wave_swaps_its_servers_at_once() -> None:
    servers = Servers()

    assert rollout.roll(request(limit=3), servers) == 0

    assert [c.script for c in servers.calls] == ["live.sh"] * 3 + ["swap.sh"] * 3
    assert servers.calls[0].values == {"service": "acme", "role": "web", "proxy_name": defaults.PROXY_CONTAINER}


def test_a_failed_swap_stops_the_rollout_and_sends_the_switched_servers_back_by_their_kept_container(
    capsys: pytest.CaptureFixture[str],
) -> None:
    servers = Servers(swaps={("app-2", "v2", False): failed_swap()})

    assert rollout.roll(request(), servers) == 1

    assert servers.touched() == [("app-1", "swap.sh", "v2"), ("app-2", "swap.sh", "v2"), ("app-1", "swap.sh", "v1")]
    back = servers.calls[-1]
    assert back.args == tuple(rollout.back_args(SWAP_ARGV, V1, retained_only=True)) and back.stdin is None
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"rollout: web: {UNHEALTHY} on app-2 (10.97.0.12); app-1 went back to v1"
    )


def test_the_other_swaps_of_a_failed_wave_end_and_go_back_too() -> None:
    servers = Servers(swaps={("app-1", "v2", False): failed_swap()})

    assert rollout.roll(request(limit=2), servers) == 1

    assert sorted(servers.touched()) == [
        ("app-1", "swap.sh", "v2"),
        ("app-2", "swap.sh", "v1"),
        ("app-2", "swap.sh", "v2"),
    ]


def test_a_server_whose_kept_container_no_longer_fits_boots_its_earlier_version_again_with_the_env_file() -> None:
    refused = Outcome(1, stderr="swap: no container of web v1 with the role's current config is kept on qs-host-1\n")
    servers = Servers(swaps={("app-2", "v2", False): failed_swap(), ("app-1", "v1", True): refused})

    assert rollout.roll(request(), servers) == 1

    booted = servers.calls[-1]
    assert (booted.server, booted.values["version"], booted.stdin) == ("app-1", "v1", "SECRET=1\n")
    assert booted.args == tuple(rollout.back_args(SWAP_ARGV, V1, retained_only=False))


def test_a_server_lost_on_the_way_back_is_named_and_not_tried_again(capsys: pytest.CaptureFixture[str]) -> None:
    lost = Outcome(255, stderr="ssh: connect to host 10.97.0.11 port 22: No route to host\n")
    servers = Servers(swaps={("app-2", "v2", False): failed_swap(), ("app-1", "v1", True): lost})

    assert rollout.roll(request(), servers) == 1

    assert servers.touched() == [("app-1", "swap.sh", "v2"), ("app-2", "swap.sh", "v2"), ("app-1", "swap.sh", "v1")]
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"rollout: web: {UNHEALTHY} on app-2 (10.97.0.12); "
        "app-1 could not go back to v1: ssh: connect to host 10.97.0.11 port 22: No route to host"
    )


def test_a_server_that_ran_none_before_retires_the_role_and_one_that_ran_the_version_stays(
    capsys: pytest.CaptureFixture[str],
) -> None:
    live = {"app-1": None, "app-2": Live("v2", V2_IMAGE), "app-3": V1}
    servers = Servers(live=live, swaps={("app-3", "v2", False): failed_swap("swap failed: role web on qs-host-3: x")})

    assert rollout.roll(request(), servers) == 1

    assert servers.touched()[3:] == [("app-1", "retire.sh", "v2")]
    assert capsys.readouterr().err.splitlines()[-1] == (
        "rollout: web: swap failed: role web on qs-host-3: x on app-3 (10.97.0.13); "
        "app-1 no longer runs web (none before)"
    )


def test_a_server_that_does_not_answer_fails_the_rollout_before_any_server_is_touched(
    capsys: pytest.CaptureFixture[str],
) -> None:
    servers = Servers(unreachable={"app-3"})

    assert rollout.roll(request(), servers) == 1

    assert servers.touched() == []
    assert capsys.readouterr().err == (
        f"rollout: web: no SSH answer from app-3 (10.97.0.13) within {ssh.CONNECT_TIMEOUT_SECONDS} s "
        "(ssh: connect to host 10.97.0.13 port 22: Connection refused); nothing was touched on any server\n"
    )


def test_retained_only_switches_kept_containers_sends_no_env_file_and_goes_back_the_same_way() -> None:
    servers = Servers(swaps={("app-3", "v2", True): Outcome(1, stderr="swap: no container of web v2 is kept\n")})
    refused_back = Outcome(1, stderr="swap: no container of web v1 is kept\n")
    servers.swaps[("app-2", "v1", True)] = refused_back

    assert rollout.roll(request("--retained-only"), servers) == 1

    assert all(c.stdin is None and c.values["retained_only"] for c in servers.calls if c.script == "swap.sh")
    assert sorted(servers.touched()[3:]) == [("app-1", "swap.sh", "v1"), ("app-2", "swap.sh", "v1")]
