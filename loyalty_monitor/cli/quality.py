"""``loyalty validate``: run the data-quality gate on the new landed data and/or the marts, and
deal with the rows it set aside (``--quarantined``, ``--release``, ``--accept``)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from loyalty_core.dates import cli_date, parse_as_of
from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import example, print_json, require_data_dir, share


def _dates(text: str) -> list[date]:
    return [cli_date(part) for part in text.split(",") if part.strip()]


_date = cli_date


def _ids(text: str) -> list[int] | None:
    """``3,4,7`` or ``5-9`` (or both) -> ids; ``all`` -> None (every quarantined row)."""
    if text.strip().lower() == "all":
        return None
    ids: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            first, _, last = part.partition("-")
            ids += list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected quarantine ids (e.g. 3,4,7 or 5-9) or 'all', got {text!r}; to accept whole "
            "landed files and days as they are (a real dip in volume), use --accept-files REASON") from None
    if not ids:
        raise argparse.ArgumentTypeError("expected quarantine ids (e.g. 3,4,7 or 5-9) or 'all'")
    return ids


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def _print_findings(rows: list, header: bool, widths_of: list) -> None:
    """Findings (label, finding) in columns as wide as their longest cell over ``widths_of`` (so two
    blocks line up; fixed widths ran long names together: "set asidelanded_touchpoints")."""
    def cells(label: str, f) -> list[str]:
        return [label, f"{f.suite} [{f.batch}]" if f.batch else f.suite, f.expectation, f.column or "-",
                str(f.observed)]
    titles = ["severity", "suite", "expectation", "column", "observed"]
    every = [titles, *(cells(label, f) for label, f in widths_of)]
    widths = [max(len(c[i]) for c in every) + 2 for i in range(4)]
    for c in ([titles] if header else []) + [cells(label, f) for label, f in rows]:
        print("  " + "".join(text.ljust(width) for text, width in zip(c, widths)) + c[4])


def _print_table(results) -> None:
    for result in results:
        verdict = "PASSED" if result.passed else "FAILED"
        print(f"{result.stage} gate: {verdict}  ({len(result.critical_failures)} critical, "
              f"{len(result.warnings)} warning(s), {result.duration_s:.1f}s)")
        findings = [(f.severity, f) for f in result.critical_failures + result.warnings]
        set_aside = [("set aside", f) for f in result.quarantined]
        if findings:
            _print_findings(findings, header=True, widths_of=findings + set_aside)
        if result.quarantined:
            print(f"  {result.quarantined_rows} row(s) set aside in quarantine, the rest goes on "
                  f"({len(result.quarantine_ids)} new): `loyalty validate --quarantined` lists them")
            _print_findings(set_aside, header=not findings, widths_of=findings + set_aside)
        for note in result.notes:
            print(f"  note: {note}")
    docs = next((r.docs_path for r in reversed(results) if r.docs_path), None)
    if docs:
        print(f"Data Docs: file://{docs}")
        print(f"Gate runs (also offline): file://{Path(docs).with_name('gate_runs.html')}")


def _print_quarantined(rows: list[dict]) -> None:
    if not rows:
        print("no quarantined rows")
        return
    for row in rows:
        what = row["event_id"] or row["customer_id"]
        extra = f"customer {row['customer_id']}, " if row["event_id"] else ""
        print(f"#{row['quarantine_id']} {row['status']:11} {row['dataset']} {what} ({extra}{row['event_date']}) "
              f"quarantined {str(row['quarantined_at'])[:19]} by run {row['gate_run_id']}")
        print(f"    failed: {row['expectation']}")
        print(f"    why:    {row['reason']}")
        print(f"    where:  {'/'.join(str(row['source_file']).split('/')[-2:])} topic {row['kafka_topic']} "
              f"partition {row['kafka_partition']} offset {row['kafka_offset']}")
        if row["status"] != "quarantined":
            print(f"    {row['status']} {str(row['released_at'])[:19]} by {row['released_by']}: "
                  f"{row['release_reason']}")
        original = {k: v for k, v in (row["original"] or {}).items() if v is not None}
        print(f"    values: {json.dumps(original, default=str)}")


def _print_decision(decision, verb: str) -> None:
    changed = ", ".join(str(i) for i in decision.changed) or "none"
    print(f"{verb}: {changed}" + (" (staging takes them in on the next run)" if decision.changed else ""))
    for identifier, why in sorted(decision.still_failing.items()):
        print(f"  #{identifier} still quarantined: {why}")
    for identifier, why in sorted(decision.skipped.items()):
        print(f"  #{identifier} skipped: {why}")


def _quarantine_command(args: argparse.Namespace, settings) -> int:
    # the gate loads Great Expectations: not at import
    from expectations import gate, quarantine

    require_data_dir(settings)  # the quarantine lives there: a wrong path would list none
    if args.quarantined:
        status = None if args.status == "all" else args.status
        rows = quarantine.listing(settings, status=status)
        if args.format == "json":
            print_json({"quarantined": rows, "file": str(quarantine.quarantine_path(settings))})
        else:
            _print_quarantined(rows)
        return 0
    if not (args.reason or "").strip():
        _progress("say why with --reason TEXT: it is recorded with the rows")
        return 2
    if args.release is not False:
        decision = gate.release_rows(settings, args.release, args.reason, by=args.by, progress=_progress)
        verb = "released"
    else:
        decision = gate.accept_rows(settings, args.accept, args.reason, by=args.by)
        verb = "accepted as they are"
    if args.format == "json":
        print_json(decision.to_dict())
    else:
        _print_decision(decision, verb)
    return 1 if decision.still_failing or decision.skipped else 0


def _latest_built_day(settings, schema: str) -> date:
    """The marts' default day: the latest health day built in ``schema``, not today (a pipeline run
    as of yesterday, such as the daily run or the demo, has no health row of today, and checking
    today failed the gate critically); today when the schema has no health rows (the gate then
    says what is missing)."""
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import warehouse

    try:
        with warehouse.open_reader(settings) as con:
            if con.table_exists(schema, "fct_customer_health_daily"):
                day = con.query(f"select max(as_of_date) as d from {schema}.fct_customer_health_daily")[0]["d"]
                if day is not None:
                    _progress(f"marts as of {day}, the latest day built in {schema} (--as-of to choose)")
                    return parse_as_of(day)
    except warehouse.WarehouseError:
        pass
    return parse_as_of(None)


def cmd_validate(args: argparse.Namespace) -> int:
    # the gate loads Great Expectations: not at import
    from expectations import gate

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import gate_runs
    from loyalty_monitor.alerting import notify_data_engineers

    if args.status != "quarantined" and not args.quarantined:  # else the whole gate ran, the option unread
        raise ValueError(f"--status {args.status} goes with --quarantined: `loyalty validate --quarantined "
                         f"--status {args.status}` lists those rows")
    settings = load_settings()
    if args.quarantined or args.release is not False or args.accept is not False:
        return _quarantine_command(args, settings)
    if args.accept_files is not None:
        accepted = gate.accept_landing(settings, args.accept_files)
        print(f"landing data accepted as is: {accepted.notes[0]}")
        return 0
    if args.max_share is not None:
        settings = settings.replace(quality={"quarantine_max_share": args.max_share})
    results = []
    if args.stage in ("landing", "all"):
        results.append(gate.validate_landing(settings, event_dates=args.dates, progress=_progress))
    if args.stage == "marts" or (args.stage == "all" and settings.warehouse.exists()):
        as_of = parse_as_of(args.as_of) if args.as_of else _latest_built_day(settings, args.schema)
        results.append(gate.validate_marts(settings, as_of, schema=args.schema, progress=_progress))
    elif args.stage == "all":
        _progress(f"marts not checked: no warehouse at {settings.warehouse} yet")
    if results:  # the report reads the runs from the warehouse
        gate_runs.record_quietly(settings)
    failed = [r for r in results if not r.passed]
    if args.format == "json":
        print_json({"passed": not failed, "results": [r.to_dict() for r in results]})
    else:
        _print_table(results)
    if args.notify:
        for result in results:
            if not result.passed:
                sent = notify_data_engineers(settings, *gate.failure_notice(result)) or []
            elif result.quarantine_ids:
                sent = notify_data_engineers(settings, *gate.quarantine_notice(result)) or []
            else:
                continue
            channels = ", ".join(f"{s['channel']}{'' if s['ok'] else ' (FAILED)'}" for s in sent)
            _progress(f"data engineers notified via {channels or 'no channel'}")
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="run the data-quality gate (Great Expectations) and build "
                                        "Data Docs; exit 1 on a critical failure",
                       **example("loyalty validate --stage landing",
                                 "loyalty validate --quarantined --format json",
                                 "loyalty validate --release 3,4 --reason \"contract fixed upstream\""))
    p.add_argument("--stage", choices=["landing", "marts", "all"], default="all",
                   help="landing: new landed data; marts: the marts of --schema; all (default): "
                        "landing, then marts if the warehouse exists")
    p.add_argument("--dates", type=_dates, default=None, metavar="D1,D2",
                   help="validate all landed data of these event dates instead of the new files")
    p.add_argument("--as-of", type=_date, default=None, metavar="DATE",
                   help="the health day to check in the marts (default: the latest built in --schema)")
    p.add_argument("--schema", default="build", help="warehouse schema of the marts (default: build)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--max-share", type=share, default=None, metavar="SHARE",
                   help="for this run, set aside failing rows up to this share of a batch instead of "
                        "[quality] quarantine_max_share (e.g. 0.3 to quarantine a broken event type "
                        "and build the rest); 0: stop on any failing row")
    p.add_argument("--no-notify", dest="notify", action="store_false",
                   help="do not notify the data engineers on a critical failure or quarantined rows")
    rows = p.add_argument_group("quarantined rows (docs/quality.md \"Quarantine\")")
    action = rows.add_mutually_exclusive_group()
    action.add_argument("--quarantined", action="store_true",
                        help="list the rows set aside: why, which expectation, their original values")
    action.add_argument("--release", type=_ids, default=False, metavar="IDS",
                        help="after a fix, re-validate these quarantined rows (3,4,7 / 5-9 / all) and "
                             "let those that pass into the warehouse on the next run")
    action.add_argument("--accept", type=_ids, default=False, metavar="IDS",
                        help="take these quarantined rows (3,4,7 / 5-9 / all) into the warehouse as "
                             "they are")
    action.add_argument("--accept-files", metavar="REASON", default=None,
                        help="accept every pending landed file and day as it is (e.g. a real holiday "
                             "dip in volume) so the pipeline can go on; recorded in the run log")
    rows.add_argument("--reason", default=None, help="why (--release, --accept): kept with the rows")
    rows.add_argument("--by", default=None, help="who decides (default: the user running this)")
    rows.add_argument("--status", default="quarantined",
                      choices=["quarantined", "released", "accepted", "superseded", "all"],
                      help="--quarantined lists rows of this status (default: quarantined)")
    p.set_defaults(func=cmd_validate)
