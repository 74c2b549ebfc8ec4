"""The drift model on a small handcrafted history, built by the real dbt project on DuckDB.

Twenty chatty customers call with sales every few business days and order every other week. In
July the whole portfolio goes quiet for three weeks (the industrial holiday), so the same silence
that would worry us about one customer is, for everybody at once, no evidence against anyone. From
October one customer, QUIET, goes silent for good. Expected: a churn-risk case opens for QUIET in
the autumn, and no case opens for anybody during the portfolio's holiday dip. `loyalty explain`
tells the story from the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from warehouse_history import land, warehouse_settings

from bench.bench_alert_quality import Silence
from loyalty_core.settings import load_settings
from loyalty_monitor import warehouse
from loyalty_monitor.drift import population
from loyalty_monitor.drift.explain import (
    SHARE_STREAMS,
    ExplainError,
    StreamStory,
    explain,
    render_html,
    render_text,
)
from loyalty_monitor.erasure import erase_customers
from loyalty_monitor.scoring import load_scoring

START, END = dt.date(2025, 9, 1), dt.date(2026, 11, 30)
HOLIDAY = (dt.date(2026, 7, 6), dt.date(2026, 7, 26))   # everybody silent
QUIET_FROM = dt.date(2026, 10, 1)                        # one customer silent for good
CUSTOMERS = [f"C{i:03d}" for i in range(1, 20)] + ["QUIET"]


def _events(customers: list[str] = CUSTOMERS, silences: dict | None = None) -> list[dict]:
    """Every customer's calls and orders. ``silences`` maps a customer to ``(first, last, orders_end)``:
    no calls from ``first`` to ``last`` (None: for good), and no orders from ``orders_end`` on."""
    silences = {"QUIET": (QUIET_FROM, None, QUIET_FROM)} | (silences or {})
    events, n = [], 0
    day = START
    while day <= END:
        if day.weekday() < 5 and not (HOLIDAY[0] <= day <= HOLIDAY[1]):
            for k, customer in enumerate(customers):
                first, last, orders_end = silences.get(customer, (None, None, None))
                silent = first is not None and first <= day and (last is None or day <= last)
                ordering = orders_end is None or day < orders_end
                offset = (day - START).days + k
                if offset % 3 == 0 and not silent:  # a sales call that reaches the customer, every third day
                    n += 1
                    events.append({
                        "schema_version": 1, "event_id": f"e{n}", "event_type": "call",
                        "occurred_at": f"{day}T09:00:00+01:00", "customer_id": customer,
                        "department": "sales", "direction": "outbound", "employee_id": "S1",
                        "contact_role": "decision_maker" if offset % 9 == 0 else "user", "source": "crm",
                        "payload": {"answered": True, "duration_s": 300}})
                if offset % 14 == 1 and ordering:  # an order every other week
                    n += 1
                    events.append({
                        "schema_version": 1, "event_id": f"e{n}", "event_type": "order",
                        "occurred_at": f"{day}T10:00:00Z", "customer_id": customer, "department": "sales",
                        "direction": "inbound", "contact_role": "user", "source": "erp",
                        "payload": {"amount": 1000.0, "currency": "EUR", "product_line": "pumps",
                                    "order_id": f"SO-{n}"}})
        day += dt.timedelta(days=1)
    return events


def _customers(customers: list[str] = CUSTOMERS) -> list[dict]:
    return [{"schema_version": 1, "customer_id": c, "name": f"Company {c}", "segment": "key", "country": "DE",
             "account_manager": {"id": "AM01", "name": "Ann Example", "email": "ann@example.com"},
             "annual_potential": 500000.0, "currency": "EUR", "updated_at": f"{START}T06:00:00Z"}
            for c in customers]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("drift")
    touchpoints, customers = work / "touchpoints.jsonl", work / "customers.jsonl"
    touchpoints.write_text("".join(json.dumps(e) + "\n" for e in _events()))
    customers.write_text("".join(json.dumps(c) + "\n" for c in _customers()))
    settings = warehouse_settings(work / "data")
    land(settings, touchpoints, customers)
    warehouse.build(settings, as_of=END, full_refresh=True)
    population.refresh(settings, END)
    return settings


def _cases(settings) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute("select customer_id, opened_on, drivers from build.fct_churn_risk_cases "
                           "order by opened_on").fetchall()
    finally:
        con.close()


def test_a_case_opens_for_the_customer_that_goes_quiet(built):
    quiet = [(day, drivers) for customer, day, drivers in _cases(built) if customer == "QUIET"]
    assert quiet, "no case for the customer that went silent"
    opened, drivers = quiet[0]
    assert QUIET_FROM < opened <= QUIET_FROM + dt.timedelta(days=45), opened
    # the drivers count from the first day of the window that carries the evidence (it may start a
    # few days before the silence): far fewer dialogues than the customer's usual rhythm expects
    seen = re.search(r"two-way dialogue: (\d+) since (\S+), about ([\d.]+) expected \(usually", drivers)
    assert seen, drivers
    assert int(seen[1]) <= float(seen[3]) / 3 and dt.date.fromisoformat(seen[2].rstrip(",")) <= QUIET_FROM + dt.timedelta(days=7)


def test_no_case_for_the_portfolio_holiday_dip(built):
    during = [(c, d) for c, d, _ in _cases(built) if HOLIDAY[0] <= d <= HOLIDAY[1] + dt.timedelta(days=14)]
    assert during == []
    others = [(c, d) for c, d, _ in _cases(built) if c != "QUIET"]
    assert others == []
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        season = con.execute("select avg(season_index_milli) from build.int_portfolio_days "
                             "where date_day between ? and ?", list(HOLIDAY)).fetchone()[0]
        normal = con.execute("select avg(season_index_milli) from build.int_portfolio_days "
                             "where date_day between '2026-05-01' and '2026-05-31'").fetchone()[0]
    finally:
        con.close()
    assert season < 0.5 * normal, "the holiday is not seen as a quiet season of the portfolio"


def _holiday_peaks(settings, until: dt.date) -> dict[str, float]:
    """Each customer's highest drift probability from the holiday's start to ``until``."""
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return dict(con.execute("select customer_id, max(drift_probability) from build.int_drift_days "
                                "where as_of_date between ? and ? group by 1", [HOLIDAY[0], until]).fetchall())
    finally:
        con.close()


def test_without_the_seasonal_index_the_holiday_would_raise_cases(built, tmp_path):
    """The control: with the seasonal index switched off (pseudo-contacts so many that every day
    counts as normal), the same holiday silence drives the chatty customers' drift probability up
    to about where cases open (a target precision opens them from 0.15 up, a user may set 0.25), while
    with the index nobody comes near one."""
    touchpoints, customers = tmp_path / "touchpoints.jsonl", tmp_path / "customers.jsonl"
    touchpoints.write_text("".join(json.dumps(e) + "\n" for e in _events()))
    customers.write_text("".join(json.dumps(c) + "\n" for c in _customers()))
    settings = warehouse_settings(tmp_path / "data", drift={"season_pseudo_count": 1e9})
    land(settings, touchpoints, customers)
    until = dt.date(2026, 8, 10)
    warehouse.build(settings, as_of=until, full_refresh=True)
    without_index = _holiday_peaks(settings, until)
    with_index = _holiday_peaks(built, until)
    assert sum(p >= 0.25 for p in without_index.values()) >= 3, without_index
    assert max(with_index.values()) < 0.1, with_index  # nowhere near a case


def test_explain_shows_the_probability_and_what_moved_it(built):
    story = explain(built, "QUIET", as_of=END, days=120)
    assert story.probability[-1] > 0.9 and max(story.probability[:20]) < 0.3
    assert story.streams[0].name in ("dialogue", "senior", "orders") and story.streams[0].evidence_since_restart > 1
    text = render_text(story)
    assert "QUIET" in text and "<- case" in text and "two-way dialogue" in text
    # the module's days were scored before the first mixture fit: the configured weights
    assert story.mixture_from is None and "How this portfolio's drifts show (configured weights)" in text
    assert abs(sum(story.mixture.values()) - 1) < 1e-9
    # BG/NBD: QUIET, silent for two months after a dialogue every third day, is unlikely to be there
    # at all; a customer that keeps its rhythm is
    assert story.alive["dialogue"]["p_alive"] < 0.2 and "probability alive" in text
    assert explain(built, "C001", as_of=END).alive["dialogue"]["p_alive"] > 0.9
    page = render_html(story)
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "case opens" in page
    assert "How this portfolio" in page
    # the evidence chart has a scale: its top (the most evidence any stream has, at least 1 nat) and 0
    scale = re.findall(r'<text class="evidence-scale"[^>]*>([^<]+)</text>', page)
    top = max(1.0, max(v for values in story.contributions.values() for v in values))
    assert scale[:2] == [f"{top:+.1f}", "0"], scale
    # a customer's first weeks: no window is judged yet (no evidence), and the story still tells
    early = explain(built, "C001", as_of=START + dt.timedelta(days=30))
    assert all(v == 0 for v in early.contributions["dialogue"]) and "C001" in render_text(early)


def test_explain_tells_a_share_stream_as_a_share_not_a_rate(built):
    """The decision makers among the sales contacts are a share stream: every third sales call of a
    customer reaches a decision maker, so explain says "N of M sales and management contacts ...;
    usually 33%" as the case drivers do, not "usually 30.0 per 90 days" (a share times 90)."""
    story = explain(built, "C001", as_of=END, days=120)
    senior = next(s for s in story.streams if s.name == "senior")
    assert 0.25 < senior.usual_share < 0.45, senior
    assert senior.base_since_restart >= senior.seen_since_restart
    text = render_text(story)
    line = next(x for x in text.splitlines() if "executives and decision makers" in x)
    assert re.search(r": \d+ of \d+ sales and management contacts since \S+, about [\d.]+ expected; "
                     r"usually (2[5-9]|3\d|4[0-5])%$", line), line
    assert "per 90 days" not in line
    dialogue = next(x for x in text.splitlines() if x.strip().startswith("two-way dialogue"))
    assert dialogue.endswith("per 90 days"), dialogue
    page = render_html(story)
    assert re.search(r"<td>(2[5-9]|3\d|4[0-5])% of sales and management contacts</td>", page), page
    # the page tells a share's count with its base, as the text does: "N of M sales and management contacts"
    assert f"<td>{senior.seen_since_restart} of {senior.base_since_restart} sales and management contacts</td>" in page


