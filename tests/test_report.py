"""The leadership report: rendered from a warehouse, opened in real headless Chromium.

A handmade warehouse with the design.md mart columns (tests/report_fixtures.py) covers the
content and the edge cases; test_report_pipeline.py renders from a warehouse the real pipeline built.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from loyalty_monitor.reporting import ReportError, build_context, render_report
from loyalty_monitor.reporting import queries
from loyalty_monitor.settings import load_settings
from report_browser import visit
from report_fixtures import END, EVIL_NAME, EVIL_NOTE, build_fixture_warehouse

SECTIONS = ("portfolio", "health-by", "coverage", "platform", "matrix", "activity", "at-risk", "alerts",
            "quality")
PROBES = {
    "not_pwned": "window.__pwned === undefined",
    "scripts": "document.scripts.length",
    "injected_elements": "document.querySelectorAll('img, a[href^=\"http\"], iframe, object, embed, "
                         "section b').length",
    "text": "document.body.innerText",
}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "loyalty"), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.fixture()
def warehouse(data_dir: Path) -> Path:
    return build_fixture_warehouse(load_settings().warehouse)


def assert_self_contained(page, html_file: Path) -> None:
    """The page loaded only itself: no network, no console errors, no script at all."""
    assert page.requests == [html_file.resolve().as_uri()], page.requests
    assert page.console_errors == []
    assert page.probes["scripts"] == 0


def test_report_cli_renders_in_chromium_self_contained_and_escaped(warehouse, data_dir, tmp_path,
                                                                    artifacts_dir):
    out = tmp_path / "out" / "report.html"
    done = run_cli("report", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert str(out.resolve()) in done.stdout

    page = visit(out, tmp_path / "chromium", screenshot=artifacts_dir / "report.png", probes=PROBES)
    assert_self_contained(page, out)
    for section in SECTIONS:
        assert f'<section id="{section}"' in page.dom, section
    assert "No data." not in page.probes["text"]  # every section of the full fixture has content
    assert page.dom.count('role="img"') >= 8  # the charts are there, and announced as images
    # Injected markup is shown as text, and nothing of it became an element or ran.
    assert page.probes["not_pwned"] is True
    assert page.probes["injected_elements"] == 0
    assert html.escape(EVIL_NAME, quote=False) in page.dom
    assert EVIL_NAME in page.probes["text"]
    assert html.escape(EVIL_NOTE, quote=False) in page.dom
    assert EVIL_NOTE in page.probes["text"]
    # Status is told in words and symbols, not by colour alone.
    for word in ("Red ▲", "Yellow ◆", "Green ●"):
        assert word in page.probes["text"]
    assert (artifacts_dir / "report.png").stat().st_size > 50_000


def test_browser_probe_sees_requests_and_console_errors(tmp_path):
    """The self-containment check can fail: a page that fetches and logs an error is caught."""
    page_file = tmp_path / "leaky.html"
    page_file.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/pixel.png">'
                         '<script>console.error("boom")</script></body></html>')
    page = visit(page_file, tmp_path / "chromium", probes=PROBES)
    assert "http://127.0.0.1:9/pixel.png" in page.requests
    assert any(c.get("args") == ["boom"] for c in page.console_errors)
    assert page.probes["scripts"] == 1


def test_report_numbers_match_the_marts(warehouse, data_dir):
    settings = load_settings()
    context = build_context(settings)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    counts = dict(con.execute("select status, count(*) from published.fct_customer_health_daily "
                              "where as_of_date = ? group by 1", [END]).fetchall())
    con.close()
    # Default period: the 12 weeks up to the latest as-of date.
    assert context["period_end"] == END
    assert context["period_start"] == END - dt.timedelta(weeks=12) + dt.timedelta(days=1)
    portfolio = context["portfolio"].data
    assert portfolio["counts"] == {s: counts.get(s, 0) for s in ("red", "yellow", "green")}
    assert [p["date"] for p in portfolio["trend"]][-1] == END
    assert len(portfolio["trend"]) == 12
    assert sum(r["customers"] for r in context["by_segment"].data["rows"]) == 60
    risk = context["at_risk"].data["rows"]
    values = [r["value_at_stake"] for r in risk]
    assert values == sorted(values, reverse=True) and len(risk) == queries.TOP_VALUES_AT_RISK
    assert context["quality"].data["failed"] >= 1 and context["quality"].data["passed"] >= 1


def test_alert_follow_up_counts_dialogue_within_14_days(data_dir):
    """Followed (dialogue 5 days later), not followed (20 days later), and too young to judge."""
    con = duckdb.connect(str(load_settings().warehouse))
    con.execute("create schema published")
    con.execute("create table published.fct_churn_alerts (alert_id varchar, customer_id varchar, "
                "alert_date date, severity varchar, rule varchar)")
    con.execute("create table published.fct_touchpoints (customer_id varchar, event_date date, "
                "is_two_way_dialogue boolean)")
    con.execute("""insert into published.fct_churn_alerts values
        ('a1', 'C1', date '2026-05-01', 'high', 'churn_risk'),
        ('a2', 'C2', date '2026-05-01', 'medium', 'open_high_complaint'),
        ('a3', 'C3', date '2026-06-25', 'high', 'churn_risk'),
        ('old', 'C1', date '2026-01-01', 'high', 'churn_risk')""")
    con.execute("""insert into published.fct_touchpoints values
        ('C1', date '2026-05-06', true), ('C2', date '2026-05-21', true), ('C2', date '2026-05-03', false),
        ('C3', date '2026-06-25', true)""")
    # An (empty) run table keeps this test from loading the gate's Great Expectations just to find none.
    con.execute("create schema ops; create table ops.quality_runs (run_at timestamp, success boolean)")
    con.close()
    context = build_context(load_settings(), dt.date(2026, 4, 1), dt.date(2026, 6, 30))
    alerts = context["alerts"].data
    assert (alerts["raised"], alerts["followed"], alerts["not_followed"], alerts["pending"]) == (3, 1, 1, 1)
    assert alerts["share"] == 0.5
    assert dict(alerts["by_severity"])["high"] == {"raised": 2, "followed": 1}


def test_missing_and_empty_marts_say_no_data(data_dir, tmp_path):
    settings = load_settings()
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create schema published")
    con.execute("create table published.fct_customer_health_daily (customer_id varchar, as_of_date date, "
                "health_score double, status varchar, segment varchar, account_manager_id varchar)")
    con.close()
    out = render_report(settings, tmp_path / "empty.html", period_end=dt.date(2026, 6, 30))
    text = out.read_text()
    assert text.count("No data.") >= 8
    assert "table published.fct_churn_alerts is not in the warehouse yet" in text
    assert "No quality runs recorded." in text
    page = visit(out, tmp_path / "chromium", probes=PROBES)
    assert_self_contained(page, out)


def test_report_period_option_and_clear_errors(warehouse, data_dir, tmp_path):
    out = tmp_path / "q1.html"
    done = run_cli("report", "--out", str(out), "--period-start", "2026-04-01", "--period-end", "2026-04-30")
    assert done.returncode == 0, done.stderr
    assert "Period 2026-04-01 to 2026-04-30" in out.read_text()
    bad = run_cli("report", "--out", str(out), "--period-start", "2026-05-01", "--period-end", "2026-04-30")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "loyalty report: error: period start 2026-05-01 is after period end 2026-04-30"
    missing = run_cli("report", "--out", str(out), env={"LOYALTY_DATA_DIR": str(tmp_path / "nowhere")})
    assert missing.returncode == 1
    assert "no warehouse at" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    with pytest.raises(ReportError):
        render_report(load_settings(data_dir=tmp_path / "nowhere"), tmp_path / "x.html")
