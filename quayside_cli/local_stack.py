"""Where quayside keeps its caches, and the `local` stack's Pulumi settings: its state in a file backend under the
cache, its secrets under a fixed passphrase (the stack's only secret is the loopback server's key).

The `quayside` command, the tests and the bench read them here; scripts/lib/common.sh and scripts/lib/local-stack.sh
are the bash copy that scripts/up and scripts/down source, and tests/unit/test_local_stack.py pins that the two agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

CACHE: Final = Path(os.environ.get("QUAYSIDE_CACHE", Path.home() / ".cache" / "quayside"))
# Built tools (pulumi, kamal-proxy, actionlint), put on PATH by set-up.
BIN: Final = CACHE / "bin"
# The loopback test server, the registry and the files tests read (keys, ports).
TESTBED: Final = CACHE / "testbed"
STATE: Final = CACHE / "state"
NAME: Final = "local"
PASSPHRASE: Final = "quayside-local-stack"


def env() -> dict[str, str]:
    """What `pulumi` needs for the local stack (its state directory made first)."""
    STATE.mkdir(parents=True, exist_ok=True)
    return {
        "PULUMI_BACKEND_URL": f"file://{STATE}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "1",
    }
