"""``loyalty broker start|stop|status`` and ``loyalty config``."""

from __future__ import annotations

import argparse
import json

from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import example, print_json


def cmd_broker(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import broker

    settings = load_settings(broker_port=args.port or None)
    if args.action == "start":
        state = broker.start(settings)
        print(f"embedded broker (Tansu, in-memory: data is lost when it stops) running at "
              f"{state.bootstrap_servers}, pid {state.pid}; log: {state.log_file}")
        return 0
    if args.action == "stop":
        print("broker stopped" if broker.stop(settings) else "no embedded broker was running")
        return 0
    info = broker.status(settings)
    print_json(info)
    return 0 if info.get("running") and "error" not in info else 1


def cmd_config(args: argparse.Namespace) -> int:
    """Each effective setting, secrets masked, and where its value came from: ``default``, the
    settings file's path, a ``LOYALTY_*`` variable, or the embedded broker (bootstrap_servers)."""
    rows = load_settings().described()
    if args.format == "json":
        print_json(rows)
        return 0
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        value = row["value"]
        shown = value if isinstance(value, str) else json.dumps(value)
        print(f"{row['name']:<{width}}  {shown if shown != '' else '(empty)'}  [{row['source']}]")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="start, stop or inspect the embedded Kafka-compatible broker",
                       **example("loyalty broker start   # then: loyalty broker status"))
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--port", type=int, default=0,
                   help="listen port (default: LOYALTY_BROKER_PORT or a free one)")
    p.set_defaults(func=cmd_broker)
    p = sub.add_parser("config", help="print the effective settings, secrets masked, and where each came from",
                       **example("LOYALTY_DATA_DIR=/srv/loyalty loyalty config",
                                 "loyalty config --format json"))
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: name, value, [source] per line (default); json: a list of {name, value, source}")
    p.set_defaults(func=cmd_config)
