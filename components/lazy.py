"""Provider SDKs imported on first use: a stack that builds no image and creates no Hetzner server never loads
pulumi_docker or pulumi_hcloud, whose generated modules take about a tenth of a second each to import on every
`pulumi up` and preview."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """The module `name`, executed at its first attribute access (importlib's LazyLoader); the same object that
    `import name` gives from then on."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}: install requirements.txt into the project's .venv")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
