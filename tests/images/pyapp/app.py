"""PID 1 of quayside-test/pyapp: a small web app on Python's standard library (see the Dockerfile's header).

No signal handler is installed, on purpose: as PID 1 of its container, with SIGTERM at its default action, the
kernel drops the SIGTERM `docker stop` sends, so every stop waits its whole grace period and ends in a KILL (exit
137). That is what most Python web apps run without an init (tini, --init) do. SIGINT is not the same: Python's
own handler raises KeyboardInterrupt, so the image promises nothing about it.
"""

from __future__ import annotations

import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("VERSION", "dev")
PORT = int(os.environ.get("PORT", "80"))


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with a Content-Length on every answer: a client keeps its connection open (keep-alive load).
    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write, flushed after each request: written apart, a kept-alive connection
    # waits on Nagle's algorithm and the client's delayed ACK (40 ms) for every body, as no real server does.
    wbufsize = 64 * 1024

    def do_GET(self) -> None:
        if self.path == "/":
            self.answer(200, f"{VERSION} {socket.gethostname()}\n")
        elif self.path == "/up":
            self.answer(200, "ok\n")
        else:
            self.answer(404, "not found\n")

    def answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """No line per request: under load the log would be all requests."""


def main(argv: list[str]) -> None:
    # `docker run IMAGE CMD...`: a one-off command (a migration, `quayside exec`) instead of the server. Arguments
    # that start with a dash are options for the server, which it ignores.
    if argv and not argv[0].startswith("-"):
        os.execvp(argv[0], argv)
    server = ThreadingHTTPServer(("", PORT), Handler)
    print(f"pyapp {VERSION}: listening on :{PORT}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
