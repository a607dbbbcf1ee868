"""An HTTPS endpoint that stands in for Better Stack's ingest: it records what Vector's http sink sends (each
request's headers and its events), and can go down and come back on the same address.

    with LogSink.start(bed.gateway, tmp_path) as sink:
        ... accessories.vector.ingest_url = sink.url, the Vector image trusting sink.ca ...
        wait_for("a line", lambda: sink.messages(container="acme_ticker"))
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.acme import make_ca, make_certificate


@dataclass(frozen=True)
class Batch:
    """One request of Vector's: its authorization and content encoding, and the events its body held."""

    authorization: str
    content_encoding: str
    events: list[dict[str, Any]]


class SinkHandler(http.server.BaseHTTPRequestHandler):
    server: SinkServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        text = (gzip.decompress(body) if encoding == "gzip" else body).decode()
        self.server.record(Batch(self.headers.get("Authorization", ""), encoding, events_of(text)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def events_of(text: str) -> list[dict[str, Any]]:
    """A body's events: a JSON array, or one JSON object per line."""
    stripped = text.strip()
    if stripped.startswith("["):
        events: list[dict[str, Any]] = json.loads(stripped)
        return events
    return [json.loads(line) for line in stripped.splitlines() if line.strip()]


class SinkServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext, batches: list[Batch], lock: threading.Lock):
        super().__init__(address, SinkHandler)
        self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.batches, self.lock = batches, lock

    def record(self, batch: Batch) -> None:
        with self.lock:
            self.batches.append(batch)


@dataclass
class LogSink:
    address: str
    port: int
    ca: Path
    tls: ssl.SSLContext
    batches: list[Batch] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: SinkServer | None = None

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"

    @classmethod
    @contextlib.contextmanager
    def start(cls, address: str, directory: Path) -> Iterator[LogSink]:
        """A sink on `address` (a port of its own), its certificate for that address signed by the CA `ca`."""
        ca = make_ca(directory, "log-sink")
        certificate, key = make_certificate(ca, address, "log-sink", ip=True)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(certificate, key)
        sink = cls(address, 0, ca[0], tls)
        sink.up()
        try:
            yield sink
        finally:
            sink.down()

    def up(self) -> None:
        """Serves on its port (a free one, the first time; the same one after `down`)."""
        self.server = SinkServer((self.address, self.port), self.tls, self.batches, self.lock)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="log-sink", daemon=True).start()

    def down(self) -> None:
        """Refuses connections until `up`, as an ingest endpoint that is down."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for batch in self.batches for event in batch.events]

    def requests(self) -> list[Batch]:
        with self.lock:
            return list(self.batches)

    def messages(self, container: str) -> list[str]:
        """The messages of the events from containers whose name starts with `container`."""
        return [
            str(event.get("message", ""))
            for event in self.events()
            if str(event.get("container_name", "")).startswith(container)
        ]
