"""``loyalty validate``: run the data-quality gate on the new landed data and/or the marts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from datetime import date, datetime, timezone

from loyalty_monitor.cli._common import print_json
from loyalty_monitor.settings import load_settings


def _dates(text: str) -> list[date]:
    try:
        return [date.fromisoformat(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD[,YYYY-MM-DD...]: {exc}") from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD: {exc}") from None


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def _print_table(results) -> None:
    for result in results:
        verdict = "PASSED" if result.passed else "FAILED"
        print(f"{result.stage} gate: {verdict}  ({len(result.critical_failures)} critical, "
              f"{len(result.warnings)} warning(s), {result.duration_s:.1f}s)")
        findings = result.critical_failures + result.warnings
        if findings:
            print(f"  {'severity':9}{'suite':34}{'expectation':44}{'column':22}observed")
            for f in findings:
                suite = f"{f.suite} [{f.batch}]" if f.batch else f.suite
                print(f"  {f.severity:9}{suite:34}{f.expectation:44}{(f.column or '-'):22}{f.observed}")
        for note in result.notes:
            print(f"  note: {note}")
    docs = next((r.docs_path for r in reversed(results) if r.docs_path), None)
    if docs:
        print(f"Data Docs: file://{docs}")
        print(f"Gate runs (also offline): file://{Path(docs).with_name('gate_runs.html')}")


def cmd_validate(args: argparse.Namespace) -> int:
    from expectations import gate

    settings = load_settings()
    if args.accept is not None:
        accepted = gate.accept_landing(settings, args.accept)
        print(f"landing data accepted as is: {accepted.notes[0]}")
        return 0
    results = []
    if args.stage in ("landing", "all"):
        results.append(gate.validate_landing(settings, event_dates=args.dates, progress=_progress))
    if args.stage == "marts" or (args.stage == "all" and settings.warehouse.exists()):
        as_of = args.as_of or datetime.now(timezone.utc).date()
        results.append(gate.validate_marts(settings, as_of, schema=args.schema, progress=_progress))
    elif args.stage == "all":
        _progress(f"marts not checked: no warehouse at {settings.warehouse} yet")
    failed = [r for r in results if not r.passed]
    if args.format == "json":
        print_json({"passed": not failed, "results": [r.to_dict() for r in results]})
    else:
        _print_table(results)
    if failed and args.notify:
        for result in failed:
            sent = gate.notify_failure(settings, result)
            channels = ", ".join(f"{s['channel']}{'' if s['ok'] else ' (FAILED)'}" for s in sent)
            _progress(f"data engineers notified via {channels or 'no channel'}")
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="run the data-quality gate (Great Expectations) and build "
                                        "Data Docs; exit 1 on a critical failure")
    p.add_argument("--stage", choices=["landing", "marts", "all"], default="all",
                   help="landing: new landed data; marts: the marts of --schema; all (default): "
                        "landing, then marts if the warehouse exists")
    p.add_argument("--dates", type=_dates, default=None, metavar="D1,D2",
                   help="validate all landed data of these event dates instead of the new files")
    p.add_argument("--as-of", type=_date, default=None, metavar="DATE",
                   help="the health day to check in the marts (default: today, UTC)")
    p.add_argument("--schema", default="build", help="warehouse schema of the marts (default: build)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--accept", metavar="REASON", default=None,
                   help="accept the landed data as it is (e.g. a real holiday dip in volume) so the "
                        "pipeline can go on; the reason is recorded in the run log")
    p.add_argument("--no-notify", dest="notify", action="store_false",
                   help="do not notify the data engineers on a critical failure")
    p.set_defaults(func=cmd_validate)
