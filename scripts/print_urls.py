"""Prints each role's version and URLs from `pulumi stack output --json` (on stdin), and whether each answers.

    pulumi stack output --json | .venv/bin/python scripts/print_urls.py

Exits 1 when a URL does not answer with a status below 500, so `scripts/up` ends on URLs that work.
A `*.localhost` name is loopback (RFC 6761) even where the resolver does not know it, as curl treats it.
"""

from __future__ import annotations

import http.client
import json
import sys
from typing import Any, Final
from urllib.parse import urlsplit

TIMEOUT_SECONDS: Final = 5


def status_of(url: str) -> str:
    """The HTTP status line's code of GET url, or why there is none."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    address = "127.0.0.1" if host == "localhost" or host.endswith(".localhost") else host
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(address, parts.port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", parts.path or "/", headers={"Host": parts.netloc})
        return str(connection.getresponse().status)
    except OSError as error:
        return f"no answer ({error})"
    finally:
        connection.close()


def main() -> int:
    outputs: dict[str, Any] = json.load(sys.stdin)
    failed = 0
    for role, details in (outputs.get("roles") or {}).items():
        urls = details.get("urls") or []
        if not urls:
            print(f"{role}: version {details['version']}: no proxy route")
        for url in urls:
            status = status_of(url)
            failed += not status.isdigit() or int(status) >= 500
            print(f"{role}: version {details['version']}: {url} -> {status}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
