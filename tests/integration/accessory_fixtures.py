"""The accessories' bench: a service with its scripts installed and its network made, booted through the same
argv the components build (container.boot_args of postgres.spec, backup.spec, vector.spec), and an S3 store
(moto_server on loopback) that tests read and write over plain HTTP."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from components import steps
from components.accessories import backup, container, postgres, vector
from components.config import Backup, Postgres, Vector
from tests.support import images
from tests.support.docker import docker, free_loopback_port, listens, unique_name
from tests.support.remote import REMOTE_ROOT, fixed_network, install_scripts, run_script
from tests.support.testbed import TestServer

ROOT: Final = Path(__file__).resolve().parents[2]
PASSWORD: Final = "pg-s3cr3t-!@#%&*( p"
PASSPHRASE: Final = "backup passphrase: correct horse battery staple"
S3_KEY_ID: Final = "AKIAQUAYSIDETEST"
S3_SECRET: Final = "quayside/test+secret=key"
S3_NAMESPACE: Final = "{http://s3.amazonaws.com/doc/2006-03-01/}"


# --- S3 on loopback ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Store:
    """moto_server checks no signatures: the test talks to it over plain HTTP, naming the test's access key in an
    unsigned Authorization header (moto answers an anonymous GET of a private object with 403)."""

    endpoint: str

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        headers = {
            "Authorization": f"AWS4-HMAC-SHA256 Credential={S3_KEY_ID}/20260101/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=0",
            "Content-Type": "application/octet-stream",
        }
        request = urllib.request.Request(f"{self.endpoint}/{path}", data=body, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as reply:
            data: bytes = reply.read()
            return data

    def create_bucket(self, bucket: str) -> None:
        self._request("PUT", bucket)

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self._request("PUT", f"{bucket}/{key}", body)

    def get(self, bucket: str, key: str) -> bytes:
        return self._request("GET", f"{bucket}/{key}")

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listing = ElementTree.fromstring(self._request("GET", f"{bucket}?list-type=2&prefix={prefix}"))
        return sorted(node.text or "" for node in listing.iter(f"{S3_NAMESPACE}Key"))


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def running_s3_store() -> Iterator[S3Store]:
    port = free_loopback_port()
    moto = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not _answers(endpoint):
            assert process.poll() is None, "moto_server exited: pip install -r requirements-dev.txt"
            assert time.monotonic() < deadline, "moto_server did not answer within 30 s"
            time.sleep(0.2)
        yield S3Store(endpoint)
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass(frozen=True)
class WriteOnlyBucket:
    """A bucket in a moto_server that checks IAM policies: `writer` may only put objects (s3:PutObject), as a
    write-only backup key; `reader` (a boto3 client) may do anything, for the test to look."""

    endpoint: str
    bucket: str
    writer: tuple[str, str]  # access key id, secret
    reading_key: tuple[str, str]
    reader: Any  # a boto3 client with reading_key


# The requests running_write_only_bucket() makes before moto starts checking policies: the bucket, then a user, its
# policy and its key, twice.
SETUP_REQUESTS: Final = 7


@contextlib.contextmanager
def running_write_only_bucket() -> Iterator[WriteOnlyBucket]:
    import boto3  # type: ignore[import-untyped]  # moto's own dependency: only this fixture needs it

    port = free_loopback_port()
    moto = Path(sys.executable).parent / "moto_server"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not listens(port):  # a connection only: every HTTP request counts against SETUP_REQUESTS
            assert process.poll() is None, "moto_server exited: pip install -r requirements-dev.txt"
            assert time.monotonic() < deadline, "moto_server did not listen within 30 s"
            time.sleep(0.2)
        setup = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": S3_KEY_ID,
                 "aws_secret_access_key": S3_SECRET}  # fmt: skip
        bucket = unique_name("qa-write-only")
        boto3.client("s3", **setup).create_bucket(Bucket=bucket)
        iam = boto3.client("iam", **setup)

        def user(name: str, actions: str) -> tuple[str, str]:
            iam.create_user(UserName=name)
            statement = {
                "Effect": "Allow",
                "Action": actions,
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
            iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [statement]}
            ))  # fmt: skip
            key = iam.create_access_key(UserName=name)["AccessKey"]
            return key["AccessKeyId"], key["SecretAccessKey"]

        writer = user("writer", "s3:PutObject")
        reader_id, reader_secret = user("reader", "s3:*")
        reader = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=reader_id,
                              aws_secret_access_key=reader_secret)  # fmt: skip
        as_writer = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=writer[0],
                                 aws_secret_access_key=writer[1])  # fmt: skip
        assert _denied(lambda: as_writer.list_objects_v2(Bucket=bucket)), "moto checks the writer's policy"
        yield WriteOnlyBucket(endpoint, bucket, writer, (reader_id, reader_secret), reader)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _denied(request: Callable[[], object]) -> bool:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    try:
        request()
    except ClientError as error:
        return bool(error.response["Error"]["Code"] == "AccessDenied")
    return False


# --- a service with accessories ---------------------------------------------------------------------------


@dataclass
class AccessoryService:
    server: TestServer
    name: str

    def run(self, script: str, *args: str, stdin: str = "", timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return run_script(self.server, self.name, script, args, stdin=stdin, timeout_seconds=timeout)

    def boot(self, spec: container.ContainerSpec, secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
        args = container.boot_args(self.name, spec)
        return self.run("accessory.sh", *args, stdin=container.env_file(secrets))

    def remove(self, spec: container.ContainerSpec, *, delete_data: bool = False) -> subprocess.CompletedProcess[str]:
        return self.run("accessory.sh", *container.remove_args(self.name, spec, delete_data=delete_data))

    # --- postgres ---

    def postgres_config(self, **fields: object) -> Postgres:
        return Postgres.model_validate({"image": images.POSTGRES, "ready_timeout": 60, **fields})

    def postgres_spec(self, config: Postgres) -> container.ContainerSpec:
        return postgres.spec(self.name, config)

    def boot_postgres(self, config: Postgres, *, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
        return self.boot(postgres.spec(self.name, config), {"POSTGRES_PASSWORD": password})

    def start_postgres(self, config: Postgres) -> str:
        done = self.boot_postgres(config)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def sql(self, statement: str, *, database: str | None = None) -> str:
        """psql as the service's user, in the Postgres container (over its local socket)."""
        user = self.name.replace("-", "_")
        return docker(
            "exec", self.container("postgres"), "psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-tA",
            "-U", user, "-d", database or user, "-c", statement,
        )  # fmt: skip

    # --- backup ---

    def backup_config(self, store: S3Store, bucket: str, **fields: object) -> Backup:
        """The schedule, unless a test names one, fires half a day from now: a scheduled run (the default
        @daily is midnight UTC) would back up and prune beside what the test itself does."""
        now = datetime.now(UTC)
        away = {"schedule": f"{now.minute} {(now.hour + 12) % 24} * * *"}
        return Backup.model_validate(
            {"s3": {"bucket": bucket, "endpoint": store.endpoint}, "host_network": True, **away, **fields}
        )

    def boot_backup(
        self,
        config: Backup,
        pg: Postgres,
        *,
        passphrase: str | None = PASSPHRASE,
        s3_key: tuple[str, str] = (S3_KEY_ID, S3_SECRET),
    ) -> subprocess.CompletedProcess[str]:
        """None for `passphrase`: the config names a public key instead."""
        secrets = {
            "PGPASSWORD": PASSWORD, "AWS_ACCESS_KEY_ID": s3_key[0], "AWS_SECRET_ACCESS_KEY": s3_key[1],
            **({"BACKUP_PASSPHRASE": passphrase} if passphrase is not None else {}),
        }  # fmt: skip
        return self.boot(backup.spec(self.name, config, pg), secrets)

    def backup_script(self, action: str, *extra: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """backup.sh ACTION as `quayside backup` and `quayside restore` run it (restore: the latest backup)."""
        latest = {"backup": "latest"} if action == "restore" else {}
        args = steps.BACKUP.argv(action, service=self.name, **{**latest, **steps.BACKUP.parse(extra)})
        return self.run(steps.BACKUP.name, *args, stdin=stdin)

    # --- vector ---

    def boot_vector(self, config: Vector, token: str) -> subprocess.CompletedProcess[str]:
        return self.boot(vector.spec(self.name, config), {"BETTERSTACK_TOKEN": token})

    # --- what the server shows ---

    def container(self, accessory: str) -> str:
        return f"{self.name}-{accessory}"

    def inspect(self, accessory: str, template: str) -> str:
        return docker("inspect", "--type", "container", "--format", template, self.container(accessory))

    def remote_path(self, *parts: str) -> str:
        return "/".join([REMOTE_ROOT, self.name, *parts])

    def remote(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.server.run(shlex.join(argv), check=False)

    def remove_everything(self) -> None:
        ids = docker("ps", "--all", "--quiet", "--filter", f"label=quayside.service={self.name}").split()
        if ids:
            docker("rm", "--force", *ids, check=False)
        docker("network", "rm", self.name, fixed_network(self.name), check=False)
        self.remote("rm", "-rf", f"{REMOTE_ROOT}/{self.name}")


def new_accessory_service(server: TestServer) -> AccessoryService:
    service = AccessoryService(server, unique_name("qa"))
    install_scripts(server, service.name)
    done = service.run(steps.HOST.name, *steps.HOST.argv(service=service.name, stack_id=uuid.uuid4().hex))
    assert done.returncode == 0, done.stderr
    return service


def build_backup_image(test_server: TestServer) -> str:
    """The backup image, built the way `pulumi up` builds it on a server: backup.sh image FROM the Postgres image
    (scripts/setup.d/accessory-images.sh builds it ahead, so this is a no-op then)."""
    service = unique_name("qa-image")
    install_scripts(test_server, service)
    try:
        done = run_script(test_server, service, "backup.sh", backup.image_args(images.POSTGRES), timeout_seconds=900)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        test_server.run(shlex.join(["rm", "-rf", f"{REMOTE_ROOT}/{service}"]), check=False)
    return backup.image_tag(images.POSTGRES)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
