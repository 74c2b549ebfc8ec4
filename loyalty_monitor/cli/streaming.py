"""``loyalty produce``, ``loyalty consume``, ``loyalty dead-letters list|export|replay|purge``, ``loyalty land-offline``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import example, output_file, print_json


def cmd_produce(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.progress import produce_progress

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from streaming.producer import produce_lines, read_lines, topic_to_write

    settings = load_settings()
    if args.file == "-":
        stream, total = sys.stdin.buffer, None
    else:
        stream, total = open(args.file, "rb"), os.path.getsize(args.file)
    try:
        topic, created = topic_to_write(settings, args.topic, args.create, args.partitions)
        if created:
            print(f"created topic {topic}", file=sys.stderr)
        update, done = produce_progress(total)
        try:
            result = produce_lines(settings, read_lines(stream), topic, key_field=args.key_field,
                                   on_progress=update)
        finally:
            done()
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    print(result.summary())
    return 1 if result.failed else 0


def cmd_consume(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.progress import backlog_progress
    from streaming import topics

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from streaming.consumer import run_consumer

    settings = load_settings()
    # one clear line and exit 1 when no broker answers, not a log flood; or when a topic is missing
    topics.require_input_topics(settings, topics.probe(settings))
    update, done = backlog_progress()  # started before the consumer's log binds to stderr (rich redirects it)
    try:
        summary = run_consumer(settings, until_idle=args.until_idle, idle_s=args.idle_seconds,
                               max_records=args.max_records, workers=args.workers, on_progress=update)
    finally:
        done()
    print(summary.line())
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from streaming import topics

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from streaming.dead_letters import list_dead_letters, replay_dead_letters

    if args.corrected and args.action != "replay" or args.out and args.action != "export":
        raise ValueError("--corrected goes with replay, --out with export")
    if args.corrected and args.error_code:
        raise ValueError("replay --corrected sends the lines of its file: choose them with export --error-code")
    # a missing option is said before the broker is asked: it is the user's to fix either way
    if args.action == "purge" and not args.customer and not args.erased:
        raise ValueError("purge needs --customer ID (repeatable) and/or --erased")
    if args.action == "export" and not args.out:
        raise ValueError("export needs --out FILE (JSON Lines to correct, then `loyalty dead-letters replay "
                         "--corrected FILE`)")
    settings = load_settings()
    topics.probe(settings)
    if args.action == "purge":
        # the command's own dependencies, loaded when it runs (cli/__init__.py)
        from streaming.dead_letters import purge_dead_letters

        result = purge_dead_letters(settings, customer_ids=set(args.customer or ()), erased=args.erased)
        print(result.summary(settings.topic_dead_letter))
        return 0
    if args.action == "export":
        # the command's own dependencies, loaded when it runs (cli/__init__.py)
        from streaming.dead_letters import export_dead_letters

        exported = export_dead_letters(settings, Path(args.out), error_code=args.error_code,
                                       include_replayed=args.include_replayed)
        print(f"{exported.summary(Path(args.out))}. Correct each line's value (value_text, value_base64) "
              f"and key, delete the lines not to send, then: loyalty dead-letters replay --corrected {args.out}; "
              f"delete the file afterwards")
        return 0
    if args.action == "replay" and args.corrected:
        # the command's own dependencies, loaded when it runs (cli/__init__.py)
        from streaming.dead_letters import replay_corrected

        corrected = replay_corrected(settings, Path(args.corrected), include_replayed=args.include_replayed)
        print(corrected.summary())
        return 1 if corrected.refused else 0
    if args.action == "replay":
        result = replay_dead_letters(settings, error_code=args.error_code,
                                     on_progress=lambda n: print(f"replayed {n:,}", file=sys.stderr),
                                     include_replayed=args.include_replayed)
        print(result.summary())
        return 0
    records = list_dead_letters(settings, limit=args.limit, error_code=args.error_code)
    if args.format == "json":
        print_json([r.as_dict(preview_chars=None) for r in records])
        return 0
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from rich.console import Console

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from rich.table import Table

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from rich.text import Text

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from streaming.dead_letters import shown

    table = Table(title=f"{len(records)} dead letters in {settings.topic_dead_letter}")
    for column in ("offset", "failed at", "source", "code", "detail", "key", "value", "replayed"):
        table.add_column(column, overflow="fold")
    for r in records:
        d = r.as_dict(preview_chars=60)
        # Message data (and the dlq.* headers beside it) is anyone's bytes: escaped, so that an escape
        # sequence cannot clear the terminal or a bidi control reorder the row, and given as Text,
        # so that "[/]" or "[red]" in it is shown, not read as rich markup
        cells = (str(r.offset), r.failed_at[:19], f"{r.source_topic}[{r.source_partition}]@{r.source_offset}",
                 r.error_code, r.error_detail[:80], d["key"] or "", d["value"] or "(null)", (r.replayed_at or "")[:19])
        table.add_row(*(Text(shown(cell)) for cell in cells))
    Console(width=max(120, Console().width)).print(table)
    return 0


def cmd_land_offline(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from streaming.landing import land_jsonl_offline

    if not (args.touchpoints or args.customers):
        raise ValueError("nothing to land: give --touchpoints FILE and/or --customers FILE "
                         "(JSON Lines, as `loyalty generate` writes them)")
    settings = load_settings()
    results = land_jsonl_offline(settings, args.touchpoints, args.customers)
    for dataset, r in results.items():
        rejects = f"; rejects in {r.rejects_file}" if r.rejects_file else ""
        print(f"{dataset}: {r.lines} lines, {r.landed} landed in {len(r.files)} files, "
              f"{r.rejected} rejected{rejects}")
    print(f"landing zone: {settings.landing}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help="publish JSON Lines (a file or - for stdin) to a Kafka topic",
                       **example("loyalty produce data/generated/touchpoints.jsonl --topic touchpoints"))
    p.add_argument("file", help="JSON Lines file, or - for standard input")
    p.add_argument("--topic", required=True,
                   help="touchpoints, customers (the configured names) or any existing topic name")
    p.add_argument("--create", action="store_true",
                   help="create the topic if the broker does not have it (default: refuse, listing the topics)")
    p.add_argument("--partitions", type=int, default=None,
                   help="with --create: partitions of a new topic (default: the configured count, else 1)")
    p.add_argument("--key-field", default="customer_id", help="JSON field used as message key")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("consume", help="run the landing consumer (validate, land Parquet, dead-letter)",
                       **example("loyalty consume --until-idle && loyalty run"))
    p.add_argument("--until-idle", action="store_true",
                   help="exit once caught up (no new messages for --idle-seconds and lag 0)")
    p.add_argument("--idle-seconds", type=float, default=1.0)
    p.add_argument("--max-records", type=int, default=None, help="stop after this many messages")
    p.add_argument("--workers", type=int, default=None,
                   help="decode worker processes (default 0: decode in the consumer process)")
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("dead-letters", help="list, export, replay or purge messages of the dead-letter topic",
                       **example("loyalty dead-letters list --limit 20 --error-code schema_violation",
                                 "loyalty dead-letters export --error-code bad_timestamp --out fix.jsonl",
                                 "loyalty dead-letters replay --corrected fix.jsonl   # after correcting fix.jsonl"))
    p.add_argument("action", choices=["list", "export", "replay", "purge"])
    p.add_argument("--customer", action="append", metavar="ID",
                   help="purge: the dead letters of this customer (key or customer_id); repeatable")
    p.add_argument("--erased", action="store_true",
                   help="purge: the dead letters of every customer in the erasure register")
    p.add_argument("--limit", type=int, default=None, help="list: only the newest N")
    p.add_argument("--error-code", default=None,
                   help="only dead letters with this error code (oversized, not_utf8, not_json, not_object, "
                        "null_value, schema_violation, bad_timestamp, key_mismatch, bad_key, unlandable, "
                        "decode_failed)")
    p.add_argument("--include-replayed", action="store_true",
                   help="replay, export: also dead letters an earlier replay already sent (default: each once)")
    p.add_argument("--out", type=output_file, default=None, metavar="FILE",
                   help="export: the JSON Lines file to write, one dead letter per line, its message to correct")
    p.add_argument("--corrected", default=None, metavar="FILE",
                   help="replay: send the corrected messages of an edited export instead of the original bytes")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_dead_letters)

    p = sub.add_parser("land-offline",
                       help="land generator JSON Lines files directly (dev and dbt tests; no Kafka)",
                       **example("loyalty land-offline --touchpoints data/generated/touchpoints.jsonl "
                                 "--customers data/generated/customers.jsonl"))
    p.add_argument("--touchpoints", default=None, help="touchpoints.jsonl")
    p.add_argument("--customers", default=None, help="customers.jsonl")
    p.set_defaults(func=cmd_land_offline)
