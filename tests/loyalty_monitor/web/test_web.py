"""The account managers' web app, served for real on a loopback port and driven by real headless Chromium.

One module-wide world: a generated history (shifted so that it ends yesterday, because case events
carry the real clock), landed, built with the real dbt project and published; the session's Tansu
broker for the case events; the real consumer lands them and the next dbt build shows them.
Screenshots are kept in test-artifacts/web-*.png.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import httpx
import pytest
import yaml
from streaming_helpers import read_topic
from web_browser import Browser

from loyalty_core.landing_zone import LandingZone
from loyalty_core.settings import PROJECT_ROOT, Settings, load_settings
from loyalty_monitor import access as auth
from loyalty_monitor import warehouse
from loyalty_monitor.generator import generate
from loyalty_monitor.web import BackgroundServer
from streaming.landing import land_jsonl_offline

EVIL = ' <b id="injected-b">Bold</b><img id="injected-img" src="x"> & <script>window.__pwned = 1</script>Søn'
LEADER = "ceo@example.com"
#: The generated history's own dates; it is shifted by whole weeks to end yesterday.
GEN_START, GEN_END = dt.date(2025, 3, 3), dt.date(2025, 11, 30)
TODAY = dt.datetime.now(dt.timezone.utc).date()


def _shift_history(source: Path, target: Path, field: str, days: int, rename: bool = False) -> None:
    lines = []
    for line in source.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            stamp = dt.datetime.fromisoformat(record[field])
        except (ValueError, KeyError, TypeError):
            lines.append(line)  # the generator's malformed lines stay as they are
            continue
        record[field] = (stamp + dt.timedelta(days=days)).isoformat()
        if rename:
            record["name"] = record["name"] + EVIL
        lines.append(json.dumps(record, ensure_ascii=False))
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


class World:
    def __init__(self, settings: Settings, url: str, root: Path):
        self.settings, self.url, self.root = settings, url, root

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.settings.warehouse), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def link(self, email: str) -> str:
        return f"{self.url}/login?token={auth.link_token(self.settings, email)}"

    def rebuild(self) -> None:
        # as of the day it runs: case events recorded just after midnight are dated that day
        warehouse.build(self.settings, as_of=dt.datetime.now(dt.timezone.utc).date(),
                        select="stg_landing__case_events+")
        warehouse.release_duckdb()
        warehouse.publish(self.settings, published_by="test")


@pytest.fixture(scope="module")
def world(tmp_path_factory, broker) -> World:
    from streaming.topics import ensure_topics

    root = tmp_path_factory.mktemp("web")
    data_dir = root / "data"
    data_dir.mkdir()
    scoring = yaml.safe_load((PROJECT_ROOT / "config" / "scoring.yml").read_text())
    scoring["risk_cases"].update(open_probability=0.15, close_probability=0.08)  # enough open cases for 30 customers
    (data_dir / "scoring.yml").write_text(yaml.safe_dump(scoring, sort_keys=False))
    suffix = os.urandom(4).hex()
    settings = load_settings(
        data_dir=data_dir, scoring_file=data_dir / "scoring.yml", landing_url="", warehouse_path="",
        bootstrap_servers=broker.bootstrap_servers, topic_touchpoints=f"touchpoints-web-{suffix}",
        topic_customers=f"customers-web-{suffix}", topic_case_events=f"case-events-web-{suffix}",
        topic_dead_letter=f"dead-letter-web-{suffix}", topic_batches=f"batches-web-{suffix}",
        consumer_group=f"landing-web-{suffix}", max_poll_interval_ms=3000, session_timeout_ms=3000,
        batch_max_wait_s=0.5, web_leadership_emails=LEADER, web_signing_keys="new-key-0123456789,old-key-0123456789")
    ensure_topics(settings)
    generate(root / "generated", customers=30, start=GEN_START, end=GEN_END, seed=5, churn_share=0.5,
             opportunity_rate=0)
    shift = ((TODAY - dt.timedelta(days=1) - GEN_END).days // 7) * 7
    _shift_history(root / "generated" / "touchpoints.jsonl", root / "touchpoints.jsonl", "occurred_at", shift)
    _shift_history(root / "generated" / "customers.jsonl", root / "customers.jsonl", "updated_at", shift, rename=True)
    land_jsonl_offline(settings, root / "touchpoints.jsonl", root / "customers.jsonl")
    warehouse.build(settings, as_of=TODAY, full_refresh=True)
    warehouse.release_duckdb()
    warehouse.publish(settings, published_by="test")
    with BackgroundServer(settings) as url:
        yield World(settings, url, root)


@pytest.fixture(scope="module")
def managers(world) -> dict[str, dict]:
    """Two account managers with open cases: A has the most valuable one (today's probability x the
    value at stake, the queue's order)."""
    rows = world.query("""select account_manager_email, case_id, customer_id,
                                 coalesce(probability_now, probability_at_open) * value_at_stake_reporting as at_risk
                          from published.fct_case_lifecycle where case_status = 'open'
                          order by at_risk desc nulls last, opened_on, case_id""")
    by_manager: dict[str, dict] = {}
    for email, case_id, customer_id, value in rows:
        by_manager.setdefault(email, {"email": email, "cases": [], "customers": []})
        by_manager[email]["cases"].append(case_id)
        by_manager[email]["customers"].append(customer_id)
    assert len(by_manager) >= 2, f"the history needs open cases of two managers, got {rows}"
    first, second = list(by_manager.values())[:2]
    return {"A": first, "B": second}


@pytest.fixture()
def browser(tmp_path):
    running = Browser(tmp_path / "chromium")
    yield running
    running.close()


def _local_only(world: World, browser: Browser) -> None:
    outside = [u for u in browser.requests if not (u.startswith(world.url + "/") or u.startswith("data:"))]
    assert not outside, f"requests off the machine: {outside}"
    assert not browser.errors, browser.errors


def test_a_sign_in_link_opens_the_managers_queue_ranked_by_value_at_risk(world, managers, browser, artifacts_dir):
    a = managers["A"]
    browser.goto(world.link(a["email"]))
    assert urlsplit(browser.url).path == "/queue"
    assert browser.text("#signed-in-as") == a["email"]
    shown = browser.eval("[...document.querySelectorAll('#queue tbody tr')].map(r => r.dataset.case)")
    assert shown == a["cases"], "the manager's open cases, highest expected value at risk today first"
    # the figure shown is today's probability x the value at stake (the probability the row shows),
    # in the reporting currency; user trial: it was the opening day's beside "99% likely today"
    for case_id, at_risk, currency in world.query(
            "select case_id, coalesce(probability_now, probability_at_open) * value_at_stake_reporting, "
            f"reporting_currency from published.fct_case_lifecycle where case_id in ({', '.join('?' * len(shown))})",
            shown):
        assert f"{at_risk:,.0f} {currency}" in browser.text(f"#queue #case-{case_id}"), case_id
    cookie = next(c for c in browser.cookies() if c["name"] == auth.SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert browser.eval("document.querySelectorAll('form[action$=\"/acknowledge\"]').length") == len(a["cases"])
    # a case opened after the customer went silent says so instead of a probability
    kinds = dict(world.query("select case_id, case_kind from published.fct_case_lifecycle where case_id in "
                             f"({', '.join('?' * len(shown))})", shown))
    told = browser.eval("[...document.querySelectorAll('#queue tbody tr')].map(r => "
                        "[r.dataset.case, !!r.querySelector('.went-silent'), r.innerText.includes('likely')])")
    assert {case: (silent, likely) for case, silent, likely in told} == {
        case: (kinds[case] == "went_silent", kinds[case] != "went_silent") for case in shown}
    browser.screenshot(artifacts_dir / "web-queue.png")
    _local_only(world, browser)


def test_my_customers_shows_only_the_managers_customers_with_trends_and_escapes_names(world, managers, browser,
                                                                                       artifacts_dir):
    a = managers["A"]
    browser.goto(world.link(a["email"]))
    browser.goto(f"{world.url}/customers?sort=health&dir=asc")
    shown = browser.eval("[...document.querySelectorAll('#customers tbody tr')].map(r => r.dataset.customer)")
    expected = {r[0] for r in world.query("select customer_id from published.dim_customers "
                                          "where lower(account_manager_email) = ?", [a["email"]])}
    assert set(shown) == expected and len(shown) == len(expected)
    health = browser.eval("[...document.querySelectorAll('#customers tbody tr td:nth-child(3)')]"
                          ".map(td => parseFloat(td.innerText))")
    assert health == sorted(health), "sorted by health, lowest first"
    assert browser.eval("document.querySelectorAll('#customers svg.spark polyline').length") == len(expected)
    # every name carries markup: it is shown as text, nothing of it became an element or ran
    names = browser.eval("[...document.querySelectorAll('#customers tbody tr td:first-child a')].map(a => a.innerText)")
    assert all("<b id=\"injected-b\">Bold</b>" in name for name in names)
    assert browser.eval("document.querySelectorAll('#injected-b, #injected-img, main script').length") == 0
    assert browser.eval("window.__pwned === undefined")
    browser.screenshot(artifacts_dir / "web-customers.png")
    _local_only(world, browser)


def test_the_customer_page_shows_timeline_areas_cases_and_matrix(world, managers, browser, artifacts_dir):
    a = managers["A"]
    customer_id = a["customers"][0]
    browser.goto(world.link(a["email"]))
    browser.goto(f"{world.url}/customers/{customer_id}")
    assert "<b id=\"injected-b\">Bold</b>" in browser.text("#customer-name")
    times = browser.eval("[...document.querySelectorAll('#timeline tbody tr td:first-child')].map(td => td.innerText)")
    assert times and times == sorted(times, reverse=True), "newest first"
    kinds = dict(world.query("select contact_kind, count(*) from published.fct_touchpoints where customer_id = ? "
                             "group by 1", [customer_id]))
    marked = browser.eval("[...document.querySelectorAll('#timeline .mark')].map(m => m.innerText.toLowerCase())")
    assert set(marked) == {k for k in ("friction", "caring") if kinds.get(k)}
    assert browser.eval("document.querySelectorAll('.areas svg.spark polyline').length") == 5
    assert browser.eval(f"!!document.getElementById('case-{a['cases'][0]}')")
    quadrant = world.query("select quadrant from published.fct_loyalty_matrix where customer_id = ? "
                           "order by period_end_date desc limit 1", [customer_id])[0][0]
    assert browser.text("#quadrant") == quadrant.replace("_", " ")
    browser.screenshot(artifacts_dir / "web-customer.png")
    _local_only(world, browser)


def test_a_case_opened_after_the_customer_went_silent_reads_may_already_have_left(world, browser):
    gone = world.query("select case_id, customer_id, account_manager_email from published.fct_case_lifecycle "
                       "where case_kind = 'went_silent' order by case_id limit 1")
    assert gone, "half the history's customers churn: some cases open after they went silent"
    case_id, customer_id, email = gone[0]
    browser.goto(world.link(email))
    browser.goto(f"{world.url}/customers/{customer_id}")
    assert browser.text(f"#case-{case_id} .went-silent") == "gone silent: may already have left"
    assert "likely at opening" not in browser.text(f"#case-{case_id}")
    assert browser.text(f"#case-{case_id} .drivers li").startswith("nothing heard from the customer for ")
    _local_only(world, browser)


def test_a_case_the_model_closed_says_whether_the_customer_had_gone_quiet_by_then(world, browser):
    """User trial: a case opened by friction closed when the friction aged out, for a customer not
    heard from since, and read "the signs of drift faded". The closing now carries the customer's
    dialogue on the closing day (fct_dialogue_daily), and leads with it when far beyond its rhythm
    (this history's closings are all within the rhythm: test_case_feedback has the quiet ones)."""
    from loyalty_monitor.alerting.messages import model_closed_words

    closed = world.query("""
        select c.case_id, c.customer_id, c.account_manager_email, q.days_since_dialogue, q.usual_gap_days
        from published.fct_case_lifecycle as c
        inner join published.fct_dialogue_daily as q on q.customer_id = c.customer_id and q.as_of_date = c.closed_on
        where c.case_status = 'closed' and c.lifecycle_state <> 'closed'
        order by q.days_since_dialogue / q.usual_gap_days desc, c.case_id limit 3""")
    assert closed, "the history has cases the model closed"
    for case_id, customer_id, email, days, gap in closed:
        browser.goto(world.link(email))
        browser.goto(f"{world.url}/customers/{customer_id}")
        words = model_closed_words({"days_since_dialogue_at_close": days, "usual_gap_days_at_close": gap})
        assert f"({words})" in browser.text(f"#case-{case_id}"), browser.text(f"#case-{case_id}")
    _local_only(world, browser)


def test_an_open_case_shows_todays_probability_and_dates_its_opening_drivers(world, managers, browser):
    """User trial: the queue showed the probability of the opening day ("53% likely") while `loyalty
    explain` said 99% today, and the opening day's drivers under "data as of <today>". An open case
    now shows the drift model's latest probability (what explain reads, build.int_drift_days) with
    the opening one as history, and its drivers say which day they describe, on the queue, the
    customer page and My customers alike."""
    a = managers["A"]
    rows = world.query(
        "select case_id, customer_id, opened_on, probability_at_open, probability_now, probability_now_on "
        "from published.fct_case_lifecycle where case_status = 'open' and case_kind = 'churn_risk' "
        "and lower(account_manager_email) = ? order by expected_value_at_risk desc", [a["email"]])
    assert rows, "manager A has an open churn-risk case"
    day = world.query("select max(as_of_date) from published.fct_customer_health_daily")[0][0]
    browser.goto(world.link(a["email"]))
    for case_id, customer_id, opened_on, at_open, now, now_on in rows:
        latest = world.query("select as_of_date, drift_probability from build.int_drift_days where customer_id = ? "
                             "order by as_of_date desc limit 1", [customer_id])[0]
        assert (now_on, now) == latest, "today's probability is the drift model's latest day, as explain shows"
        assert told_on(browser, f"#queue #case-{case_id}", now, at_open, opened_on, now_on, day), \
            browser.text(f"#queue #case-{case_id}")
        if browser.eval(f"!!document.querySelector('#queue #case-{case_id} .drivers li')"):
            assert f"why it opened on {opened_on.isoformat()}:" in browser.text(f"#queue #case-{case_id}")
    case_id, customer_id, opened_on, at_open, now, now_on = rows[0]
    browser.goto(f"{world.url}/customers/{customer_id}")
    assert told_on(browser, f"#case-{case_id}", now, at_open, opened_on, now_on, day)
    assert "likely at opening" not in browser.text(f"#case-{case_id}")
    browser.goto(f"{world.url}/customers")
    assert told_on(browser, f"#customers tr[data-customer='{customer_id}']", now, at_open, opened_on, now_on, day)
    _local_only(world, browser)


def told_on(browser: Browser, selector: str, now: float, at_open: float, opened_on: dt.date, now_on: dt.date,
            day: dt.date) -> bool:
    when = "today" if now_on == day else f"on {now_on.isoformat()}"
    return f"{now:.0%} likely {when} ({at_open:.0%} when it opened on {opened_on.isoformat()}" in browser.text(selector)


def test_open_action_needed_alerts_are_on_the_queue_and_the_customer_page(world, managers, browser):
    """User trial: the e-mail link of a dunning alert opened a customer page that said "No churn-risk
    case so far", and the queue listed cases only. The manager's action-needed alerts whose fact
    holds on the latest day (facts, not predictions) are listed on the queue and the customer's
    page, apart from the cases; an ended one, one whose rule stopped holding days ago (its episode
    still open for the cool-down) and another manager's are not. Facts for A's and B's customers are
    added to the published marts (the generated history may have none open), and removed again."""
    a, b = managers["A"], managers["B"]
    con = duckdb.connect(str(world.settings.warehouse))
    try:
        latest = con.execute("select max(as_of_date) from published.fct_customer_health_daily").fetchone()[0]

        def fact(alert_id: str, customer_id: str, since: dt.date, days: int, ended: dt.date | None) -> None:
            con.execute(
                "insert into published.fct_churn_alerts by name select * replace (? as alert_id, "
                "'dunning_escalation' as rule, 'action_needed' as alert_kind, cast(? as date) as alert_date, "
                "cast(? as bigint) as episode_days, cast(? as date) as episode_end_date, "
                "'dunning reached collection call, 12,774 PLN overdue' as drivers, "
                "'Call the customer today' as suggested_action) "
                "from published.fct_churn_alerts where customer_id = ? limit 1",
                [alert_id, since, days, ended, customer_id])
        fact("web-fact-open", a["customers"][0], latest - dt.timedelta(days=2), 3, None)
        fact("web-fact-lapsed", a["customers"][0], latest - dt.timedelta(days=9), 4, None)
        fact("web-fact-ended", a["customers"][0], latest - dt.timedelta(days=40), 5, latest - dt.timedelta(days=36))
        fact("web-fact-other", b["customers"][0], latest, 1, None)
        expected = {r[0] for r in con.execute(
            "select alert_id from published.fct_churn_alerts where alert_kind = 'action_needed' "
            "and episode_end_date is null and alert_date + to_days(cast(episode_days - 1 as integer)) >= ? "
            "and lower(account_manager_email) = ?", [latest, a["email"]]).fetchall()}
    finally:
        con.close()
    try:
        assert "web-fact-open" in expected
        browser.goto(world.link(a["email"]))
        listed = browser.eval("[...document.querySelectorAll('#action-needed tbody tr')].map(r => r.dataset.alert)")
        assert set(listed) == expected, listed
        row = browser.text("#action-needed tr[data-alert='web-fact-open']")
        assert "dunning escalation" in row and "12,774 PLN overdue" in row and "Call the customer today" in row
        assert browser.eval("!!document.querySelector('#queue')") == bool(a["cases"]), "the cases stay below"
        browser.goto(f"{world.url}/customers/{a['customers'][0]}")
        assert "web-fact-open" in browser.eval(
            "[...document.querySelectorAll('#action-needed tbody tr')].map(r => r.dataset.alert)")
        page = browser.eval("document.body.innerHTML")
        assert "web-fact-ended" not in page and "web-fact-lapsed" not in page
        _local_only(world, browser)
    finally:
        con = duckdb.connect(str(world.settings.warehouse))
        try:
            con.execute("delete from published.fct_churn_alerts where alert_id like 'web-fact-%'")
        finally:
            con.close()


def test_a_managers_link_does_not_open_another_managers_customer(world, managers, browser):
    a, b = managers["A"], managers["B"]
    browser.goto(world.link(a["email"]))
    browser.goto(f"{world.url}/customers/{b['customers'][0]}")
    assert browser.responses[f"{world.url}/customers/{b['customers'][0]}"] == 403
    assert "Not your customer" in browser.text("h1")
    assert b["customers"][0] not in browser.eval("document.body.innerHTML")
    browser.goto(f"{world.url}/cases/{b['cases'][0]}")
    assert "Not your customer" in browser.text("h1")
    # nor may A act on B's case, even with A's own valid form token
    with httpx.Client(base_url=world.url) as client:
        client.get(world.link(a["email"]).removeprefix(world.url))
        page = client.get("/queue").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        refused = client.post(f"/cases/{b['cases'][0]}/acknowledge", data={"csrf": csrf})
        assert refused.status_code == 403


def test_links_sessions_and_forms_are_signed(world, managers):
    a = managers["A"]
    settings = world.settings
    with httpx.Client(base_url=world.url) as client:
        token = auth.link_token(settings, a["email"])
        assert client.get(f"/login?token={token[:-2]}xx").status_code == 401, "tampered signature"
        payload, signature = token.split(".")
        other = auth._b64(auth._unb64(payload).replace(a["email"].encode(), managers["B"]["email"].encode()))
        assert client.get(f"/login?token={other}.{signature}").status_code == 401, "another manager's address"
        expired = auth.link_token(settings, a["email"], days=-1)
        assert client.get(f"/login?token={expired}").status_code == 401
        assert client.get("/queue").status_code == 401 and not client.cookies
        # rotation: a link signed with the old key (now second in the list) still signs in
        old = load_settings(**{**_overrides(settings), "web_signing_keys": "old-key-0123456789"})
        assert client.get(f"/login?token={auth.link_token(old, a['email'])}").status_code == 303
        page = client.get("/queue")
        assert page.status_code == 200
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        case = a["cases"][0]
        assert client.post(f"/cases/{case}/acknowledge", data={}).status_code == 403, "no CSRF token"
        assert client.post(f"/cases/{case}/acknowledge", data={"csrf": csrf},
                           headers={"Origin": "http://evil.example"}).status_code == 403, "another origin"
        # the proxy header counts only when the installation trusts its proxy
        client.cookies.clear()
        assert client.get("/queue", headers={"X-Forwarded-Email": a["email"]}).status_code == 401


def test_the_link_in_an_alert_signs_its_manager_in_and_opens_the_case(world, managers):
    """Every alert carries a signed, expiring link for its account manager (alerting/lifecycle.py):
    it signs in and opens the case itself; it never leads off the app, and it does not open another
    manager's case."""
    from loyalty_monitor.alerting.lifecycle import case_link

    a, b = managers["A"], managers["B"]
    settings = world.settings
    alert = {"alert_kind": "risk_case", "alert_id": a["cases"][0], "customer_id": a["customers"][0],
             "account_manager_email": a["email"]}
    link = case_link(settings, alert)
    assert link.startswith(settings.web_url + "/login?token=") and "next=%2Fcases%2F" in link
    with httpx.Client(base_url=world.url) as client:
        signed_in = client.get(link.removeprefix(settings.web_url))
        assert signed_in.status_code == 303 and signed_in.headers["location"] == f"/cases/{a['cases'][0]}"
        case_page = client.get(signed_in.headers["location"], follow_redirects=True)
        assert case_page.status_code == 200 and a["customers"][0] in str(case_page.url)
    with httpx.Client(base_url=world.url) as client:
        token = auth.link_token(settings, a["email"])
        for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            answer = client.get("/login", params={"token": token, "next": elsewhere})
            assert answer.headers["location"] == "/queue", elsewhere
        theirs = case_link(settings, {**alert, "alert_id": b["cases"][0], "customer_id": b["customers"][0]})
        opened = client.get(theirs.removeprefix(settings.web_url), follow_redirects=True)
        assert opened.status_code == 403


def _overrides(settings: Settings) -> dict:
    return {name: getattr(settings, name) for name in
            ("data_dir", "scoring_file", "bootstrap_servers", "topic_case_events", "web_leadership_emails")}


def test_acknowledge_and_snooze_reach_kafka_land_and_show_after_the_next_build(world, managers, browser,
                                                                              artifacts_dir):
    a, b = managers["A"], managers["B"]
    acked, snoozed = a["cases"][0], b["cases"][0]
    until = TODAY + dt.timedelta(days=21)
    browser.goto(world.link(a["email"]))
    browser.submit(f"#case-{acked} form[action$='/acknowledge']")
    assert urlsplit(browser.url).path == "/queue", browser.text()
    assert "Acknowledged" in browser.text("#notice")
    assert "acknowledged just now" in browser.text(f"#case-{acked}")
    # leadership sees every manager's cases and snoozes one of B's
    browser.clear_cookies()
    browser.goto(world.link(LEADER))
    assert snoozed in browser.eval("[...document.querySelectorAll('#queue tbody tr')].map(r => r.dataset.case)")
    browser.submit(f"#case-{snoozed} form[action$='/snooze']",
                   {"until": until.isoformat(), "reason": "Buyer on leave <b>until</b> later"})
    assert "Snoozed" in browser.text("#notice")
    _local_only(world, browser)

    events = [json.loads(m.value) for m in read_topic(world.settings, world.settings.topic_case_events)]
    by_case = {e["case_id"]: e for e in events}
    assert by_case[acked]["event_type"] == "acknowledge" and by_case[acked]["actor"] == a["email"]
    assert by_case[snoozed]["event_type"] == "snooze" and by_case[snoozed]["actor"] == LEADER
    assert by_case[snoozed]["payload"] == {"until": until.isoformat(), "reason": "Buyer on leave <b>until</b> later"}
    assert all(e["source"] == "web" for e in events)

    # a script closes nothing but gives feedback through the CLI on the same topic
    env = {**os.environ, "LOYALTY_DATA_DIR": str(world.settings.data_dir),
           "LOYALTY_BOOTSTRAP_SERVERS": world.settings.bootstrap_servers,
           "LOYALTY_TOPIC_CASE_EVENTS": world.settings.topic_case_events}
    cli = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "alerts", "feedback", acked,
                          "--verdict", "real_risk", "--by", "crm-sync", "--format", "json"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["payload"] == {"verdict": "real_risk"}

    from streaming.consumer import JsonLog, LandingConsumer

    with open(world.root / "consumer.log", "w") as log:
        summary = LandingConsumer(world.settings, until_idle=True, idle_s=1.0, log=JsonLog(log)).run()
    assert summary.dead_lettered == 0
    landed = LandingZone.from_settings(world.settings).read("case_events")
    assert sorted(landed.column("event_type").to_pylist()) == ["acknowledge", "feedback", "snooze"]

    world.rebuild()
    state = dict((r[0], r[1:]) for r in world.query(
        "select case_id, lifecycle_state, snoozed_until, snooze_reason, feedback_verdict, needs_action "
        "from published.fct_case_lifecycle where case_id in (?, ?)", [acked, snoozed]))
    assert state[acked] == ("acknowledged", None, None, "real_risk", True)
    assert state[snoozed] == ("snoozed", until, "Buyer on leave <b>until</b> later", None, False)

    browser.goto(f"{world.url}/queue")
    assert "acknowledged" in browser.text(f"#case-{acked}") and "just now" not in browser.text(f"#case-{acked}")
    assert f"snoozed until {until.isoformat()}" in browser.text(f"#snoozed #case-{snoozed}")
    assert "<b>until</b>" in browser.text(f"#snoozed #case-{snoozed}")
    browser.screenshot(artifacts_dir / "web-queue-after-build.png")
    _local_only(world, browser)


def test_the_feedback_form_on_the_case_reaches_kafka_lands_and_counts_in_the_precision_mart(world, managers,
                                                                                           browser, artifacts_dir):
    """Issue 15: "was this alert right?" (real risk / not a risk / unsure + comment) on the case in the
    customer page, posted to the feedback endpoint as the manager; landed, built, and counted by
    fct_case_feedback_monthly as a false alarm. Runs after the acknowledge/snooze test (it lands the
    topic's events so far first)."""
    a = managers["A"]
    case, customer = a["cases"][-1], a["customers"][-1]
    browser.goto(world.link(a["email"]))
    browser.goto(f"{world.url}/customers/{customer}")
    form = f"#case-{case} form.feedback"
    assert browser.eval(f"document.querySelectorAll('{form} input[name=verdict]').length") == 3
    assert browser.eval(f"[...document.querySelectorAll('{form} input[name=verdict]')].map(i => i.value)") == [
        "real_risk", "not_a_risk", "unsure"]
    browser.screenshot(artifacts_dir / "web-feedback-form.png")
    browser.submit(form, {"verdict": "not_a_risk", "comment": "Seasonal <b>dip</b>, they always slow in summer"})
    assert urlsplit(browser.url).path == f"/customers/{customer}", browser.text()
    assert "feedback sent just now" in browser.text(f"#case-{case}")
    _local_only(world, browser)

    events = [json.loads(m.value) for m in read_topic(world.settings, world.settings.topic_case_events)]
    mine = [e for e in events if e["case_id"] == case and e["event_type"] == "feedback"]
    assert len(mine) == 1 and mine[0]["actor"] == a["email"] and mine[0]["source"] == "web"
    assert mine[0]["payload"] == {"verdict": "not_a_risk", "comment": "Seasonal <b>dip</b>, they always slow in summer"}

    from streaming.consumer import JsonLog, LandingConsumer

    with open(world.root / "consumer-feedback.log", "w") as log:
        summary = LandingConsumer(world.settings, until_idle=True, idle_s=1.0, log=JsonLog(log)).run()
    assert summary.dead_lettered == 0
    world.rebuild()
    verdict, comment, opened_on, manager = world.query(
        "select feedback_verdict, feedback_comment, opened_on, account_manager_id from published.fct_case_lifecycle "
        "where case_id = ?", [case])[0]
    assert (verdict, comment) == ("not_a_risk", "Seasonal <b>dip</b>, they always slow in summer")
    false_alarms = world.query("select cases_false_alarm from published.fct_case_feedback_monthly "
                               "where month_start = ? and account_manager_id = ?",
                               [opened_on.replace(day=1), manager])
    assert false_alarms and false_alarms[0][0] >= 1
    browser.goto(f"{world.url}/customers/{customer}")
    assert "Feedback: not a risk" in browser.text(f"#case-{case}")
    assert browser.eval(f"document.querySelector('{form} input[value=not_a_risk]').checked")
    browser.screenshot(artifacts_dir / "web-feedback-after-build.png")
    _local_only(world, browser)


def test_a_snooze_date_that_has_passed_is_refused_in_the_form_and_nothing_is_sent(world, managers, browser):
    """User trial: a page left open overnight still let a manager snooze until yesterday, and the app
    answered with the contract's rule ("payload.until ... lies before the event that sets it"). The
    form now asks for a day after today, and the app refuses a passed day with that sentence on the
    case itself before anything reaches the broker."""
    a = managers["A"]
    case = a["cases"][0]
    form = f"#case-{case} form[action$='/snooze']"
    before = dt.datetime.now(dt.timezone.utc).date()  # the page's today (a run may cross midnight UTC)
    browser.goto(world.link(a["email"]))
    after = dt.datetime.now(dt.timezone.utc).date()
    assert browser.eval(f"document.querySelector(\"{form} input[name=until]\").min") in {
        (day + dt.timedelta(days=1)).isoformat() for day in (before, after)}
    # the page as it was yesterday: its date field still allowed yesterday
    browser.eval(f"document.querySelector(\"{form} input[name=until]\").removeAttribute('min')")
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    browser.submit(form, {"until": yesterday, "reason": "back from leave"})
    assert urlsplit(browser.url).path == "/queue", browser.text()
    told = browser.text(f"#case-{case} .form-error")
    assert "choose a day after today" in told and "payload" not in told, told
    assert "lies before" not in browser.text()
    assert not [e for e in (json.loads(m.value) for m in read_topic(world.settings, world.settings.topic_case_events))
                if e["case_id"] == case and e["event_type"] == "snooze" and e["payload"]["until"] == yesterday]
    _local_only(world, browser)


def test_a_snooze_until_the_year_9999_is_refused_in_words_and_nothing_is_sent(world, managers, browser):
    """Tester: a snooze date of the year 9999 showed the manager the contract's regular expression
    as the error. The form offers no day after 2099, and a posted one is refused in words."""
    a = managers["A"]
    case = a["cases"][0]
    form = f"#case-{case} form[action$='/snooze']"
    browser.goto(world.link(a["email"]))
    assert browser.eval(f"document.querySelector(\"{form} input[name=until]\").max") == "2099-12-31"
    # the page as it was before: its date field took any year (a browser lets one type 9999)
    browser.eval(f"document.querySelector(\"{form} input[name=until]\").removeAttribute('max')")
    browser.submit(form, {"until": "9999-12-31", "reason": "back after the merger"})
    told = browser.text()
    assert "The snooze was not sent: snooze until must be a date before 2100, not 9999-12-31" in told, told
    assert "^20" not in told and "[0-9]" not in told and "pattern" not in told, told
    assert not [e for e in (json.loads(m.value) for m in read_topic(world.settings, world.settings.topic_case_events))
                if e["case_id"] == case and e["event_type"] == "snooze" and e["payload"]["until"] == "9999-12-31"]
    # the refusal is a 400 page (the browser logs its status as an error); nothing left the machine
    assert not [u for u in browser.requests if not u.startswith((world.url + "/", "data:"))]
    refused = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert [e["text"] for e in browser.errors] == [refused], browser.errors


def test_a_case_acted_on_shows_its_new_state_at_once_and_a_closed_one_offers_no_more_actions(world, managers,
                                                                                             browser, artifacts_dir):
    """User trial: after closing, the badges read "new" next to "closed just now" and every button was
    still offered. Until the next run builds the event, the pages show the state the action recorded
    (the app's own record of what it sent): closed with its outcome and no acknowledge, snooze or close
    (feedback stays, docs/web.md), snoozed under "Snoozed" with its date."""
    used = {managers["A"]["cases"][0], managers["A"]["cases"][-1], managers["B"]["cases"][0]}
    free = [r for r in world.query("select case_id, customer_id from published.fct_case_lifecycle "
                                   "where case_status = 'open' and lifecycle_state = 'new' "
                                   "order by expected_value_at_risk desc") if r[0] not in used]
    assert len(free) >= 2, "two more open cases to act on"
    (closed, closed_customer), (snoozed, _) = free[:2]
    until = TODAY + dt.timedelta(days=10)
    browser.goto(world.link(LEADER))
    browser.submit(f"#queue #case-{closed} form[action$='/close']", {"outcome": "saved", "note": "renewed"})
    row = browser.text(f"#queue #case-{closed}")
    assert "closed: saved just now" in row, row
    assert browser.eval(f"[...document.querySelectorAll('#queue #case-{closed} .badge')].map(b => b.innerText)") == [
        "closed: saved", "just now"]
    assert browser.eval(f"document.querySelectorAll('#queue #case-{closed} form').length") == 0
    browser.submit(f"#queue #case-{snoozed} form[action$='/snooze']", {"until": until.isoformat(), "reason": "audit"})
    assert f"snoozed until {until.isoformat()} just now" in browser.text(f"#snoozed #case-{snoozed}")
    assert not browser.eval(f"!!document.querySelector('#queue #case-{snoozed}')")
    browser.screenshot(artifacts_dir / "web-queue-just-acted.png")
    browser.goto(f"{world.url}/customers/{closed_customer}")
    case_text = browser.text(f"#case-{closed}")
    assert "closed: saved just now" in case_text and "Closed (" in case_text and "renewed" in case_text
    actions = browser.eval(f"[...document.querySelectorAll('#case-{closed} form')].map(f => f.action.split('/').pop())")
    assert actions == ["feedback"], actions
    _local_only(world, browser)
    # an old tab or a script still posts them: the server refuses, says why, and sends nothing
    sent_before = len(read_topic(world.settings, world.settings.topic_case_events))
    with httpx.Client(base_url=world.url) as client:
        client.get(world.link(LEADER).removeprefix(world.url))
        csrf = client.get("/queue").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        for action in ("acknowledge", "close"):
            refused = client.post(f"/cases/{closed}/{action}", data={"csrf": csrf, "outcome": "saved"},
                                  headers={"Origin": world.url})
            assert refused.status_code == 409 and "Already closed" in refused.text, refused.text[:500]
    assert len(read_topic(world.settings, world.settings.topic_case_events)) == sent_before

