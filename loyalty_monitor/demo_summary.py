"""What the demo prints at the end: each step's result, the numbers of the run (read from the
warehouse and the report), what those numbers mean, and where everything is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from loyalty_core.settings import Settings
from loyalty_monitor.generator import GROUND_TRUTH_FILE
from loyalty_monitor.reporting import ReportError, queries
from loyalty_monitor.reporting.render import connect_read_only


@dataclass
class StepResult:
    name: str
    state: str  # done | unavailable | failed | skipped
    seconds: float = 0.0
    detail: str = ""


@dataclass
class DemoSummary:
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.state == "done" for s in self.steps)


# --- collecting ------------------------------------------------------------------------------------

def collect_outputs(settings: Settings, summary: DemoSummary) -> None:
    """The files and directories the run wrote, by what they are."""
    outputs, data_dir = summary.outputs, settings.data_dir
    if settings.warehouse.exists():
        outputs["warehouse"] = settings.warehouse
    docs = sorted((data_dir / "quality").glob("**/index.html"), key=lambda p: len(p.parts))
    if docs:
        outputs["data docs"] = docs[0]
        runs_page = docs[0].with_name("gate_runs.html")
        if runs_page.is_file():
            outputs["gate runs"] = runs_page
    outbox = data_dir / "alerts" / "outbox"
    if outbox.is_dir():
        outputs["alert outbox"] = outbox
        summary.facts["outbox_files"] = sum(1 for p in outbox.rglob("*") if p.is_file())
    if not settings.landing_url and Path(settings.landing).is_dir():
        outputs["landing zone"] = Path(settings.landing)


def collect_facts(settings: Settings, summary: DemoSummary) -> None:
    """Customers by status, alerts and their delivery, the top values at risk, and the report's
    own summary sentences, read from the published warehouse."""
    if not settings.warehouse.exists():
        return

    try:
        con = connect_read_only(settings)
    except ReportError as exc:
        summary.facts["warehouse_error"] = str(exc)
        return
    try:
        _warehouse_facts(con, summary.facts)
    finally:
        con.close()
    try:  # the report's executive summary: the same sentences leadership reads first
        # optional: the caller handles its absence
        from loyalty_monitor.reporting import build_context

        summary.facts["in_short"] = [s.text for s in build_context(settings)["summary"]]
    except Exception as exc:  # noqa: BLE001 - the summary is a courtesy; the report step says more
        summary.facts["in_short_error"] = str(exc)


def _warehouse_facts(con: Any, facts: dict[str, Any]) -> None:

    try:
        marts = queries.Marts(con)
        as_of = queries.latest_as_of(marts)
        if as_of:
            facts["as_of"] = as_of
            facts["status"] = queries.portfolio(marts, as_of, as_of)["counts"]
            try:
                facts["top_risk"] = queries.values_at_risk(marts, as_of)["rows"][:3]
            except queries.MissingData:
                pass
        if marts.columns(queries.ALERTS):
            facts["alerts_raised"] = marts.scalar(f"select count(*) from {queries.ALERTS}")
            if "alert_kind" in marts.columns(queries.ALERTS):
                facts["alerts_by_kind"] = dict(marts.con.execute(
                    f"select case when alert_kind = 'action_needed' then 'action needed' "
                    f"when rule = 'went_silent' then 'may already have left' else 'churn risk' end as kind, "
                    f"count(*) from {queries.ALERTS} group by 1 order by 1").fetchall())
        if marts.columns(queries.CUSTOMERS):
            facts["customers_published"] = marts.scalar(f"select count(*) from {queries.CUSTOMERS}")
        if "status" in marts.columns("ops.alert_state"):
            facts["alert_states"] = dict(marts.con.execute(
                "select status, count(*) from ops.alert_state group by 1 order by 1").fetchall())
    except queries.MissingData:
        pass


def generated_counts(input_dir: Path) -> dict[str, Any]:
    """Customers and tombstones of the generated history (its ground truth)."""

    try:
        truth = json.loads((input_dir / GROUND_TRUTH_FILE).read_text())
        return {"customers": int(truth["generator"]["customers"]),
                "tombstones": int(truth["counts"]["tombstones"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def explanations(settings: Settings, summary: DemoSummary, months: int, input_dir: Path) -> list[str]:
    """What the summary's numbers mean, for someone who has never seen the product."""
    facts = summary.facts
    lines = []
    generated = generated_counts(input_dir)
    published = facts.get("customers_published")
    if generated and published is not None and published != generated["customers"]:
        lines.append(
            f"Customers: {generated['customers']} generated, {published} in the warehouse. The history "
            f"erases {generated['tombstones']} customers late on with a tombstone (a right-to-erasure "
            "request: `loyalty erase`), and the warehouse keeps no trace of them.")
    states = facts.get("alert_states", {})
    if states.get("expired"):
        lines.append(
            f"Expired alerts: the demo builds the whole {months}-month history in one run on its last "
            f"day, so most alerts are older than the {_dispatch_window_days(settings)}-day dispatch window; "
            "they are recorded 'expired' instead of waking account managers with old news. Run daily, "
            "each alert is sent the day it is raised.")
    if states.get("capped"):
        lines.append("Capped alerts: beyond alerts.max_per_manager_per_week in one week, the least valuable "
                     "alerts are held back so that a manager receives few alerts, each worth acting on.")
    if "gate runs" in summary.outputs:
        lines.append("Quality gate: every validation with its findings is listed on the gate-runs page "
                     "(it opens offline), each linking to its Data Docs page.")
    return lines


