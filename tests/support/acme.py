"""A real ACME server for the TLS tests: Pebble, Let's Encrypt's test server (scripts/setup.d/acme.sh builds it), with
its DNS test server answering every name with one test host's address, so Pebble validates a challenge against that
host's kamal-proxy as Let's Encrypt would against a server.

kamal-proxy v0.9.2 asks only Let's Encrypt's own directory (https://acme-v02.api.letsencrypt.org/directory), so the
proxy under test runs an image derived from the test stand-in that changes nothing in kamal-proxy: it trusts one
more CA and sends HTTPS through a proxy (Go's HTTPS_PROXY), the ACME front below. The front answers CONNECT to that
name with a certificate of that CA, and passes each request on to Pebble (its directory is at /dir, not /directory).

    with AcmeBed.start(bed, host, tmp_path) as acme:
        stack.config["quayside:proxy"] = {"image": acme.proxy_repository, "version": acme.proxy_tag, "ssl": True}
        ... curl --cacert acme.root over HTTPS to the host ...
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.support.docker import docker, free_loopback_port, listens
from tests.support.hosts import HostBed, TestHost
from tests.support.images import KAMAL_PROXY, KAMAL_PROXY_NEXT
from tests.support.polling import wait_for
from tests.support.testbed import BenchMissing, read_env_file, registry_address

LETS_ENCRYPT: Final = "acme-v02.api.letsencrypt.org"
SETUP_STEP: Final = "bash scripts/setup.d/acme.sh (or scripts/setup)"
# The proxy's ports on a bed host, where Pebble validates: http-01 on one, tls-alpn-01 on the other.
HTTP_PORT: Final = 80
HTTPS_PORT: Final = 443
# Hop-by-hop headers, which the front does not pass on (it sends each body whole, with its length).
HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"})


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True, timeout=60)


CURVE: Final = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) of a CA of the test's own."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / f"{name}-ca.pem", directory / f"{name}-ca.key"
    openssl("req", "-x509", *CURVE, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
            "-subj", f"/CN=quayside tests {name} CA")  # fmt: skip
    return ca, ca_key


def make_certificate(ca: tuple[Path, Path], hostname: str, name: str, *, ip: bool = False) -> tuple[Path, Path]:
    """(certificate, key) for `hostname` (an IP address with `ip`), signed by `ca`; each call a new key and serial."""
    cert, key = ca[0].parent / f"{name}.pem", ca[0].parent / f"{name}.key"
    openssl("req", "-x509", *CURVE, "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", f"/CN={hostname}", "-addext", f"subjectAltName={'IP' if ip else 'DNS'}:{hostname}",
            "-CA", str(ca[0]), "-CAkey", str(ca[1]))  # fmt: skip
    return cert, key


def make_front_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """(CA, certificate, key): a CA of the test's own and a certificate it signed for Let's Encrypt's API name."""
    ca = make_ca(directory, "front")
    cert, key = make_certificate(ca, LETS_ENCRYPT, "front")
    return ca[0], cert, key


class FrontHandler(http.server.BaseHTTPRequestHandler):
    """CONNECT to Let's Encrypt's name, then TLS as that name, then each request passed on to Pebble."""

    protocol_version = "HTTP/1.1"
    server: FrontServer

    def do_CONNECT(self) -> None:
        if self.path != f"{LETS_ENCRYPT}:443":
            self.send_error(403, f"the ACME front tunnels only to {LETS_ENCRYPT}:443")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.connection = self.server.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb")
        self.close_connection = False

    def do_GET(self) -> None:
        self.pass_on()

    def do_HEAD(self) -> None:
        self.pass_on()

    def do_POST(self) -> None:
        self.pass_on()

    def pass_on(self) -> None:
        path = "/dir" if self.path == "/directory" else self.path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        pebble = http.client.HTTPSConnection("127.0.0.1", self.server.pebble_port, context=self.server.to_pebble)
        try:
            pebble.request(self.command, path, body=body or None, headers=headers)
            reply = pebble.getresponse()
            content = reply.read()
        finally:
            pebble.close()
        self.server.requests.append(f"{self.command} {path} {reply.status}")
        self.send_response(reply.status)
        for name, value in reply.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def log_message(self, format: str, *args: object) -> None:
        pass


class FrontServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext, to_pebble: ssl.SSLContext, pebble_port: int):
        super().__init__(address, FrontHandler)
        self.tls = tls
        self.to_pebble = to_pebble
        self.pebble_port = pebble_port
        self.requests: list[str] = []


