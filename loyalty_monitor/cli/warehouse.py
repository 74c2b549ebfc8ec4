"""``loyalty warehouse build|load|publish|status|docs|check-scoring``: the dbt warehouse."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loyalty_core.dates import cli_date
from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import example, print_json


def _progress(node) -> None:
    mark = "ok" if node.status in ("success", "pass", "no-op") else node.status.upper()
    if node.resource_type == "model" or mark != "ok":
        print(f"  {mark:5} {node.resource_type:9} {node.name} ({node.seconds:.1f}s)", file=sys.stderr, flush=True)


def cmd_build(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import warehouse

    settings = load_settings()
    kind = "full refresh" if args.full_refresh else "incremental"
    where = (f"PostgreSQL {settings.pg_user}@{settings.pg_host}:{settings.pg_port}/{settings.pg_database}"
             if warehouse.is_postgres(settings) else settings.warehouse)
    print(f"building the warehouse ({kind}, as of {args.as_of or 'today'}) in {where}", file=sys.stderr)
    result = warehouse.build(settings, as_of=args.as_of, full_refresh=args.full_refresh,
                             select=args.select, on_node=_progress, unit_tests=args.unit_tests,
                             refit=args.refit)
    print(result.summary())
    if args.select is None:
        # the command's own dependencies, loaded when it runs (cli/__init__.py)
        from loyalty_monitor.drift import population

        fitted = population.refresh(settings, warehouse.parse_as_of(args.as_of), refit=args.refit or args.full_refresh)
        print(f"drift model population: P(alive) of {fitted.customers} customers"
              f"{' (BG/NBD refitted)' if fitted.refitted else ''}")
        if args.refit:
            # the command's own dependencies, loaded when it runs (cli/__init__.py)
            from loyalty_monitor.drift import mixture

            fits = mixture.backfill(settings)
            if fits:
                print(f"drift model mixture weights: {len(fits)} weekly fits over the history; "
                      "scoring the history with them (full refresh)", file=sys.stderr)
                result = warehouse.build(settings, as_of=args.as_of, full_refresh=True, on_node=_progress)
                print(result.summary())
    if args.publish:
        marts = warehouse.publish(settings)
        print(f"published {len(marts)} marts to schema {warehouse.PUBLISHED_SCHEMA}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import warehouse

    settings = load_settings()
    if not warehouse.is_postgres(settings):
        print("the warehouse is DuckDB: dbt reads the landed Parquet files in place, nothing to load "
              "(set dbt_target = \"postgres\" / LOYALTY_DBT_TARGET=postgres for PostgreSQL)")
        return 0
    result = warehouse.load(settings)
    print(f"landing zone loaded into PostgreSQL schema landing: {result.summary()}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import warehouse

    marts = warehouse.publish(load_settings())
    print(f"published {len(marts)} marts to schema {warehouse.PUBLISHED_SCHEMA}: {', '.join(marts)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import warehouse

    settings = load_settings()
    schema = args.schema
    span = warehouse.query(settings, "select min(as_of_date) as first, max(as_of_date) as latest "
                                     f"from {schema}.fct_customer_health_daily")[0]
    first, latest = span["first"], span["latest"]
    if latest is None:
        raise warehouse.WarehouseError(f"{schema}.fct_customer_health_daily is empty")
    day = args.as_of or latest
    if not first <= day <= latest:  # empty counts would read as "no customers, no alerts"
        raise warehouse.WarehouseError(f"{schema} has no day {day}: its days run from {first} to {latest}; "
                                       "choose an --as-of in that range")
    # open on that day: begun by then and not ended before it (an ended episode's end is its last day)
    alerts = warehouse.query(settings, f"select rule, count(*) as episodes from {schema}.fct_churn_alerts "
                                       "where alert_date <= ? and (episode_end_date is null or episode_end_date >= ?) "
                                       "group by rule order by rule", [day, day])
    print_json({"schema": schema, "as_of_date": str(day), "latest_day": str(latest),
                "customers_by_status": warehouse.portfolio_status(settings, day, schema=schema),
                "open_alert_episodes": {row["rule"]: row["episodes"] for row in alerts},
                "last_publishes": [{k: str(v) for k, v in run.items()}
                                   for run in warehouse.pipeline_runs(settings, limit=3)]})
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """``dbt docs generate --static``: one HTML file with the manifest and catalog inside, which
    opens from the file system (the plain index.html fetches manifest.json and catalog.json, which
    a browser refuses for a file:// page, so it needs ``dbt docs serve``)."""
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import warehouse

    settings = load_settings()
    built = _is_built(settings)
    # Compiling reads the built warehouse (int_calendar asks it for the history's bounds): before the
    # first build the docs are written from the project alone, without compiled SQL or column types.
    if not built:
        warehouse.run_dbt(settings, ["parse"]).raise_for_failure()  # the manifest --no-compile reads
    args = ["docs", "generate", "--static"] + ([] if built else ["--no-compile"])
    warehouse.run_dbt(settings, args).raise_for_failure()
    page = docs_page(settings)
    if not page.is_file():
        raise warehouse.WarehouseError(f"dbt docs generate --static wrote no {page.name} in {page.parent}")
    if not built:
        print("the warehouse is not built yet: the docs describe every model and column, without compiled "
              "SQL or column types (run `loyalty warehouse build`, then this again)")
    print(f"dbt docs: {page.resolve().as_uri()}")
    print(f"  one self-contained file: open it in a browser, offline too (or serve {page.parent} "
          "with `dbt docs serve --target-path ...`)")
    return 0


def _is_built(settings: Any) -> bool:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import warehouse

    try:
        rows = warehouse.query(settings, "select count(*) as n from information_schema.schemata "
                                         "where schema_name = ?", [warehouse.BUILD_SCHEMA])
    except Exception:  # noqa: BLE001 - no warehouse, or one being written: treat as not built
        return False
    return bool(rows and rows[0]["n"])


def docs_page(settings: Any) -> Path:
    """Where ``loyalty warehouse docs`` writes the self-contained dbt docs page."""
    return Path(settings.data_dir) / "dbt-target" / "static_index.html"


def cmd_check_scoring(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.scoring import load_scoring

    settings = load_settings()
    cfg = load_scoring(settings.scoring_file)
    print(f"{settings.scoring_file}: valid ({len(cfg['alerts']['rules'])} alert rules, "
          f"health weights {cfg['health']['weights']})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("warehouse", help="build, publish and inspect the dbt warehouse",
                       **example("loyalty warehouse build --as-of 2026-10-31 && loyalty warehouse status"))
    wsub = p.add_subparsers(dest="warehouse_command", required=True, metavar="ACTION")

    b = wsub.add_parser("build", help="dbt build (models and data tests) into schema build",
                        **example("loyalty warehouse build --as-of 2026-10-31 --select +fct_churn_alerts"))
    b.add_argument("--as-of", type=cli_date, help="as-of date YYYY-MM-DD (default: today, UTC); nothing after it is used")
    b.add_argument("--full-refresh", action="store_true", help="rebuild every day instead of only new/late ones")
    b.add_argument("--select", help="dbt selection, e.g. 'marts' or '+fct_churn_alerts'")
    b.add_argument("--unit-tests", action="store_true", help="also run the dbt unit tests")
    b.add_argument("--refit", action="store_true",
                   help="estimate the drift model's population parameters again from the whole landed "
                        "history, with the weekly mixture weights it would have learned, and score it "
                        "again with them (implies --full-refresh; builds twice)")
    b.add_argument("--publish", action="store_true", help="publish the marts afterwards (no quality gate!)")
    b.set_defaults(func=cmd_build)

    ld = wsub.add_parser("load", help="PostgreSQL: load new and changed landed Parquet files into schema "
                                      "landing (idempotent; `build` does it first)",
                         **example("LOYALTY_DBT_TARGET=postgres loyalty warehouse load"))
    ld.set_defaults(func=cmd_load)

    pub = wsub.add_parser("publish", help="copy the marts from schema build to published (one transaction)",
                          **example("loyalty warehouse publish"))
    pub.set_defaults(func=cmd_publish)

    st = wsub.add_parser("status", help="portfolio status and open alert episodes on a day",
                         **example("loyalty warehouse status --as-of 2026-10-31 --schema build"))
    st.add_argument("--as-of", type=cli_date, help="day to show (default: the latest built day)")
    st.add_argument("--schema", default="published", choices=["published", "build"])
    st.set_defaults(func=cmd_status)

    d = wsub.add_parser("docs", help="dbt docs as one file that opens offline (lineage, every model and "
                                     "column described)",
                        **example("loyalty warehouse docs   # prints the file:// address to open"))
    d.set_defaults(func=cmd_docs)

    c = wsub.add_parser("check-scoring", help="validate config/scoring.yml",
                        **example("LOYALTY_SCORING_FILE=my-scoring.yml loyalty warehouse check-scoring"))
    c.set_defaults(func=cmd_check_scoring)
