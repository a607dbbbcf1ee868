"""Memory sizes as the steps read them: lib.sh takes the sizes the config takes, in Docker's units, the same bytes
(components/config/types.py), so what a swap compares with the server's available memory is the limit Docker sets."""

from __future__ import annotations

import re
import subprocess

from components.config.types import MEMORY_PATTERN, memory_bytes
from components.remote import SCRIPTS_DIR
from quayside_cli.commands.details import size_words

SIZES = ["6m", "512m", "1g", "1000g", "1024g", "2048k", "0m", "1.5g", "512M", "512mb", "g", "-1g", "512"]


def lib(program: str, *args: str) -> list[str]:
    done = subprocess.run(
        ["bash", "-c", f'source "{SCRIPTS_DIR}/lib.sh"\n{program}', "lib", *args],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()


def test_the_steps_take_the_memory_sizes_the_config_takes() -> None:
    assert lib('echo "$MEMORY_PATTERN"') == [MEMORY_PATTERN]
    taken = lib('for size in "$@"; do (check_memory --memory "$size" 2>/dev/null) && echo yes || echo no; done', *SIZES)
    assert taken == ["yes" if re.fullmatch(MEMORY_PATTERN, size) else "no" for size in SIZES]


def test_a_size_is_the_same_bytes_in_both_languages_and_said_in_mib_or_gib() -> None:
    sizes = [size for size in SIZES if re.fullmatch(MEMORY_PATTERN, size)]
    assert lib('for size in "$@"; do bytes_of "$size"; done', *sizes) == [str(memory_bytes(size)) for size in sizes]
    assert lib('for bytes in "$@"; do size_words "$bytes"; done', "314572800", "1610612736") == ["300 MiB", "1.5 GiB"]


def test_the_swap_and_quayside_details_say_a_size_alike() -> None:
    sizes = [0, 5 * 2**20 + 1, 2**30 - 1, 2**30, 23 * 2**30 + 123456789, 1000 * 2**30]
    assert lib('for bytes in "$@"; do size_words "$bytes"; done', *map(str, sizes)) == [size_words(n) for n in sizes]
