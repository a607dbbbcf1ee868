"""What the program loads: a stack that builds no image and has no Hetzner server never runs the docker or hcloud
provider SDKs' generated modules, which every `pulumi up` and preview would otherwise spend time importing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.config.examples import HOST_KEY

ROOT = Path(__file__).resolve().parents[2]

# The program's modules, then one stack deployed under mocks, in a fresh interpreter; prints which provider SDK
# modules ran (a lazily imported package is in sys.modules before it runs; its submodules are not).
PROGRAM = textwrap.dedent("""
    import json, sys
    import pulumi

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            digest = {"repoDigest": "ghcr.io/acme/web@sha256:" + "0" * 64} if args.typ.startswith("docker:") else {}
            return args.name, {**args.inputs, **digest}

        def call(self, args):
            return {}, None

    pulumi.runtime.set_mocks(Mocks(), preview=False)
    from components import config, stack

    stack_config = config.parse(json.loads(sys.argv[1]), secrets_set={"ssh_private_key", "registry_password"})

    @pulumi.runtime.test
    def deploy():
        deployment = stack.deploy(stack_config, lambda name: pulumi.Output.secret("secret"))
        return pulumi.Output.all(*deployment.outputs().values())

    deploy()
    print(json.dumps(sorted(name for name in sys.modules if name.startswith(("pulumi_docker.", "pulumi_hcloud.")))))
""")


def provider_modules_run(stack_config: Mapping[str, Any]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(stack_config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return modules


def test_a_stack_of_prebuilt_images_on_an_existing_server_runs_neither_docker_nor_hcloud_sdk() -> None:
    stack_config = {
        "service": "acme",
        "server": {"provider": "existing", "host": "203.0.113.7", "host_key": HOST_KEY},
        "roles": {"web": {"image": "ghcr.io/acme/web:1.0", "hosts": ["acme.com"], "health": {"path": "/up"}}},
    }

    assert provider_modules_run(stack_config) == []


def test_an_image_built_from_a_context_loads_the_docker_sdk_when_it_is_used(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    stack_config = {
        "service": "acme",
        "server": {"provider": "existing", "host": "203.0.113.7", "host_key": HOST_KEY},
        "registry": {"server": "ghcr.io", "username": "acme"},
        "roles": {"web": {"image": {"context": str(tmp_path)}, "hosts": ["acme.com"], "health": {"path": "/up"}}},
    }

    loaded = provider_modules_run(stack_config)

    assert "pulumi_docker.image" in loaded and not any(name.startswith("pulumi_hcloud.") for name in loaded), loaded
