"""Every process's command line on this machine (which is the test server too), sampled while a step runs:
how tests show that a secret never reaches a command line."""

from __future__ import annotations

import subprocess
import threading
import time


class ProcessWatch:
    """Samples every process's command line on the server (this machine) while a deploy runs."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
            self.seen.update(listing.splitlines())
            time.sleep(0.05)