def test_explain_counts_since_the_drift_began_and_tells_cases_as_of_the_day(built, tmp_path):
    """What `loyalty explain` says must not depend on how many days it draws: "N since <day>" counts
    from the day the drift most likely began even when --days shows fewer days. As of a past day, a
    case closed later was open on that day (not "closed <a later day>"); the P(alive) heading says
    which day it is from; no two streams share a colour in the chart; a stream that added nothing
    is not said to have been against drift."""
    wide, narrow = explain(built, "QUIET", as_of=END, days=120), explain(built, "QUIET", as_of=END, days=5)
    assert narrow.restart_day == wide.restart_day < narrow.days[0]
    assert [(s.name, s.seen_since_restart, round(s.expected_since_restart, 6), s.base_since_restart)
            for s in narrow.streams] == [(s.name, s.seen_since_restart, round(s.expected_since_restart, 6),
                                          s.base_since_restart) for s in wide.streams]
    assert render_text(narrow).split("Evidence now")[1] == render_text(wide).split("Evidence now")[1]
    page = render_html(wide)
    colours = re.findall(r'<span style="color:(#[0-9a-f]+)">', page)
    assert len(colours) == len(wide.streams) == len(set(colours)), colours
    assert f"probability alive (as of {wide.alive['dialogue']['as_of_date']})</h2>" in page
    for line in render_text(wide).splitlines():
        if "+0.0 (" in line or "-0.0 (" in line:
            assert "(no evidence either way)" in line, line
    # each weekly bar is dated by the day whose probability it shows (not the week's Monday)
    by_day = dict(zip(wide.days, wide.probability))
    bars = re.findall(r"^  (\d{4}-\d\d-\d\d)  [#.]+ +(\d+)%", render_text(wide), re.M)
    assert len(bars) >= 15 and bars[-1][0] == str(END)
    for day, shown in bars:
        assert int(shown) == round(by_day[dt.date.fromisoformat(day)] * 100), (day, shown)
    # ... the week's highest day, so that no peak and no case's opening falls between two rows
    weeks: dict[dt.date, list[float]] = {}
    for day, p in zip(wide.days, wide.probability):
        weeks.setdefault(day - dt.timedelta(days=day.weekday()), []).append(p)
    for day, shown in bars[:-1]:
        week = dt.date.fromisoformat(day) - dt.timedelta(days=dt.date.fromisoformat(day).weekday())
        assert int(shown) == round(max(weeks[week]) * 100), (day, shown)
    assert max(int(shown) for _, shown in bars) == round(max(wide.probability) * 100)
    assert "<- case opened" in render_text(wide) and "one row a week: its highest day" in render_text(wide)
    # a short span has a row a day
    short = explain(built, "QUIET", as_of=END, days=10)
    assert len(re.findall(r"^  \d{4}-\d\d-\d\d  [#.]+", render_text(short), re.M)) == 10
    assert "one row a day" in render_text(short)

    # a customer's first day: the chart still shows its probability (a line of one point draws nothing)
    first = explain(built, "QUIET", as_of=START)
    assert first.days == [START]
    dot = re.search(r'<circle class="latest" cx="([\d.]+)" cy="([\d.]+)"[^>]*><title>([^<]+)</title>', render_html(first))
    assert dot and dot[3] == f"{START}: {first.probability[0]:.0%}", dot
    assert abs(float(dot[2]) - (10 + 220 - first.probability[0] * 220)) < 0.1

    # a copy of the warehouse in which QUIET's case closed on END
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(built.warehouse, data_dir / "warehouse.duckdb")
    copy = load_settings(data_dir=data_dir, scoring_file=built.scoring_file, landing_url="", warehouse_path="")
    con = duckdb.connect(str(copy.warehouse))
    opened = con.execute("select min(opened_on) from build.fct_churn_risk_cases where customer_id = 'QUIET'").fetchone()[0]
    con.execute("update build.fct_churn_risk_cases set closed_on = ?, case_status = 'closed' "
                "where customer_id = 'QUIET'", [END])
    con.close()
    then = explain(copy, "QUIET", as_of=opened)
    text, page = render_text(then), render_html(then)
    assert f"open on {opened} (closed later, on {END})" in text and f"closed {END}" not in text, text
    assert f"open on {opened} (closed later, on {END})" in page and f"closed {END}" not in page
    # P(alive) is kept as of the latest refresh only: as of an earlier day it says so
    alive_day = then.alive["dialogue"]["as_of_date"]
    assert alive_day > opened
    assert (f"probability alive (as of {alive_day}, after the day explained: only the latest refresh is kept)"
            in text and "after the day explained" in page)
    assert "after the day explained" not in render_text(explain(copy, "QUIET", as_of=alive_day))
    assert f"closed {END}" in render_text(explain(copy, "QUIET", as_of=END))
    # an erased customer is said to be erased, not to be a wrong id or an unbuilt warehouse
    with pytest.raises(ExplainError, match="no drift-model rows for customer 'C001X'"):
        explain(copy, "C001X")
    erase_customers(copy, ["C001"], requested_by="dpo@example.com")
    with pytest.raises(ExplainError, match=r"customer 'C001' was erased \(through .* `loyalty erasures`\)"):
        explain(copy, "C001")