def _dispatch_window_days(settings: Settings) -> int:
    try:
        # optional: the caller handles its absence
        from loyalty_monitor.alerting.dispatch import load_policy

        return load_policy(settings).dispatch_window_days
    except Exception:  # noqa: BLE001 - the default window is right for the explanation
        return 7


def web_sign_in(settings: Settings) -> str | None:
    """How to open the web app, with a sign-in link for the manager of the most valuable open case."""
    try:
        # optional: the caller handles its absence
        from loyalty_monitor import access as auth

        # optional: the caller handles its absence
        from loyalty_monitor.web import queries

        with queries.reader(settings) as con:
            row = con.execute(
                "select account_manager_email, account_manager_name from published.fct_case_lifecycle "
                "where needs_action order by expected_value_at_risk desc limit 1").fetchone() or con.execute(
                "select account_manager_email, account_manager_name from published.dim_customers "
                "where account_manager_email is not null order by 1 limit 1").fetchone()
    except Exception:  # noqa: BLE001 - no published warehouse: nothing to open
        return None
    if row is None:
        return None
    return (f"Open the web app: `loyalty web` (or `loyalty up`, which also starts the broker the queue's "
            f"buttons need), then sign in as {row[1]} with {auth.sign_in_link(settings, row[0])}")


# --- printing ----------------------------------------------------------------------------------------

def print_summary(console: Any, settings: Settings, summary: DemoSummary, months: int, input_dir: Path,
                  seconds: float) -> None:
    console.rule("[bold]Loyalty Monitor demo: summary")
    _print_steps(console, summary)
    _print_numbers(console, summary.facts)
    for line in explanations(settings, summary, months, input_dir):
        console.print(line, markup=False)
    _print_outputs(console, summary)
    state = "[green]finished[/]" if summary.ok else "[red]finished with problems (see above)[/]"
    console.print(f"Demo {state} in {seconds:.0f} s. Open the report: "
                  f"{summary.outputs.get('leadership report', '(not written)')}")
    web = web_sign_in(settings)
    if web:
        console.print(web, markup=False)


def _print_steps(console: Any, summary: DemoSummary) -> None:

    steps = Table(show_header=True, header_style="bold")
    for column in ("step", "result", "time", "detail"):
        steps.add_column(column)
    for s in summary.steps:
        colour = {"done": "green", "unavailable": "yellow"}.get(s.state, "red")
        steps.add_row(s.name, f"[{colour}]{s.state}[/]", f"{s.seconds:.1f} s", s.detail[:160])
    console.print(steps)


def _print_numbers(console: Any, facts: dict[str, Any]) -> None:
    if "status" in facts:
        c = facts["status"]
        console.print(f"Customers by status on {facts['as_of']}: Red ▲ {c['red']}, "
                      f"Yellow ◆ {c['yellow']}, Green ● {c['green']}")
    if "alerts_raised" in facts:
        states = ", ".join(f"{k} {v}" for k, v in facts.get("alert_states", {}).items())
        kinds = ", ".join(f"{k} {v}" for k, v in facts.get("alerts_by_kind", {}).items())
        console.print(f"Alerts raised over the history: {facts['alerts_raised']}"
                      + (f" ({kinds})" if kinds else "") + (f"; delivery: {states}" if states else ""))
    if facts.get("top_risk"):
        console.print("Top values at risk (open alerts):")
    for i, row in enumerate(facts.get("top_risk", []), 1):
        value = f"{row['value_at_stake']:,.0f} {row['currency'] or ''}".strip()
        if row.get("value_reporting") is not None and row.get("reporting_currency") != row["currency"]:
            value = f"{row['value_reporting']:,.0f} {row['reporting_currency']} ({value})"
        console.print(f"  {i}. {row['customer_name']} ({row['customer_id']}), {value}, "
                      f"account manager {row['account_manager_name']}: {row['drivers']}", markup=False)
    if facts.get("in_short"):
        console.print("The report in short:")
        for sentence in facts["in_short"]:
            console.print(f"  - {sentence}", markup=False)


def _print_outputs(console: Any, summary: DemoSummary) -> None:
    facts = summary.facts
    console.print("Where things are:" if summary.outputs else "Nothing was written.")
    for name, path in summary.outputs.items():
        extra = f" ({facts['outbox_files']} files)" if name == "alert outbox" and "outbox_files" in facts else ""
        console.print(f"  {name:<18} {path}{extra}", markup=False)
