"""Command line: check a configuration file, print the effective settings or the key reference.

    python -m reconciler.config check [FILE]        # validate FILE + environment; exit 2 with the problems
    python -m reconciler.config show [FILE]         # the effective settings as JSON (secrets masked)
    python -m reconciler.config reference [--write DOC]
    python -m reconciler.config parameters [FILE] [--json]
        # the template parameters the file decides, for
        # sam deploy --parameter-overrides "$(python -m reconciler.config parameters FILE)"
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError
from .loader import config_warnings, load_settings
from .reference import effective_config, embed, reference_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.config")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("check", "show"):
        cmd = sub.add_parser(name)
        cmd.add_argument("file", nargs="?", help="a blacksmith.conf (YAML); default: environment only")
    params = sub.add_parser("parameters")
    params.add_argument("file", nargs="?", help="a blacksmith.conf (YAML); default: environment only")
    params.add_argument("--json", action="store_true", help="a JSON object instead of Key=Value pairs")
    ref = sub.add_parser("reference")
    ref.add_argument("--write", metavar="DOC", help="replace the generated table inside DOC")
    args = parser.parse_args(argv)

    if args.command == "reference":
        if args.write:
            try:
                with open(args.write, encoding="utf-8") as fh:
                    text = fh.read()
                with open(args.write, "w", encoding="utf-8") as fh:
                    fh.write(embed(text))
            except (OSError, UnicodeDecodeError) as exc:
                print(f"error: cannot update {args.write}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
                return 2
        else:
            print(reference_table())
        return 0

    try:
        file_text: str | None = None
        if args.file:
            with open(args.file, encoding="utf-8") as fh:
                file_text = fh.read()
        settings = load_settings(None, file_text, args.file or "blacksmith.conf")
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"error: cannot read {args.file}: not UTF-8 text; accepted: a YAML text file", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in config_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    if args.command == "parameters":
        values = settings.reconciler.template_parameters()
        print(json.dumps(values) if args.json else " ".join(f'{k}="{v}"' for k, v in values.items()))
        return 0
    if args.command == "show":
        print(effective_config(settings))
    else:
        print(
            f"ok: {len(settings.cf_foundations)} CF foundation(s), {len(settings.bosh_directors)} BOSH director(s), "
            f"vault {'configured' if settings.vault.address else 'not configured'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
