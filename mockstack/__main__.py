"""``python -m mockstack <command>``: the offline stack's command line.

Minimal entry point with the ``generate`` subcommand; the cfworld helper's CLI (``serve``)
merges into this file.
"""

from __future__ import annotations

import argparse
import sys

from mockstack import generator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mockstack", description="Offline CF/BOSH/Vault stack")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser("generate", help="write a generated world and its expected outcome")
    generator.add_generate_arguments(gen)
    args = parser.parse_args(argv)
    if args.command == "generate":
        return generator.run_generate(args)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