def test_explains_share_streams_are_the_drift_models():
    """SHARE_STREAMS (Python) names the macro's share streams and words their base as the case
    drivers do (int_case_openings.sql)."""
    root = Path(__file__).resolve().parents[3] / "dbt_project"
    macro = (root / "macros" / "drift_streams.sql").read_text()
    shares = dict(re.findall(r"'(\w+)': \{'kind': 'share', 'of': '(\w+)'", macro))
    openings = (root / "models" / "intermediate" / "cases" / "int_case_openings.sql").read_text()
    words = dict(re.findall(r"'(\w+)': '([\w ]+)'", re.search(r"\{\{ \{('contacts'.*?)\}\[s\.of\]", openings)[1]))
    assert {name: words[of] for name, of in shares.items()} == SHARE_STREAMS


def test_a_stream_too_rare_to_judge_says_so_instead_of_expecting_nothing():
    """User trial: "orders: 0 since ..., about 0.0 expected; usually 0.7 per 90 days" read as a
    contradiction. The model expects nothing of a stream the customer hardly ever used (its usual
    rate is mostly its segment's), and says so; a judged stream keeps its figures."""
    rare = StreamStory(name="orders", label="orders", usual_per_90_days=0.7, seen_since_restart=0,
                       expected_since_restart=0.0, evidence_since_restart=0.0)
    text = rare.seen_text(dt.date(2026, 9, 1))
    assert text.startswith("0 since 2026-09-01; not judged: too few in the customer's own history") and "0.0" not in text
    judged = StreamStory(name="orders", label="orders", usual_per_90_days=6.2, seen_since_restart=1,
                         expected_since_restart=4.1, evidence_since_restart=1.3)
    assert judged.seen_text(dt.date(2026, 9, 1)) == "1 since 2026-09-01, about 4.1 expected; usually 6.2 per 90 days"


