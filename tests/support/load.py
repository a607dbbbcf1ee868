"""Constant concurrent HTTP load with every response recorded, so a test can say "0 failed of N"."""

from __future__ import annotations

import http.client
import secrets
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

from tests.support.hosts import bed_addresses

# Bounds so no load loop can outlive its test.
MAX_SECONDS: Final = 600.0
MAX_REQUESTS: Final = 2_000_000
# How a request fails when the server closed its kept-alive connection before answering it.
CLOSED_UNDER_IT: Final = (
    http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError,
)  # fmt: skip


@dataclass(frozen=True)
class Response:
    at: float  # seconds since the load started, when the worker began the request
    done: float  # seconds since the load started, when the response (or the failure) was in
    status: int  # 0 when the request failed without a response
    version: str  # first token of the body; "" on failure
    error: str  # "" on success
    cookie: str = ""  # the kamal-rollout cookie's value the request sent, with Load(rollout_cookie=True)
    # With Load(retry_closed_keep_alive=True): sent again on a new connection, its kept-alive one closed by the server
    # before any byte of the response came.
    retried: bool = False


@dataclass
class LoadReport:
    responses: list[Response] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.responses)

    @property
    def failures(self) -> list[Response]:
        return [r for r in self.responses if r.status != 200]

    def versions(self) -> Counter[str]:
        return Counter(r.version for r in self.responses if r.status == 200)

    def version_sequence(self) -> list[str]:
        """The versions that answered, in the order their requests began, with repeats collapsed: ["v1", "v2"] is
        one switch. A version switched away from answering again counts as a switch back only when its request began
        after the switch had surely happened, that is once an answer of a later version was in: a request that began
        before may still reach the old version (its worker sent it late, or it was in flight and is drained)."""
        ordered = sorted((r for r in self.responses if r.status == 200), key=lambda r: r.at)
        sequence: list[str] = []
        # For each entry of the sequence: when its first answer was in, so by when it surely served.
        served_by: list[float] = []
        for response in ordered:
            if sequence and response.version == sequence[-1]:
                served_by[-1] = min(served_by[-1], response.done)
                continue
            if response.version in sequence:
                last = len(sequence) - 1 - sequence[::-1].index(response.version)
                if response.at < min(served_by[last + 1 :]):
                    continue
            sequence.append(response.version)
            served_by.append(response.done)
        return sequence

    def tally(self) -> str:
        """The counts alone, for loads whose answers mix by design (a canary, several servers)."""
        return f"{len(self.failures)} failed of {self.total}; versions {dict(self.versions())}"

    @property
    def retried(self) -> int:
        return sum(1 for r in self.responses if r.retried)

    def summary(self) -> str:
        failures = self.failures
        sample = "; ".join(f"{r.at:.2f}s {r.status} {r.error}" for r in failures[:5])
        retried = f" ({self.retried} retried on a new connection)" if self.retried else ""
        return (
            f"{len(failures)} failed of {self.total}{retried}; versions {dict(self.versions())}; "
            f"sequence {self.version_sequence()}" + (f"; first failures: {sample}" if failures else "")
        )


