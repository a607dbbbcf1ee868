"""`python -m quayside_cli`: the same as the `quayside` command."""

from __future__ import annotations

import sys

from quayside_cli.main import main

sys.exit(main())
