"""The bench's trace of the Python processes one `pulumi up` starts (bench/phases.py puts this directory on
PYTHONPATH): when each started and ended, and every HTTP request each made (quayside's program asks the registry
for the digest of each image tag), as JSON lines appended to $QUAYSIDE_BENCH_TRACE. Python imports sitecustomize
at start, so the program itself is measured unchanged. Without $QUAYSIDE_BENCH_TRACE it does nothing."""

from __future__ import annotations

import atexit
import http.client
import json
import os
import sys
import time
from typing import Any

TRACE = os.environ.get("QUAYSIDE_BENCH_TRACE", "")


def record(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "pid": os.getpid(), "argv": sys.argv[:3], **fields})
    # One write of one line in append mode: lines of processes and threads writing at once do not interleave.
    with open(TRACE, "a") as trace:
        trace.write(line + "\n")


def trace_requests() -> None:
    request, getresponse = http.client.HTTPConnection.request, http.client.HTTPConnection.getresponse

    def timed_request(self: http.client.HTTPConnection, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        self._bench_request = (time.time(), f"{method} {self.host}:{self.port}{url}")  # type: ignore[attr-defined]
        request(self, method, url, *args, **kwargs)

    def timed_getresponse(self: http.client.HTTPConnection) -> http.client.HTTPResponse:
        try:
            return getresponse(self)
        finally:
            started, what = getattr(self, "_bench_request", (time.time(), "?"))
            record("http", start=started, end=time.time(), what=what)

    http.client.HTTPConnection.request = timed_request  # type: ignore[method-assign]
    http.client.HTTPConnection.getresponse = timed_getresponse  # type: ignore[method-assign]


if TRACE:
    record("start", at=time.time())
    atexit.register(lambda: record("exit", at=time.time()))
    trace_requests()
