"""``loyalty``: the one command-line face of Loyalty Monitor.

Each sub-command lives in a module of this package and is a thin adapter: parse arguments, call a library function, print. Library
modules are imported inside the handlers so that ``loyalty produce`` does not pay for importing
Airflow or dbt. No library module imports this file.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys
import tomllib

from loyalty_core import logs
from loyalty_core.settings import load_settings

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


DISTRIBUTION = "loyalty-monitor"


def version() -> str:
    """The installed distribution's version; from pyproject.toml when run from a checkout that is not installed."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        # the command's own dependencies, loaded when it runs (cli/__init__.py)
        from loyalty_core.settings import PROJECT_ROOT

        try:
            with (PROJECT_ROOT / "pyproject.toml").open("rb") as fh:
                return str(tomllib.load(fh)["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty",
        description="Loyalty Monitor: capture every customer touchpoint, score relationship health, "
                    "and warn account managers before customers drift away.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def configure_logging() -> None:
    """Library log lines (the project's modules, Kafka clients, dbt) rendered as the ``log_format``
    setting says: console on a terminal, JSON lines elsewhere (loyalty_core/logs.py)."""
    try:
        fmt = load_settings().log_format
    except Exception:  # noqa: BLE001 - a bad setting is the command's to report, in one line
        fmt = "auto"
    logs.configure(fmt)


#: Files and directories the CLI creates are its owner's only: the data directory holds customer
#: names, notes and account managers' e-mail addresses.
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    command = "loyalty"
    try:
        args = build_parser().parse_args(argv)
        command = f"loyalty {args.command}"
        configure_logging()
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader went away (`loyalty alerts list | head -1`): stop quietly, as Unix tools do.
        # Python's docs: point stdout at devnull, or the flush at exit raises again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + 13  # what a shell reports for a process ended by SIGPIPE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a clear one-line error for users; tracebacks with LOYALTY_DEBUG=1
        if os.environ.get("LOYALTY_DEBUG"):
            raise
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
