"""The leadership report: rendered from a warehouse, opened in real headless Chromium.

A handmade warehouse with the design.md mart columns (tests/helpers/report_fixtures.py) covers the
content and the edge cases; tests/loyalty_monitor/test_demo.py renders from a warehouse the real pipeline built.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from report_browser import PROBES, SECTIONS, assert_self_contained, visit
from report_fixtures import END, EVIL_NAME, EVIL_NOTE, NO_RATE_CURRENCY, build_fixture_warehouse

from loyalty_core.settings import load_settings
from loyalty_monitor.reporting import ReportError, build_context, queries, render_report
from loyalty_monitor.reporting.case_feedback import COUNTS, ERASED


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "loyalty"), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.fixture()
def warehouse(data_dir: Path) -> Path:
    return build_fixture_warehouse(load_settings().warehouse)


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
    # Ranked in the reporting currency: the customers' own currencies differ.
    values = [r["value_reporting"] for r in risk]
    assert values == sorted(values, reverse=True) and len(risk) == queries.TOP_VALUES_AT_RISK
    assert len({r["currency"] for r in risk}) > 1
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
    con.close()
    context = build_context(load_settings(), dt.date(2026, 4, 1), dt.date(2026, 6, 30))
    alerts = context["alerts"].data
    assert (alerts["raised"], alerts["followed"], alerts["not_followed"], alerts["pending"]) == (3, 1, 1, 1)
    assert alerts["share"] == 0.5
    assert dict(alerts["by_severity"])["high"] == {"raised": 2, "followed": 1}


def test_alerts_raised_split_churn_risk_cases_from_action_needed(warehouse, data_dir, tmp_path):
    """Complaints and dunning alerts are no churn-risk cases: the count says how many of each, in
    the section and in "In short" (the browser reads both), and adds up to what the mart holds."""
    settings = load_settings()
    con = duckdb.connect(str(settings.warehouse))
    # Two complaints in the period, as action-needed alerts (the fixture's dunning ones are older).
    con.execute("insert into published.fct_churn_alerts select * replace ('X-' || alert_id as alert_id, "
                "'open_high_complaint' as rule, 'action_needed' as alert_kind, date '2026-06-01' as alert_date) "
                "from published.fct_churn_alerts where alert_kind = 'risk_case' order by alert_id limit 2")
    con.close()
    context = build_context(settings)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    kinds = dict(con.execute("select alert_kind, count(*) from published.fct_churn_alerts where alert_date "
                             "between ? and ? group by 1", [context["period_start"], END]).fetchall())
    con.close()
    alerts = context["alerts"].data
    assert kinds["risk_case"] and kinds["action_needed"]  # the fixture raises both kinds in the period
    assert alerts["by_kind"] == {"risk_case": kinds["risk_case"], "action_needed": kinds["action_needed"]}
    assert alerts["raised"] == kinds["risk_case"] + kinds["action_needed"]
    out = render_report(settings, tmp_path / "report.html")
    page = visit(out, tmp_path / "chromium", probes={**PROBES, "summary": SUMMARY_PROBE})
    text = " ".join(page.probes["text"].split())
    assert "Churn-risk alerts raised" not in text
    assert (f"Alerts raised from {context['period_start']} to {END}: {alerts['raised']} "
            f"({kinds['risk_case']} churn-risk cases, {kinds['action_needed']} action needed") in text
    [sentence] = [s for s in summary_of(page) if s["id"] == "alerts"]
    assert sentence["text"].startswith(f"{alerts['raised']} alerts were raised in the period "
                                       f"({kinds['risk_case']} churn-risk cases, {kinds['action_needed']} "
                                       "action needed);")
    for key, (said, shown) in sentence["figures"].items():
        assert said == shown, f"summary says {key}={said!r}, the alerts section shows {shown!r}"


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


def test_report_refuses_a_device_or_a_fifo_and_takes_a_new_files_mode_not_the_old_files(warehouse, data_dir,
                                                                                       tmp_path):
    """Tester: `loyalty report --out /dev/full` replaced the device with the HTML file and printed
    "leadership report written"; a FIFO was replaced the same way; and a world-writable old report
    left its mode to the new one. (A device of the test's own, never /dev/full itself.)"""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    targets = [(fifo, "a FIFO (named pipe)", stat.S_ISFIFO)]
    device = tmp_path / "full"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is
        targets.append((device, "a character device", stat.S_ISCHR))
    except PermissionError:
        pass  # not root: the FIFO alone
    for target, kind, still in targets:
        done = run_cli("report", "--out", str(target))
        assert done.returncode != 0 and "written" not in done.stdout, done.stdout
        assert (f"{target} is {kind}, not a regular file: writing would replace it with a plain file, so nothing "
                "was written") in done.stderr, done.stderr
        with pytest.raises(ValueError, match=re.escape(f"is {kind}, not a regular file")):
            render_report(load_settings(), target)
        assert still(os.stat(target).st_mode), f"{target} was replaced"
    old = tmp_path / "report.html"
    old.write_text("old")
    os.chmod(old, 0o666)
    before = os.umask(0o077)  # the CLI's (it names customers: readable by its owner only)
    try:
        render_report(load_settings(), old)
    finally:
        os.umask(before)
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600 and "<html" in old.read_text()
    done = run_cli("report", "--out", str(old))
    assert done.returncode == 0 and stat.S_IMODE(os.stat(old).st_mode) == 0o600, done.stderr


# --- issue 16: a report that tells the truth at a glance -----------------------------------------

#: Every figure of the executive summary, and the same figure in the section its sentence links to.
SUMMARY_PROBE = """(() => {
  const out = [];
  for (const link of document.querySelectorAll('#summary li a')) {
    const id = link.getAttribute('href').slice(1);
    const section = document.getElementById(id);
    const figures = {};
    for (const fig of link.querySelectorAll('[data-figure]')) {
      const there = section && section.querySelector('[data-figure="' + fig.dataset.figure + '"]');
      figures[fig.dataset.figure] = [fig.textContent.trim(), there ? there.textContent.trim() : null];
    }
    out.push({id: id, text: link.textContent.trim(), exists: !!section, figures: figures});
  }
  return out;
})()"""


def summary_of(page) -> list[dict]:
    return page.probes["summary"]


def test_executive_summary_figures_match_the_sections_they_summarise(warehouse, data_dir, tmp_path,
                                                                       artifacts_dir):
    """The browser reads each summary figure and the same figure in the linked section; both must
    agree, and the portfolio and value figures must be the warehouse's."""
    out = render_report(load_settings(), tmp_path / "report.html")
    page = visit(out, tmp_path / "chromium", screenshot=artifacts_dir / "report-summary.png", height=1200,
                 probes={**PROBES, "summary": SUMMARY_PROBE,
                         "first": "document.querySelector('main section').id"})
    assert_self_contained(page, out)
    sentences = summary_of(page)
    assert 3 <= len(sentences) <= 5, sentences
    assert page.probes["first"] == "summary"  # the summary comes before every section
    for sentence in sentences:
        assert sentence["exists"], sentence  # each sentence links to a section of the report
        assert sentence["figures"], sentence
        for key, (said, shown) in sentence["figures"].items():
            assert said == shown, f"{sentence['id']}: summary says {key}={said!r}, section shows {shown!r}"
    figures = {k: v[0] for s in sentences for k, v in s["figures"].items()}
    assert [s["id"] for s in sentences] == ["portfolio", "at-risk", "movers", "alerts"]

    # ... and the figures are the warehouse's.
    con = duckdb.connect(str(load_settings().warehouse), read_only=True)
    try:
        start = END - dt.timedelta(weeks=12) + dt.timedelta(days=1)
        first_week = start + dt.timedelta(days=(END - start).days % 7)
        red_now, red_then, customers = con.execute(
            "select count(*) filter (where as_of_date = ? and status = 'red'), "
            "count(*) filter (where as_of_date = ? and status = 'red'), count(*) filter (where as_of_date = ?) "
            "from published.fct_customer_health_daily", [END, first_week, END]).fetchone()
        total, at_risk = con.execute(
            "select sum(v), count(*) from (select customer_id, max(value_at_stake_reporting) as v "
            "from published.fct_churn_alerts where alert_date <= ? and (episode_end_date is null "
            "or episode_end_date > ?) group by customer_id)", [END, END]).fetchone()
        open_alerts = ("from published.fct_churn_alerts where alert_date <= ? and (episode_end_date is null "
                       "or episode_end_date > ?)")
        gone, gone_total = con.execute(
            f"select count(v), sum(v) from (select customer_id, max(value_at_stake_reporting) as v {open_alerts} "
            f"and customer_id in (select customer_id {open_alerts} and rule = 'went_silent') group by customer_id)",
            [END, END, END, END]).fetchone()
        drop = con.execute(
            "select min(n.health_score - t.health_score) from published.fct_customer_health_daily n "
            "join published.fct_customer_health_daily t using (customer_id) where n.as_of_date = ? "
            "and t.as_of_date = ?", [END, first_week]).fetchone()[0]
    finally:
        con.close()
    assert figures["red-now"] == str(red_now) and figures["red-then"] == str(red_then)
    assert figures["customers"] == str(customers)
    assert figures["risk-total"] == f"{total:,.0f} EUR" and figures["risk-customers"] == str(at_risk)
    # user trial: the total counted customers gone silent for a year as if they could be kept
    assert gone, "the history has open cases of customers who went silent"
    assert figures["risk-gone-total"] == f"{gone_total:,.0f} EUR" and figures["risk-gone-customers"] == str(gone)
    # The biggest mover is the largest fall (rounding each score may move the difference by one).
    assert abs(int(figures["mover-then"]) - int(figures["mover-now"]) + drop) <= 1
    assert "forecast" not in [s["id"] for s in sentences]  # no forecast marts: no forecast sentence


def test_forecast_sentence_only_when_the_forecast_audit_is_published(data_dir, tmp_path):
    settings = load_settings()
    build_fixture_warehouse(settings.warehouse, with_forecast_audit=True)
    context = build_context(settings)
    forecast = [s for s in context["summary"] if s.section == "forecast"]
    assert len(forecast) == 1 and len(context["summary"]) == 5
    figures = forecast[0].figures()
    # The company's latest quarter up to the period's end (not a manager's, not an older quarter).
    assert figures["forecast-stated"] == "1,240,000 EUR" and figures["forecast-audited"] == "810,000 EUR"
    assert figures["forecast-stated-mean"] == "62%" and figures["forecast-realised"] == "41%"
    assert "optimistic" in forecast[0].text
    html = render_report(settings, tmp_path / "with-forecast.html").read_text()
    assert 'href="#forecast"' in html and 'data-figure="forecast-stated"' in html


def test_the_two_pipeline_figures_say_which_is_which(data_dir, tmp_path):
    """"In short" gives the pipeline open at the quarter's start (fct_forecast_audit), the forecast
    section what is still open on the report date (fct_open_pipeline): each says which it is, and
    the section repeats the summary's opening figures next to its own (the browser checks both)."""
    settings = load_settings()
    build_fixture_warehouse(settings.warehouse, with_forecast_section=True)
    out = render_report(settings, tmp_path / "report.html")
    page = visit(out, tmp_path / "chromium", probes={**PROBES, "summary": SUMMARY_PROBE})
    [sentence] = [s for s in summary_of(page) if s["id"] == "forecast"]
    assert sentence["exists"]
    assert sentence["text"].startswith("The pipeline open at the start of the quarter (2026-04-01) and "
                                       "expected to close by its end was forecast at 1,240,000 EUR as stated")
    for key, (said, shown) in sentence["figures"].items():
        assert said == shown, f"summary says {key}={said!r}, the forecast section shows {shown!r}"
    assert set(sentence["figures"]) >= {"forecast-stated", "forecast-audited"}
    text = " ".join(page.probes["text"].split())
    assert ("This quarter's pipeline still open on 2026-06-30: 500,000 EUR as stated, 330,000 EUR when "
            "each manager's track record is applied.") in text
    assert ("Open at the start of the quarter (2026-04-01) and expected to close by its end: 1,240,000 EUR "
            "as stated, 810,000 EUR") in text


def test_silent_opportunities_name_their_account_manager(data_dir, tmp_path):
    """The manager's name from master data (dim_customers); the id only when no name is known."""
    settings = load_settings()
    build_fixture_warehouse(settings.warehouse, with_forecast_section=True)
    html_text = render_report(settings, tmp_path / "report.html").read_text()
    table = html_text[html_text.index("Open opportunities at customers nobody talks to"):]
    table = table[:table.index("</table>")]
    rows = {row.split("</td>")[1].split(" (")[0].removeprefix("<td>"): row.split("<td>")[-1].split("</td>")[0]
            for row in table.split("<tr>")[2:]}
    assert rows == {"OPP-1": "Anna Møller", "OPP-2": "AM77"}


#: Each table's box (its scroll container) against the right edge of the page's text column.
TABLES_PROBE = """(() => {
  const main = document.querySelector('main');
  const right = main.getBoundingClientRect().right - parseFloat(getComputedStyle(main).paddingRight);
  const tables = [...document.querySelectorAll('table')].map(t => {
    const box = t.closest('.table-scroll');
    const last = t.querySelector('thead th:last-child');
    return {name: t.className || t.querySelector('th').textContent, wrapped: !!box,
            box_right: (box || t).getBoundingClientRect().right,
            last_header: last.textContent, last_header_right: last.getBoundingClientRect().right};
  });
  return {right: right, page_width: document.documentElement.scrollWidth, viewport: innerWidth, tables: tables};
})()"""


def _add_case_feedback(path, months: int = 12) -> None:
    """A published fct_case_feedback_monthly: the report's widest table, one row per month."""
    con = duckdb.connect(str(path))
    con.execute("create table published.fct_case_feedback_monthly (month_start date, account_manager_id varchar, "
                "account_manager_name varchar, " + ", ".join(f"{c} integer" for c in COUNTS + ERASED) + ")")
    for m in range(months):
        month = dt.date(2025 + (m + 6) // 12, (m + 6) % 12 + 1, 1)
        con.execute("insert into published.fct_case_feedback_monthly values (?, 'AM1', 'Anna Møller', "
                    + ", ".join("?" for _ in COUNTS + ERASED) + ")",
                    [month, *[10 + m % 4 for _ in COUNTS], *[0 for _ in ERASED]])
    con.close()


def test_wide_tables_fit_the_page_at_1400_px(data_dir, tmp_path, artifacts_dir):
    """At 1400 px every table, the monthly precision table with its Recall column included, ends
    inside the page's text column; a table wider than its column (a narrow window) scrolls inside
    its own box and the page itself never scrolls sideways."""
    settings = load_settings()
    build_fixture_warehouse(settings.warehouse, with_forecast_section=True)
    _add_case_feedback(settings.warehouse)
    out = render_report(settings, tmp_path / "report.html")
    for width in (1400, 700):
        page = visit(out, tmp_path / f"chromium-{width}", screenshot=artifacts_dir / f"report-{width}px.png",
                     width=width, probes={**PROBES, "tables": TABLES_PROBE})
        layout = page.probes["tables"]
        assert layout["page_width"] <= layout["viewport"], (width, layout["page_width"])
        names = [t["name"] for t in layout["tables"]]
        assert "case-feedback-months" in names and len(names) >= 12, names
        for table in layout["tables"]:
            assert table["wrapped"], table
            assert table["box_right"] <= layout["right"] + 1, (width, table)
            if width == 1400:  # wide enough: nothing to scroll to, every column in sight
                assert table["last_header_right"] <= layout["right"] + 1, table
                if table["name"] == "case-feedback-months":
                    assert table["last_header"] == "Recall"


def test_a_report_of_an_earlier_period_stops_at_its_end_or_says_what_is_later(data_dir, tmp_path):
    settings = load_settings()
    build_fixture_warehouse(settings.warehouse, with_forecast_section=True)  # health to 2026-06-30
    _add_case_feedback(settings.warehouse)  # months 2025-07 to 2026-06
    end = dt.date(2026, 4, 15)
    context = build_context(settings, period_end=end)
    feedback = context["case_feedback"].data
    assert feedback["last_month"] == dt.date(2026, 4, 1) and feedback["first_month"] == dt.date(2025, 7, 1)
    assert [m["month"] for m in feedback["months"]][-1] == dt.date(2026, 4, 1)
    html = render_report(settings, tmp_path / "april.html", period_end=end).read_text()
    assert ("Later than this report's period:</strong> the warehouse keeps only its latest forecast audit, "
            "as of 2026-06-30; this report's period ends 2026-04-15.") in html
    assert "Later than this report" not in render_report(settings, tmp_path / "june.html").read_text()
    with pytest.raises(ValueError, match="the period ends on 2026-01-01, before the warehouse's first day 2026-03-03 "
                                         r"\(its days run to 2026-06-30\): choose a period end in that range"):
        render_report(settings, tmp_path / "before.html", period_end=dt.date(2026, 1, 1))


def test_values_at_risk_show_now_next_to_then_in_one_currency(warehouse, data_dir):
    risk = build_context(load_settings())["at_risk"].data
    rows = risk["rows"]
    # Status today next to the alert date's: some alerts raised while yellow are red now, and the
    # recovered customers' old alerts show them green, open for months (stale).
    assert any(r["status"] == "yellow" and r["status_now"] == "red" for r in rows)
    green = [r for r in rows if r["status_now"] == "green"]
    assert green and all(r["stale"] and r["open_days"] >= queries.STALE_CASE_DAYS for r in green)
    assert risk["now_counts"]["green"] == len(green)
    assert risk["stale"] == sum(1 for r in rows if r["open_days"] >= queries.STALE_CASE_DAYS)
    # One currency: totals in EUR from the warehouse's conversion; the original stays on each row.
    assert risk["converted"] and risk["reporting_currency"] == "EUR" and risk["rates_date"]
    assert risk["total_reporting"] == pytest.approx(sum(t["reporting"] or 0 for t in risk["totals"]))
    assert {t["currency"] for t in risk["totals"]} >= {"EUR", "DKK", "PLN", NO_RATE_CURRENCY}
    assert risk["without_rate"] == 1  # its value is not guessed into the total
    html = render_report(load_settings(), load_settings().data_dir / "r.html").read_text()
    assert "stale: open" in html and "DKK</span>" in html and "Today:" in html


def _activity_warehouse(path, rows):
    con = duckdb.connect(str(path))
    con.execute("create schema published; create schema ops")
    con.execute("""create table published.fct_account_manager_activity (account_manager_id varchar,
        account_manager_name varchar, week_start date, week_end_date date, days_in_week integer, calls integer,
        calls_planned integer, meetings integer, meetings_planned integer)""")
    con.executemany("insert into published.fct_account_manager_activity values (?, ?, ?, ?, ?, ?, 10, ?, 3)",
                    rows)
    con.close()


def test_activity_plan_is_pro_rated_to_the_period_and_a_team_shortfall_is_said_in_words(data_dir, tmp_path):
    """A period from Thursday 2026-06-04 to Wednesday 2026-06-17 (14 days) over three Monday weeks:
    3 days of the week of 1 June are in it, all 7 of the week of 8 June, 3 of the week of 15 June,
    whose data ends on the period's last day."""
    mon = dt.date(2026, 6, 1)
    weeks = [(mon, mon + dt.timedelta(days=6), 7), (mon + dt.timedelta(days=7), mon + dt.timedelta(days=13), 7),
             (mon + dt.timedelta(days=14), mon + dt.timedelta(days=16), 3)]
    rows = []
    for am, name, calls, meetings in (("AM1", "Anna", (7, 7, 3), (1, 2, 1)), ("AM2", "Bo", (14, 14, 6), (3, 3, 1))):
        rows += [(am, name, w, e, d, c, m) for (w, e, d), c, m in zip(weeks, calls, meetings)]
    _activity_warehouse(load_settings().warehouse, rows)
    start, end = dt.date(2026, 6, 4), dt.date(2026, 6, 17)
    activity = build_context(load_settings(), start, end)["activity"].data
    anna, bo = activity["rows"]
    assert activity["period_days"] == 14 and anna["weeks"] == pytest.approx(2.0)
    assert anna["plan_calls"] == pytest.approx(20.0)  # 10 a week over 14 days, not 30 for three weeks
    assert anna["plan_meetings"] == pytest.approx(6.0)
    # Actuals: 4 of the first week's 7 days are before the period; the last week is counted whole
    # (its 3 days of data are all in the period).
    assert anna["calls"] == pytest.approx(7 * 4 / 7 + 7 + 3)
    assert bo["calls_ratio"] == pytest.approx((14 * 4 / 7 + 14 + 6) / 20)
    assert not activity["all_below_plan"]  # Bo made his calls
    html = render_report(load_settings(), tmp_path / "a.html", start, end).read_text()
    assert "▼ below plan" in html and "Every account manager is below plan" not in html

    # Everybody below plan: said once, in words, and the bars carry no mark each.
    (data_dir / "warehouse.duckdb").unlink()
    _activity_warehouse(load_settings().warehouse, [r[:5] + (1, 0) for r in rows])
    html = render_report(load_settings(), tmp_path / "b.html", start, end).read_text()
    assert "Every account manager is below plan" in html and "▼ below plan" not in html


def test_loyalty_matrix_explains_at_risk_against_red(warehouse, data_dir):
    matrix = build_context(load_settings())["matrix"].data
    x = matrix["at_risk_vs_red"]
    points = matrix["points"]
    assert x["at_risk"] == sum(1 for p in points if p["quadrant"] == "at_risk")
    assert sum(x["at_risk_by_status"].values()) == x["at_risk"]
    assert sum(n for _, n in x["red_by_quadrant"]) == x["red"]
    assert 0 < x["both"] < x["red"]  # the fixture has red customers outside the quadrant
    html = render_report(load_settings(), data_dir / "m.html").read_text()
    assert '"At risk" here is not the red status.' in html


def test_report_names_no_local_path_and_prints(warehouse, data_dir, tmp_path, artifacts_dir):
    settings = load_settings()
    con = duckdb.connect(str(settings.warehouse))
    # a finding that names where the failing rows landed: the report keeps the words, not the path
    con.execute("update ops.quality_runs set first_failure = ? where not passed",
                [f"touchpoints: rows at file={data_dir}/landing/touchpoints/event_date=2026-06-01/part-0.parquet"])
    con.close()
    out = render_report(settings, tmp_path / "print.html")
    html = out.read_text()
    for path in (str(data_dir), str(tmp_path), str(settings.warehouse), "/tmp/", "/home/"):
        assert path not in html, path
    assert "hover" not in html.lower().replace(":hover", "")  # nothing hovers on paper
    page = visit(out, tmp_path / "chromium", media="print", pdf=artifacts_dir / "report-print.pdf",
                 screenshot=artifacts_dir / "report-print.png",
                 probes={"nav": "getComputedStyle(document.querySelector('nav')).display",
                         "summary": "getComputedStyle(document.getElementById('summary')).display"})
    assert page.probes["nav"] == "none" and page.probes["summary"] != "none"
    pdf = (artifacts_dir / "report-print.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 4


def test_summary_sentences_read_well_with_one_of_everything():
    """Small numbers: 1 customer, 1 alert was raised, no 'of the 1 largest'."""
    from loyalty_monitor.reporting.queries import Section
    from loyalty_monitor.reporting.summary import executive_summary

    row = {"status_now": "yellow", "customer_id": "C1"}
    context = {
        "portfolio": Section(missing="no health scores"),
        "at_risk": Section(data={"customers": 1, "converted": True, "total_reporting": 1000.0,
                                 "reporting_currency": "EUR", "rates_date": "2026-11-30", "totals": [],
                                 "rows": [row], "now_counts": {"red": 0, "yellow": 1, "green": 0}, "stale": 0,
                                 "stale_days": 60}),
        "alerts": Section(data={"raised": 1, "followed": 1, "share": 1.0}),
    }
    texts = [s.text for s in executive_summary(context)]
    assert texts == [
        "Open alerts (churn-risk cases and action needed) put 1,000 EUR at stake across 1 customer (rates of 2026-11-30).",
        "1 alert was raised in the period; 1 was followed by a two-way dialogue within 14 days "
        "(100% of those old enough to judge).",
    ]


def test_report_says_each_step_and_draws_a_bar_on_a_terminal(warehouse, data_dir, tmp_path):
    """The library names each step before it starts; ``loyalty report`` on a terminal shows them as
    a bar (and off a terminal prints only the file it wrote, as before)."""
    from loyalty_monitor.reporting import render

    steps: list[str] = []
    render_report(load_settings(), tmp_path / "steps.html", on_progress=steps.append)
    assert steps == list(render.STEPS)

    primary, secondary = os.openpty()  # stderr on a pseudo-terminal, as a user's shell has it
    try:
        done = subprocess.run([str(Path(sys.executable).parent / "loyalty"), "report", "--out",
                               str(tmp_path / "tty.html")], stdout=subprocess.PIPE, stderr=secondary,
                              env={**os.environ, "COLUMNS": "120", "TERM": "xterm"}, timeout=120)
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0
    assert b"writing the report" in shown and b"/15" in shown, shown[-500:]
    assert f"leadership report written to {(tmp_path / 'tty.html').resolve()}" in done.stdout.decode()


def test_a_movers_change_is_that_of_the_figures_printed_beside_it():
    """User trial: "85.5 -> 51.0" printed as 86 and 51 with a change of -34 (-34.5 rounded half to
    even): the three did not add up."""
    from loyalty_monitor.reporting import formatting

    assert (formatting.num(85.5, 0), formatting.num(51.0, 0), formatting.change(85.5, 51.0)) == ("86", "51", "-35")
    assert formatting.change(85.4, 51.6) == "-33" and formatting.change(None, 51.0) == "–"
