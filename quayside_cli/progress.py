"""What a long step is doing: a spinner on a terminal, one plain line otherwise (logs, CI, pipes)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Final, TextIO

FRAMES: Final = "|/-\\"
INTERVAL_SECONDS: Final = 0.1


@contextlib.contextmanager
def step(what: str, stream: TextIO | None = None) -> Iterator[None]:
    """Shows `what` while the block runs, on stderr: animated when it is a terminal, else a single line."""
    out = stream or sys.stderr
    if not out.isatty():
        print(f"quayside: {what} ...", file=out, flush=True)
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def spin() -> None:
        frame = 0
        while not done.wait(INTERVAL_SECONDS):
            elapsed = time.monotonic() - started
            out.write(f"\r{FRAMES[frame % len(FRAMES)]} {what} ({elapsed:.0f}s)")
            out.flush()
            frame += 1

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        yield
    finally:
        done.set()
        spinner.join()
        out.write("\r\x1b[2K")
        out.flush()
