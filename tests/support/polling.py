"""Waiting for something to happen: poll for it with a deadline, never sleep for a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_for(
    what: str, probe: Callable[[], bool], *, seconds: float, every: float = 0.1, detail: Callable[[], str] | None = None
) -> float:
    """Polls `probe` until it is true; returns the seconds that took. After `seconds` fails the test naming `what`
    (what did not happen), followed by `detail()` when given (a log, the last output)."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > seconds:
            pytest.fail(f"{what}: not within {seconds:g} s" + (f"\n{detail()}" if detail else ""))
        time.sleep(every)
    return time.monotonic() - started