def test_population_parameters_are_fitted_weekly_and_kept(built):
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        fits = con.execute("select fitted_as_of, stream, segment, r, alpha, a, b from build.drift_bgnbd_params").fetchall()
    finally:
        con.close()
    assert {(f[1], f[2]) for f in fits} == {("dialogue", "*"), ("orders", "*")}  # 20 customers: no segment fit
    assert all(v > 0 for f in fits for v in f[3:])
    again = population.refresh(built, END + dt.timedelta(days=3))
    assert not again.refitted and again.customers == len(CUSTOMERS)
    later = population.refresh(built, END + dt.timedelta(days=7))
    assert later.refitted


def test_explain_cli(built, tmp_path):
    env_python = Path(sys.executable)
    out = tmp_path / "why.html"
    result = subprocess.run(
        [str(env_python), "-m", "loyalty_monitor.cli", "explain", "QUIET", "--as-of", str(END), "--html", str(out)],
        capture_output=True, text=True, env={"LOYALTY_DATA_DIR": str(built.data_dir),
                                             "LOYALTY_SCORING_FILE": str(built.scoring_file),
                                             "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "<svg" in out.read_text()
    unknown = subprocess.run(
        [str(env_python), "-m", "loyalty_monitor.cli", "explain", "NOBODY"], capture_output=True, text=True,
        env={"LOYALTY_DATA_DIR": str(built.data_dir), "LOYALTY_SCORING_FILE": str(built.scoring_file),
             "PATH": "/usr/bin:/bin"})
    assert unknown.returncode == 1 and "no drift-model rows for customer 'NOBODY'" in unknown.stderr
    early = subprocess.run(
        [str(env_python), "-m", "loyalty_monitor.cli", "explain", "QUIET", "--as-of", "2020-01-01"],
        capture_output=True, text=True,
        env={"LOYALTY_DATA_DIR": str(built.data_dir), "LOYALTY_SCORING_FILE": str(built.scoring_file),
             "PATH": "/usr/bin:/bin"})
    assert early.returncode == 1 and "Traceback" not in early.stderr, early.stderr
    assert f"its rows run from {START} to {END}; choose an --as-of in that range" in early.stderr, early.stderr


def test_a_budget_of_cases_per_manager_sets_the_opening_probability(built, tmp_path):
    """risk_cases.cases_per_manager_per_month instead of a probability: with room for a dozen cases
    a year for the one manager, the opening probability falls to the lowest candidate (the closing
    probability, 0.15), so QUIET's case opens earlier than at the default 0.3, and still nobody else
    gets one."""
    touchpoints, customers = tmp_path / "touchpoints.jsonl", tmp_path / "customers.jsonl"
    touchpoints.write_text("".join(json.dumps(e) + "\n" for e in _events()))
    customers.write_text("".join(json.dumps(c) + "\n" for c in _customers()))
    settings = warehouse_settings(tmp_path / "data", risk_cases={"cases_per_manager_per_month": 1,
                                                                "target_precision": None})
    land(settings, touchpoints, customers)
    warehouse.build(settings, as_of=END, full_refresh=True)
    budgeted = _cases(settings)
    default = _cases(built)
    assert [c for c, _, _ in budgeted] == ["QUIET"]
    assert budgeted[0][1] < default[0][1]
    # explain draws and states the opening probability the budget derived, not scoring.yml's 0.4
    story = explain(settings, "QUIET", as_of=END)
    assert story.open_probability == pytest.approx(0.15)
    assert story.cases[0]["probability_at_open"] >= 0.15
    assert "(a case opens at 15% " in render_text(story) and "case opens (15%)" in render_html(story)
    assert explain(built, "QUIET", as_of=END).open_probability == pytest.approx(0.4)


def test_a_target_precision_sets_the_opening_probability_from_what_became_of_the_customers(tmp_path):
    """risk_cases.target_precision instead of a probability. In the judged year (cases opened 180 to
    545 days before the end) two customers stop calling in February and their last orders come in
    mid-April (their orders stopped: they left, after the case), and one, LULL, stops calling for
    a few weeks in February and March but keeps ordering (it stayed). At a target of 0.5 two
    leavers in three cases are enough at the lowest opening probability, and LULL gets its case; at
    0.9 only an opening probability above LULL's peak reaches the target, and LULL gets none while
    the leavers keep theirs."""
    leaving, last_orders, lull = dt.date(2026, 2, 2), dt.date(2026, 4, 20), (dt.date(2026, 2, 2), dt.date(2026, 3, 17))
    customers = CUSTOMERS + ["LEAVER1", "LEAVER2", "LULL"]
    silences = {"LEAVER1": (leaving, None, last_orders), "LEAVER2": (leaving, None, last_orders),
                "LULL": (*lull, None)}
    touchpoints, customers_file = tmp_path / "touchpoints.jsonl", tmp_path / "customers.jsonl"
    touchpoints.write_text("".join(json.dumps(e) + "\n" for e in _events(customers, silences)))
    customers_file.write_text("".join(json.dumps(c) + "\n" for c in _customers(customers)))

    def cases_at(target: float) -> dict[str, list]:
        settings = warehouse_settings(tmp_path / f"data-{target}", risk_cases={
            "target_precision": target, "target_precision_min_customers": 2})
        land(settings, touchpoints, customers_file)
        warehouse.build(settings, as_of=END, full_refresh=True)
        con = duckdb.connect(str(settings.warehouse), read_only=True)
        try:
            peak = con.execute("select max(drift_probability) from build.int_drift_days where customer_id = 'LULL' "
                               "and as_of_date < '2026-05-01'").fetchone()[0]
            opened = con.execute("select customer_id, opened_on, probability_at_open from build.fct_churn_risk_cases "
                                 "order by customer_id, opened_on").fetchall()
        finally:
            con.close()
        out: dict[str, list] = {"peak": [peak]}
        for customer, day, probability in opened:
            out.setdefault(customer, []).append((day, probability))
        return out

    lenient = cases_at(0.5)
    assert {"LEAVER1", "LEAVER2", "LULL"} <= set(lenient)
    assert all(leaving < day < leaving + dt.timedelta(days=60) for c in ("LEAVER1", "LEAVER2")
               for day, _ in lenient[c])
    lull_peak = lenient["peak"][0]
    assert 0.15 < lull_peak < 0.99, "the lull must peak between the candidate opening probabilities"
    strict = cases_at(0.9)
    assert "LULL" not in strict and {"LEAVER1", "LEAVER2", "QUIET"} <= set(strict)
    # the leavers' cases open later, at an opening probability above the lull's peak
    assert all(p > lull_peak for c in ("LEAVER1", "LEAVER2") for _, p in strict[c])
    assert strict["LEAVER1"][0][0] >= lenient["LEAVER1"][0][0]


def test_the_mixture_weights_are_fitted_and_take_effect_on_the_next_day(built):
    """The population step fitted how this portfolio's drifts show (loyalty_monitor/drift/mixture.py)
    from the scored days; the fit takes effect on the first day not scored yet, so every scored day
    kept the weights it was scored with. The view the fit reads (int_drift_window_evidence), mixed
    with the configured weights, gives int_drift_days' windows to the thousandth of a nat: one
    formula for both."""
    drift = load_scoring(built.scoring_file)["drift"]
    streams, alone = list(drift["streams"]), drift["single_stream_share"]
    windows = drift["window_days"]
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        fits = con.execute("select effective_from, alternative, weight from build.drift_mixture_weights").fetchall()
        scored_with_fit = con.execute("select count(*) from build.int_drift_days "
                                      "where mixture_effective_from is not null").fetchone()[0]
        columns = ", ".join(f"e.w{k}_milli_{s}" for k in windows for s in streams)
        stored = ", ".join(f"d.window{k}_milli" for k in windows)
        rows = con.execute(f"select {columns}, {stored} from build.int_drift_window_evidence e "
                           "join build.int_drift_days d using (customer_id, as_of_date)").fetchall()
    finally:
        con.close()
    assert {day for day, _, _ in fits} == {END + dt.timedelta(days=1)}
    weights = {name: weight for _, name, weight in fits}
    assert set(weights) == {"all", *streams} and abs(sum(weights.values()) - 1) < 1e-9
    assert scored_with_fit == 0
    values = np.array(rows, dtype=float)
    n = len(windows) * len(streams)
    per_stream = values[:, :n].reshape(len(values), len(windows), len(streams)) / 1000.0
    terms = np.concatenate([per_stream.sum(axis=2, keepdims=True), per_stream], axis=2)
    configured = np.log([1 - alone] + [alone / len(streams)] * len(streams))
    x = terms + configured
    top = x.max(axis=2)
    mixed = top + np.log(np.exp(x - top[:, :, None]).sum(axis=2))
    assert len(values) > 5000
    assert np.abs(np.round(mixed * 1000) - values[:, n:]).max() <= 1


def test_the_drift_model_scores_only_days_that_are_over(built):
    """A run during the day (an event-driven run, as-of today) builds today's scorecard, but the
    drift model stops at yesterday: its population parameters are written once per day and kept,
    so they must not come from half a day. Runs on whatever day the suite runs (last: it moves the
    module's warehouse forward)."""
    today = dt.datetime.now(dt.timezone.utc).date()
    warehouse.build(built, as_of=today)
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        health = con.execute("select max(as_of_date) from build.fct_customer_health_daily").fetchone()[0]
        drift = con.execute("select max(as_of_date) from build.int_drift_days").fetchone()[0]
        portfolio = con.execute("select max(date_day) from build.int_portfolio_days").fetchone()[0]
        open_cases = con.execute("select count(*) from build.fct_churn_risk_cases where case_status = 'open'").fetchone()[0]
        first_with_fit = con.execute("select min(as_of_date) from build.int_drift_days "
                                     "where mixture_effective_from is not null").fetchone()[0]
    finally:
        con.close()
    assert health == today
    assert drift == portfolio == today - dt.timedelta(days=1)
    assert open_cases == 1  # QUIET's case is still open: judged on the last day that is over
    # the days scored after the module's build are scored with the mixture weights fitted then
    assert first_with_fit == END + dt.timedelta(days=1)


def _case_rows(settings) -> dict[str, list[dict]]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        cursor = con.execute("select * from build.fct_churn_risk_cases order by customer_id, opened_on")
        names = [d[0] for d in cursor.description]
        out: dict[str, list[dict]] = {}
        for row in cursor.fetchall():
            case = dict(zip(names, row))
            out.setdefault(case["customer_id"], []).append(case)
        return out
    finally:
        con.close()


def test_a_case_opened_after_the_customer_went_silent_says_it_may_already_have_left(tmp_path):
    """AWAY did not come back from the portfolio's summer holiday: the holiday excuses its silence,
    so its case opens weeks after it was last heard from, for a customer usually heard from every
    few days; the case says that it may already have left and asks for a win-back call. DRIFTS
    stops talking with us in May but goes on ordering: it is drifting, not gone, and its case is a
    churn-risk case. With went_silent_chance 0 every case is a churn-risk case."""
    customers = CUSTOMERS[:-1] + ["AWAY", "DRIFTS"]
    silences = {"AWAY": (HOLIDAY[0], None, HOLIDAY[0]), "DRIFTS": (dt.date(2026, 5, 4), None, None)}
    touchpoints, master = tmp_path / "touchpoints.jsonl", tmp_path / "customers.jsonl"
    touchpoints.write_text("".join(json.dumps(e) + "\n" for e in _events(customers, silences)))
    master.write_text("".join(json.dumps(c) + "\n" for c in _customers(customers)))
    rules = load_scoring(Path(__file__).parents[3] / "config" / "scoring.yml")["risk_cases"]

    settings = warehouse_settings(tmp_path / "data")
    land(settings, touchpoints, master)
    warehouse.build(settings, as_of=END, full_refresh=True)
    cases = _case_rows(settings)
    assert set(cases) == {"AWAY", "DRIFTS"}, cases
    [away] = cases["AWAY"]
    assert away["case_kind"] == "went_silent"
    assert away["last_heard_on"] < HOLIDAY[0] and away["opened_on"] > HOLIDAY[1]
    assert away["days_silent"] == (away["opened_on"] - away["last_heard_on"]).days >= rules["went_silent_min_days"]
    assert away["usual_heard_gap_days"] < 7  # calls every third weekday, orders every other week
    assert away["drivers"].startswith(f"nothing heard from the customer for {away['days_silent']} days"), away["drivers"]
    assert "may already have left" in away["drivers"]
    assert away["suggested_action"] == rules["went_silent_action"]
    [drifts] = cases["DRIFTS"]
    assert drifts["case_kind"] == "churn_risk" and drifts["opened_on"] > dt.date(2026, 5, 4)
    assert drifts["days_silent"] < rules["went_silent_min_days"]  # its orders go on
    assert drifts["suggested_action"] == rules["suggested_action"]
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        alerts = dict(con.execute("select customer_id, rule from build.fct_churn_alerts "
                                  "where alert_kind = 'risk_case'").fetchall())
        heard: dict[str, list] = {}
        for customer_id, day in con.execute("select customer_id, event_date from build.int_touchpoints "
                                            "where direction = 'inbound' or is_two_way_dialogue").fetchall():
            heard.setdefault(customer_id, []).append(day)
        first_days = dict(con.execute("select customer_id, first_day from build.int_customer_bounds").fetchall())
    finally:
        con.close()
    assert alerts == {"AWAY": "went_silent", "DRIFTS": "churn_risk"}
    # the bench labels the oracle's alerts with a replica of the rule: it agrees with the mart on
    # every case, and turns at AWAY's 30th silent day
    silence = Silence.from_scoring(heard, first_days, load_scoring(settings.scoring_file))
    assert {c: silence.went_silent(c, rows[0]["opened_on"]) for c, rows in cases.items()} == {
        "AWAY": True, "DRIFTS": False}
    gone_for = [silence.went_silent("AWAY", away["last_heard_on"] + dt.timedelta(days=d)) for d in (29, 30, 200)]
    assert gone_for == [False, True, True]

    off = warehouse_settings(tmp_path / "off", risk_cases={"went_silent_chance": 0})
    land(off, touchpoints, master)
    warehouse.build(off, as_of=END, full_refresh=True)
    kinds = {c: [row["case_kind"] for row in rows] for c, rows in _case_rows(off).items()}
    assert kinds == {"AWAY": ["churn_risk"], "DRIFTS": ["churn_risk"]}


def test_a_silence_that_goes_on_never_becomes_the_customers_norm(tmp_path):
    """GONE, heard from every few days and ordering every other week, falls silent in every stream
    in December and stays silent for a year. Its silence is judged against its history before the
    silence however long it lasts: the usual dialogue rate does not shrink towards the silence,
    the probability stays high and its case stays open (it does not close as "recovered" after
    the longest window while nothing has been heard). The others keep their rhythm: no case."""
    gone_from = dt.date(2025, 12, 1)
    customers = CUSTOMERS[:-1] + ["GONE"]
    touchpoints, master = tmp_path / "touchpoints.jsonl", tmp_path / "customers.jsonl"
    touchpoints.write_text("".join(json.dumps(e) + "\n" for e in _events(customers, {"GONE": (gone_from, None, gone_from)})))
    master.write_text("".join(json.dumps(c) + "\n" for c in _customers(customers)))
    settings = warehouse_settings(tmp_path / "data")
    land(settings, touchpoints, master)
    warehouse.build(settings, as_of=END, full_refresh=True)

    cases = _case_rows(settings)
    assert set(cases) == {"GONE"}, cases
    [case] = cases["GONE"]
    assert case["opened_on"] <= gone_from + dt.timedelta(days=60) and case["closed_on"] is None, case
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        rows = con.execute("select as_of_date, drift_probability, usual_rate_dialogue, last_active_date "
                           "from build.int_drift_days where customer_id = 'GONE' and as_of_date >= ? "
                           "order by as_of_date", [case["opened_on"]]).fetchall()
    finally:
        con.close()
    last_active = {r[3] for r in rows}
    assert len(last_active) == 1 and max(last_active) < gone_from, last_active
    # 250 days in, the silence has outlasted the longest window (180) and the baseline's skip (60)
    later = [r for r in rows if r[0] >= gone_from + dt.timedelta(days=250)]
    assert later and min(r[1] for r in later) >= 0.9, min(r[1] for r in later)
    usual = [r[2] for r in rows if r[0] >= gone_from + dt.timedelta(days=60)]
    assert max(usual) - min(usual) < 0.05 * max(usual), (min(usual), max(usual))