@dataclass(frozen=True)
class AcmeBed:
    """Pebble validating against `host`, the front the proxy image sends ACME to, and that image in the registry."""

    host: TestHost
    root: Path  # the root CA of what Pebble issues: curl --cacert it
    proxy_repository: str
    proxy_tag: str
    proxy_next_tag: str  # the same from another build of kamal-proxy (images.KAMAL_PROXY_NEXT): an upgrade's
    front: FrontServer

    def certificates_fetched(self) -> list[str]:
        """The requests that fetched an issued certificate, through the front: one per certificate issued."""
        return [request for request in self.front.requests if request.startswith("POST /certZ/")]

    @classmethod
    @contextlib.contextmanager
    def start(cls, bed: HostBed, host: TestHost, directory: Path) -> Iterator[AcmeBed]:
        env = read_env_file("acme.env")
        for program in ("QUAYSIDE_PEBBLE", "QUAYSIDE_PEBBLE_CHALLTESTSRV"):
            if not os.access(env.get(program, ""), os.X_OK):
                raise BenchMissing(f"{env.get(program) or program} is missing: run {SETUP_STEP}")
        certs = Path(env["QUAYSIDE_PEBBLE_CERTS"])
        directory.mkdir(parents=True, exist_ok=True)
        dns_port, dns_management_port = free_loopback_port(), free_loopback_port()
        pebble_port, management_port = free_loopback_port(), free_loopback_port()
        config = directory / "pebble-config.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{pebble_port}", "managementListenAddress": f"127.0.0.1:{management_port}",
            "certificate": str(certs / "cert.pem"), "privateKey": str(certs / "key.pem"),
            "httpPort": HTTP_PORT, "tlsPort": HTTPS_PORT, "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}))  # fmt: skip
        to_pebble = ssl.create_default_context(cafile=str(certs / "pebble.minica.pem"))
        ca, cert, key = make_front_certificate(directory)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        tls.set_alpn_protocols(["http/1.1"])

        def logs() -> str:
            return "\n".join(f"{log}:\n{log.read_text()[-2000:]}" for log in sorted(directory.glob("*.log")))

        with contextlib.ExitStack() as stack:
            dns = stack.enter_context(_process(directory / "challtestsrv.log", [
                env["QUAYSIDE_PEBBLE_CHALLTESTSRV"], "-defaultIPv4", host.address, "-defaultIPv6", "",
                "-dns01", f"127.0.0.1:{dns_port}", "-doh", "", "-http01", "", "-https01", "", "-tlsalpn01", "",
                "-management", f"127.0.0.1:{dns_management_port}",
            ]))  # fmt: skip
            pebble = stack.enter_context(_process(
                directory / "pebble.log", [env["QUAYSIDE_PEBBLE"], "-config", str(config), "-dnsserver",
                                           f"127.0.0.1:{dns_port}"],
                # No random sleeps before validating, no random refusals of a nonce: the tests wait for neither.
                extra_env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
            ))  # fmt: skip
            wait_for("pebble-challtestsrv answering",
                     lambda: dns.poll() is None and listens(dns_management_port),
                     seconds=20, detail=logs)  # fmt: skip
            wait_for("Pebble's directory", lambda: pebble.poll() is None and _answers(pebble_port, "/dir", to_pebble),
                     seconds=20, detail=logs)  # fmt: skip
            root = directory / "pebble-root.pem"
            root.write_text(_fetch(management_port, "/roots/0", to_pebble))
            front = FrontServer((bed.gateway, 0), tls, to_pebble, pebble_port)
            stack.callback(front.server_close)
            threading.Thread(target=front.serve_forever, name="acme-front", daemon=True).start()
            stack.callback(front.shutdown)
            https_proxy = f"http://{bed.gateway}:{front.server_address[1]}"
            tag = f"{KAMAL_PROXY.rsplit(':', 1)[1]}-acme-{uuid.uuid4().hex[:6]}"
            repository = _proxy_image(directory, ca, https_proxy, KAMAL_PROXY, tag)
            _proxy_image(directory, ca, https_proxy, KAMAL_PROXY_NEXT, f"{tag}-next")
            yield cls(host, root, repository, tag, f"{tag}-next", front)


def _proxy_image(directory: Path, ca: Path, https_proxy: str, base: str, tag: str) -> str:
    """The test stand-in of kamal-proxy built FROM `base`, trusting `ca` and sending HTTPS through `https_proxy`, in
    the registry as `tag`; returns its repository."""
    context = directory / f"proxy-image-{tag}"
    context.mkdir()
    (context / "front-ca.pem").write_bytes(ca.read_bytes())
    (context / "Dockerfile").write_text(
        f"FROM {base}\nCOPY front-ca.pem /etc/ssl/quayside-acme-front.pem\n"
        f"ENV SSL_CERT_FILE=/etc/ssl/quayside-acme-front.pem HTTPS_PROXY={https_proxy}\n"
    )
    repository = f"{registry_address()}/quayside-test/kamal-proxy"
    docker("build", "--quiet", "--tag", f"{repository}:{tag}", str(context))
    docker("push", "--quiet", f"{repository}:{tag}")
    return repository


@contextlib.contextmanager
def _process(log: Path, argv: list[str], extra_env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(extra_env or {})})
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _fetch(port: int, path: str, context: ssl.SSLContext) -> str:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("GET", path, headers={"User-Agent": "quayside-tests"})  # Pebble requires one
        reply = connection.getresponse()
        body = reply.read().decode()
        if reply.status != 200:
            raise RuntimeError(f"Pebble answered {reply.status} to {path}: {body[:200]}")
        return body
    finally:
        connection.close()


def _answers(port: int, path: str, context: ssl.SSLContext) -> bool:
    try:
        _fetch(port, path, context)
    except (OSError, RuntimeError):
        return False
    return True
