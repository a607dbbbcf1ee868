"""The phases bench/run --phases splits one `pulumi up` into: cut at the engine's log lines and the program's trace,
they add up to the command's wall time; only steps that changed something are listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.common import ROOT, BenchError
from bench.phases import PHASES, TRACE_DIR, phases_of, program_trace

STACK_URN = "urn:pulumi:e2e::quayside::pulumi:pulumi:Stack::quayside-e2e"
SWAP_URN = "urn:pulumi:e2e::quayside::quayside:index:Role$command:remote:Command::bp3-web-swap"


def line(at: float, message: str) -> str:
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"time": stamp, "level": "INFO", "msg": message, "v": 7})


def engine_log() -> str:
    """An engine log of one `pulumi up` launched at 100.0 s, the CLI's own lines between."""
    return "\n".join([
        "Updating (e2e):",
        line(100.2, "langhost[python].About() executing"),
        line(100.3, "langhost[python].About() success"),
        line(100.35, "langhost[python].GetRequiredPackages(root=/p, program=/p, entryPoint=.) executing"),
        line(100.6, "langhost[python].GetRequiredPackages(root=/p, program=/p, entryPoint=.) success: #versions=3"),
        line(100.61, "langhost[python].Run(pwd=/p,root=/p, program=/p, entryPoint=.,dryrun=false) executing"),
        line(101.0, "ResourceMonitor.RegisterResource received: t=pulumi:pulumi:Stack, name=quayside-e2e"),
        line(101.01, f"StepExecutor worker(3): applying step same on {STACK_URN} (preview false)"),
        line(101.02, f"StepExecutor worker(3): step same on {STACK_URN} retired"),
        line(101.4, "ResourceMonitor.RegisterResource received: t=command:remote:Command, name=bp3-web-swap"),
        line(101.5, f"StepExecutor worker(1): applying step update on {SWAP_URN} (preview false)"),
        line(103.5, f"StepExecutor worker(1): step update on {SWAP_URN} retired"),
        # The CLI's progress dots share the pipe: a line may begin with them.
        "@ updating...." + line(103.7, "langhost[python].Run(pwd=/p,root=/p, program=/p, dryrun=false) success"),
        "Resources: 1 updated",
    ])  # fmt: skip


def test_the_phases_are_cut_at_the_engine_s_marks_and_the_program_s_start_and_add_up_to_the_wall_time() -> None:
    trace = [{"event": "start", "pid": 7, "at": 100.7}]

    up = phases_of(100.0, 104.0, engine_log(), trace)

    assert list(up.phases) == list(PHASES)
    assert {name: round(seconds, 3) for name, seconds in up.phases.items()} == {
        "CLI start, About": 0.3,
        "GetRequiredPackages": 0.3,
        "Python starts": 0.1,
        "program to its first resource": 0.3,
        "resources registered": 0.4,
        "steps, program ends": 2.3,
        "state written, CLI exits": 0.3,
    }
    assert sum(up.phases.values()) == pytest.approx(up.seconds) == 4.0


def test_only_steps_that_change_something_are_listed_each_with_its_time() -> None:
    up = phases_of(100.0, 104.0, engine_log(), [])

    assert [(step.op, step.resource, round(step.seconds, 3)) for step in up.steps] == [
        ("update", "Command::bp3-web-swap", 2.0)
    ]


def test_a_log_without_the_engine_s_marks_is_refused_naming_what_is_missing() -> None:
    with pytest.raises(BenchError, match="lacks run executing, run success"):
        phases_of(100.0, 104.0, "\n".join(engine_log().splitlines()[:5]), [])


def test_the_program_is_the_python_process_that_asked_the_registry_not_the_pip_runs_before_it(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    env = {**os.environ, "PYTHONPATH": str(TRACE_DIR), "QUAYSIDE_BENCH_TRACE": str(trace)}
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True, cwd=ROOT)
    asks = "import http.client, http.server, threading\n" + (
        "server = http.server.HTTPServer(('127.0.0.1', 0), http.server.BaseHTTPRequestHandler)\n"
        "threading.Thread(target=server.handle_request, daemon=True).start()\n"
        "connection = http.client.HTTPConnection('127.0.0.1', server.server_port, timeout=10)\n"
        "connection.request('HEAD', '/v2/app/manifests/v1'); connection.getresponse()\n"
    )
    subprocess.run([sys.executable, "-c", asks], env=env, check=True, cwd=ROOT)

    events = program_trace(trace.read_text().splitlines())

    assert [event["event"] for event in events] == ["start", "http", "exit"]
    assert events[1]["what"].startswith("HEAD 127.0.0.1:") and events[1]["what"].endswith("/v2/app/manifests/v1")
    assert events[0]["at"] <= events[1]["start"] <= events[1]["end"] <= events[2]["at"]
