"""``loyalty``: the one command-line face of Loyalty Monitor.

Each sub-command lives in a module of this package and is a thin adapter: parse arguments, call a library function, print. Library
modules are imported inside the handlers so that ``loyalty produce`` does not pay for importing
Airflow or dbt. No library module imports this file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys


# Sub-command modules, in the order `loyalty --help` lists them. Each module in this package
# defines `register(sub)` for its commands; add a feature's module here.
COMMAND_MODULES = [
    "loyalty_monitor.cli.report",     # demo (the main job) and report first: what newcomers and leaders run
    "loyalty_monitor.cli.broker",
    "loyalty_monitor.cli.generate",
    "loyalty_monitor.cli.streaming",
    "loyalty_monitor.cli.warehouse",
    "loyalty_monitor.cli.quality",
    "loyalty_monitor.cli.pipeline",
    "loyalty_monitor.cli.cases",      # after pipeline: adds ack/snooze/close/feedback to `loyalty alerts`
    "loyalty_monitor.cli.web",
    "loyalty_monitor.cli.explain",
    "loyalty_monitor.cli.erasure",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty",
        description="Loyalty Monitor: capture every customer touchpoint, score relationship health, "
                    "and warn account managers before customers drift away.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


#: Files and directories the CLI creates are its owner's only: the data directory holds customer
#: names, notes and account managers' e-mail addresses.
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a clear one-line error for users; tracebacks with LOYALTY_DEBUG=1
        if os.environ.get("LOYALTY_DEBUG"):
            raise
        print(f"loyalty {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
