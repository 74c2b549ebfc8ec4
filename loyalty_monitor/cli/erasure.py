"""``loyalty erase CUSTOMER_ID... --by WHO`` and ``loyalty erasures`` (docs/event-contract.md, "Erasure")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import example, print_json, require_data_dir


def cmd_erase(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_core import locks

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import erasure

    if args.pending and args.customer_id:
        # --pending applies the landed tombstones only: the ids would be silently ignored
        raise ValueError(f"give customer ids or --pending, not both ({' '.join(args.customer_id)} with --pending): "
                         "run `loyalty erase ID... --by WHO` for the ids")
    if not args.pending and not args.customer_id:
        raise ValueError("no customer id given: `loyalty erase ID... --by WHO`, or `--pending` to apply the "
                         "landed tombstones")
    settings = load_settings()
    require_data_dir(settings)  # a misspelt one would get a register of its own, and nothing erased
    # Not while a pipeline run reads or writes the same landing zone and warehouse.
    with locks.exclusive(settings.data_dir / "pipeline.lock", "the pipeline", settings.lock_timeout_s):
        if args.pending:
            report = erasure.apply_erasures(settings, requested_by=args.by)
        else:
            report = erasure.erase_customers(settings, args.customer_id, requested_by=args.by)
    print(report.summary())
    for note in report.notes:
        print(f"note: {note}")
    for customer_id in report.not_found:
        print(f"warning: nothing was found of customer {customer_id!r} (no landed row, no warehouse row): "
              "check the id (`loyalty alerts list`, `loyalty explain ID`); it is recorded as erased all the same, "
              "so whatever lands under it later is erased too; no other file was searched for it (an id found "
              "nowhere may be an ordinary word, such as 'AB' in every 'Berg Plast AB')", file=sys.stderr)
    print("Kafka still holds what was sent: see docs/operations.md (retention, compaction) and "
          "`loyalty dead-letters purge --erased`.")
    return 0


def cmd_erasures(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import erasure

    settings = load_settings()
    require_data_dir(settings)
    rows = erasure.erasures(settings)
    damaged = erasure.unreadable_lines(settings), erasure.register_path(settings)
    if args.format == "json":
        print_json(rows)
        return _unreadable_warning(*damaged)
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from rich.console import Console

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from rich.table import Table

    title = f"{len(rows)} erasures (customers as keyed hashes)"
    if damaged[0]:
        title += f"; {len(damaged[0])} line(s) of the register UNREADABLE: see the warning below"
    table = Table(title=title)
    for column in ("requested at", "by", "reason", "customer (keyed hash)", "completed", "removed"):
        table.add_column(column, overflow="fold")
    for r in rows:
        removed = ", ".join(f"{k} {v}" for k, v in sorted(r["removed"].items()) if k != "warehouse_tables")
        table.add_row(str(r.get("requested_at") or ""), str(r.get("requested_by") or ""), str(r.get("reason") or ""),
                      str(r.get("subject") or "")[:32] + "…", str(r.get("completed_at") or "NOT COMPLETED"), removed)
    Console(width=max(120, Console().width)).print(table)
    return _unreadable_warning(*damaged)


def _unreadable_warning(unreadable: list[int], register: Path) -> int:
    """Exit status 1 and a warning on stderr when lines of the register could not be read: the
    register is what keeps erased customers erased, and "0 erasures" read as all is well."""
    if not unreadable:
        return 0
    shown = ", ".join(map(str, unreadable[:20])) + (", ..." if len(unreadable) > 20 else "")
    print(f"WARNING: {len(unreadable)} line(s) of the erasure register {register} could not be read (line "
          f"{shown}) and are not listed: each may be an erasure that is no longer known, whose customer's rows "
          "would stay when they land again. Restore the register from the backup of the data directory "
          '(docs/operations.md, "Erasure: backing up the register"); a last line cut short by a crash is the '
          "erasure that was running then: run it again (`loyalty erase --pending --by WHO` for a tombstone, "
          "`loyalty erase ID --by WHO` for an id)", file=sys.stderr)
    return 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("erase", help="erase customers from the landing zone, warehouse, outbox and every file",
                       **example("loyalty erase C000042 C000043 --by dpo@example.com"))
    p.add_argument("customer_id", nargs="*", help="the customer ids to erase now")
    p.add_argument("--by", required=True, help="who requested the erasure (recorded)")
    p.add_argument("--pending", action="store_true",
                   help="instead: apply the tombstones in the landing zone now (as each pipeline run does)")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("erasures", help="list the recorded erasures (who, when, what was removed)",
                       **example("loyalty erasures --format json"))
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_erasures)
