"""``loyalty warehouse build|publish|status|docs|check-scoring``: the dbt warehouse."""

from __future__ import annotations

import argparse
import sys

from loyalty_monitor.cli._common import print_json
from loyalty_monitor.settings import load_settings


def _progress(node) -> None:
    mark = "ok" if node.status in ("success", "pass", "no-op") else node.status.upper()
    if node.resource_type == "model" or mark != "ok":
        print(f"  {mark:5} {node.resource_type:9} {node.name} ({node.seconds:.1f}s)", file=sys.stderr, flush=True)


def cmd_build(args: argparse.Namespace) -> int:
    from loyalty_monitor import warehouse

    settings = load_settings()
    kind = "full refresh" if args.full_refresh else "incremental"
    print(f"building the warehouse ({kind}, as of {args.as_of or 'today'}) in {settings.warehouse}",
          file=sys.stderr)
    result = warehouse.build(settings, as_of=args.as_of, full_refresh=args.full_refresh,
                             select=args.select, on_node=_progress, unit_tests=args.unit_tests,
                             refit=args.refit)
    print(result.summary())
    if args.select is None:
        from loyalty_monitor.drift import population

        fitted = population.refresh(settings, warehouse.parse_as_of(args.as_of), refit=args.refit or args.full_refresh)
        print(f"drift model population: P(alive) of {fitted.customers} customers"
              f"{' (BG/NBD refitted)' if fitted.refitted else ''}")
    if args.publish:
        marts = warehouse.publish(settings)
        print(f"published {len(marts)} marts to schema {warehouse.PUBLISHED_SCHEMA}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from loyalty_monitor import warehouse

    marts = warehouse.publish(load_settings())
    print(f"published {len(marts)} marts to schema {warehouse.PUBLISHED_SCHEMA}: {', '.join(marts)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from loyalty_monitor import warehouse

    settings = load_settings()
    schema = args.schema
    latest = warehouse.query(settings, f"select max(as_of_date) as d from {schema}.fct_customer_health_daily")[0]["d"]
    if latest is None:
        raise warehouse.WarehouseError(f"{schema}.fct_customer_health_daily is empty")
    day = args.as_of or latest
    alerts = warehouse.query(settings, f"select rule, count(*) as episodes from {schema}.fct_churn_alerts "
                                       "where episode_end_date is null and alert_date <= ? group by rule "
                                       "order by rule", [day])
    print_json({"schema": schema, "as_of_date": str(day), "latest_day": str(latest),
                "customers_by_status": warehouse.portfolio_status(settings, day, schema=schema),
                "open_alert_episodes": {row["rule"]: row["episodes"] for row in alerts},
                "last_publishes": [{k: str(v) for k, v in run.items()}
                                   for run in warehouse.pipeline_runs(settings, limit=3)]})
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from loyalty_monitor import warehouse

    settings = load_settings()
    warehouse.run_dbt(settings, ["docs", "generate"]).raise_for_failure()
    print(f"dbt docs written to {settings.data_dir / 'dbt-target'} (open index.html, or "
          f"`dbt docs serve --project-dir dbt_project --profiles-dir dbt_project --target-path "
          f"{settings.data_dir / 'dbt-target'}`)")
    return 0


def cmd_check_scoring(args: argparse.Namespace) -> int:
    from loyalty_monitor.scoring import load_scoring

    settings = load_settings()
    cfg = load_scoring(settings.scoring_file)
    print(f"{settings.scoring_file}: valid ({len(cfg['alerts']['rules'])} alert rules, "
          f"health weights {cfg['health']['weights']})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("warehouse", help="build, publish and inspect the dbt warehouse")
    wsub = p.add_subparsers(dest="warehouse_command", required=True, metavar="ACTION")

    b = wsub.add_parser("build", help="dbt build (models and data tests) into schema build")
    b.add_argument("--as-of", help="as-of date YYYY-MM-DD (default: today, UTC); nothing after it is used")
    b.add_argument("--full-refresh", action="store_true", help="rebuild every day instead of only new/late ones")
    b.add_argument("--select", help="dbt selection, e.g. 'marts' or '+fct_churn_alerts'")
    b.add_argument("--unit-tests", action="store_true", help="also run the dbt unit tests")
    b.add_argument("--refit", action="store_true",
                   help="estimate the drift model's population parameters again from the whole landed "
                        "history (implies --full-refresh)")
    b.add_argument("--publish", action="store_true", help="publish the marts afterwards (no quality gate!)")
    b.set_defaults(func=cmd_build)

    pub = wsub.add_parser("publish", help="copy the marts from schema build to published (one transaction)")
    pub.set_defaults(func=cmd_publish)

    st = wsub.add_parser("status", help="portfolio status and open alert episodes on a day")
    st.add_argument("--as-of", help="day to show (default: the latest built day)")
    st.add_argument("--schema", default="published", choices=["published", "build"])
    st.set_defaults(func=cmd_status)

    d = wsub.add_parser("docs", help="dbt docs generate (lineage, every model and column described)")
    d.set_defaults(func=cmd_docs)

    c = wsub.add_parser("check-scoring", help="validate config/scoring.yml")
    c.set_defaults(func=cmd_check_scoring)
