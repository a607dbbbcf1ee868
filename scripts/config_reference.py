"""Prints the configuration reference generated from components/config/, or writes docs/configuration.md.

scripts/config-reference                  the whole reference
scripts/config-reference roles            one section: a top-level key, or secrets
scripts/config-reference --write          regenerate docs/configuration.md (tests check it is current)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.config import reference  # noqa: E402 (after the project root is importable)

DOC: Final = ROOT / "docs" / "configuration.md"


def main(argv: list[str]) -> int:
    sections = reference.section_names()
    parser = argparse.ArgumentParser(
        prog="scripts/config-reference", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("section", nargs="?", choices=sections, help=f"one of: {', '.join(sections)}")
    parser.add_argument("--write", action="store_true", help=f"regenerate {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    if args.write:
        if args.section is not None:
            parser.error("--write regenerates the whole file: leave out the section")
        text = reference.render()
        changed = not DOC.is_file() or DOC.read_text() != text
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text)
        print(f"{DOC.relative_to(ROOT)}: {'written' if changed else 'already current'}")
        return 0
    sys.stdout.write(reference.render(sections=None if args.section is None else [args.section]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