class Load:
    """`with Load(port, host_header) as load: ...` then `load.report`.

    Each worker keeps one keep-alive connection to 127.0.0.1:port (or a test host's address:port), as browsers do,
    and reconnects after an error; a connection error, a timeout or any non-200 status is a failed request. With
    `rollout_cookie`, each request sends a kamal-rollout cookie of a random value of its own, as many users would.

    With `retry_closed_keep_alive`, a request whose kept-alive connection the server closed before any byte of the
    response came is sent once more on a new connection, as browsers, curl and Go's client do (RFC 9112, 9.3.1: a
    server may close an idle connection at any time); the report counts those. Without `keep_alive`, each request
    has a connection of its own (`Connection: close`), so none is ever closed under it.
    """

    def __init__(
        self,
        port: int,
        host_header: str,
        *,
        path: str = "/",
        workers: int = 4,
        address: str = "127.0.0.1",
        request_timeout: float = 5.0,
        max_seconds: float = MAX_SECONDS,
        tls: ssl.SSLContext | None = None,
        rollout_cookie: bool = False,
        keep_alive: bool = True,
        retry_closed_keep_alive: bool = False,
    ) -> None:
        if not (address.startswith("127.") or address in bed_addresses()):
            raise ValueError(f"load is only sent to loopback or to the test hosts' addresses, not {address}")
        self._port = port
        self._host_header = host_header
        self._path = path
        self._workers = workers
        self._address = address
        self._request_timeout = request_timeout
        self._max_seconds = min(max_seconds, MAX_SECONDS)
        self._tls = tls
        self._rollout_cookie = rollout_cookie
        self._keep_alive = keep_alive
        self._retry_closed_keep_alive = retry_closed_keep_alive
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self.report = LoadReport()

    def __enter__(self) -> Load:
        self._started = time.monotonic()
        for index in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> LoadReport:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._request_timeout + 5)
        return self.report

    def wait_for_requests(self, count: int, timeout: float = 30) -> None:
        """Blocks until at least `count` responses were recorded, so a test knows load is flowing."""
        deadline = time.monotonic() + timeout
        while self.report.total < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load made only {self.report.total} requests in {timeout} s")
            time.sleep(0.05)

    def elapsed(self) -> float:
        """Seconds since the load started: the clock of each response's `at` and `done`."""
        return time.monotonic() - self._started

    def _record(self, response: Response) -> None:
        with self._lock:
            self.report.responses.append(response)

    def _work(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            elapsed = self.elapsed()
            if elapsed > self._max_seconds or self.report.total >= MAX_REQUESTS:
                break
            reused = connection is not None
            if connection is None:
                connection = self._connect()
            if not self._request(connection, elapsed, retry=reused and self._retry_closed_keep_alive):
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def _connect(self) -> http.client.HTTPConnection:
        if self._tls is None:
            return http.client.HTTPConnection(self._address, self._port, timeout=self._request_timeout)
        return HTTPSTo(self._address, self._host_header, self._port, self._tls, self._request_timeout)

    def _request(
        self, connection: http.client.HTTPConnection, elapsed: float, *, retry: bool = False, retried: bool = False
    ) -> bool:
        """One request; False when the connection cannot be used again. `retry`: once more on a new connection when
        the server closed this one before answering."""
        headers = {"Host": self._host_header}
        if not self._keep_alive:
            headers["Connection"] = "close"
        cookie = f"user-{secrets.token_hex(6)}" if self._rollout_cookie else ""
        if cookie:
            headers["Cookie"] = f"kamal-rollout={cookie}"
        reply: http.client.HTTPResponse | None = None
        try:
            connection.request("GET", self._path, headers=headers)
            reply = connection.getresponse()
            body = reply.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as failure:
            if retry and reply is None and isinstance(failure, CLOSED_UNDER_IT):
                fresh = self._connect()
                self._request(fresh, elapsed, retried=True)
                fresh.close()
            else:
                failed = f"{type(failure).__name__}: {failure}"
                self._record(Response(elapsed, self.elapsed(), 0, "", failed, cookie, retried))
            return False
        words = body.split()
        error = "" if reply.status == 200 else body[:80]
        self._record(Response(elapsed, self.elapsed(), reply.status, words[0] if words else "", error, cookie, retried))
        return self._keep_alive and not reply.will_close


class HTTPSTo(http.client.HTTPSConnection):
    """HTTPS to `address` for `hostname`: the TLS name (SNI, the certificate's check) is the hostname, as a browser
    sends it, while the connection goes to the address (no DNS here names the test's hosts)."""

    def __init__(self, address: str, hostname: str, port: int, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(hostname, port, context=context, timeout=timeout)
        self._address = address
        self._tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls_context.wrap_socket(raw, server_hostname=self.host)
