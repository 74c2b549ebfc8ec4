"""The data-quality gate on real Parquet landing files and a real DuckDB warehouse, with real GX runs.

Each defect kind must fail the gate with its expectation named; a clean batch passes; a warning
does not block; only new data is validated; results and Data Docs are kept. A few rows failing a
row-level expectation are set aside in the quarantine and the run goes on; a feed that stopped, a
collapsed volume or too large a share of failing rows stop it (issue 12).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import duckdb
import pytest
from quality_builders import (
    customer_ids,
    customer_record,
    day_of_touchpoints,
    land_customers,
    land_touchpoints,
    touchpoint_record,
)

from expectations import quarantine
from expectations.config import GateConfig
from expectations.frames import volume_band
from expectations.gate import (
    GateResult,
    accept_landing,
    accept_rows,
    failure_notice,
    quality_runs,
    release_rows,
    validate_landing,
    validate_marts,
)
from loyalty_core.contract import EVENT_TYPES
from loyalty_core.settings import Settings, load_settings

UTC = timezone.utc
TODAY = datetime.now(UTC).date()
DAY = TODAY - timedelta(days=2)  # a closed day: its volume is checked
PER_TYPE = 100
CUSTOMERS = customer_ids(60)


@pytest.fixture()
def gate_settings(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir)


def with_quality(settings: Settings, **values: Any) -> Settings:
    """The settings with [quality] values as loyalty.toml would give them."""
    return settings.replace(quality=values)


@pytest.fixture()
def strict_settings(gate_settings: Settings) -> Settings:
    """Quarantine off (quarantine_max_share = 0): every critical failure stops the run, as before."""
    return with_quality(gate_settings, quarantine_max_share=0)


def land_history(settings: Settings, weeks: int = 4) -> None:
    """Master data plus the same weekday of the trailing weeks: the volume band's history."""
    land_customers(settings, [customer_record(c) for c in CUSTOMERS])
    for week in range(1, weeks + 1):
        land_touchpoints(settings, day_of_touchpoints(DAY - timedelta(weeks=week), PER_TYPE, CUSTOMERS))


def validate_history(settings: Settings) -> GateResult:
    """The gate as it ran the day after the history's last day (a weekly history: judged any later,
    its feed would be stale)."""
    after = DAY - timedelta(weeks=1) + timedelta(days=2)
    return validate_landing(settings, now=datetime.combine(after, datetime.min.time(), UTC))


def critical_names(result: GateResult) -> set[tuple[str, str, str | None]]:
    return {(f.suite, f.expectation, f.column) for f in result.critical_failures}


def quarantined_names(result: GateResult) -> set[tuple[str, str, str | None]]:
    return {(f.suite, f.expectation, f.column) for f in result.quarantined}


def warning_names(result: GateResult) -> set[tuple[str, str, str | None]]:
    return {(f.suite, f.expectation, f.column) for f in result.warnings}


def day_records() -> list[dict[str, Any]]:
    return day_of_touchpoints(DAY, PER_TYPE, CUSTOMERS)


def index_of(records: list[dict[str, Any]], event_type: str) -> int:
    return next(i for i, r in enumerate(records) if r["event_type"] == event_type)


# --- clean data ------------------------------------------------------------------------------------

def test_clean_batch_passes_keeps_results_and_then_validates_only_new_data(gate_settings):
    land_history(gate_settings)
    land_touchpoints(gate_settings, day_records())
    result = validate_landing(gate_settings)
    assert result.passed, result.summary()
    assert result.critical_failures == [] and result.warnings == []
    assert result.rows["landed_touchpoints"] == 5 * len(EVENT_TYPES) * PER_TYPE
    assert result.rows["landed_customers"] == len(CUSTOMERS)
    assert str(DAY) in result.scope["volume_dates"]  # the band was enforced on the closed day
    assert "touchpoint_daily_volume" in result.rows

    # Results kept: GX validation results, the Data Docs site, one line per run.
    quality = gate_settings.data_dir / "quality"
    assert list((quality / "gx" / "uncommitted" / "validations").rglob("*.json"))
    docs = Path(result.docs_path)
    assert docs == quality / "data_docs" / "index.html" and docs.is_file()
    site = "".join(p.read_text(errors="replace") for p in docs.parent.rglob("*.html"))
    for suite in ("landed_touchpoints", "touchpoint_event_ids", "touchpoint_daily_volume", "landed_customers"):
        assert suite in site
    runs = quality_runs(gate_settings)
    assert len(runs) == 1 and runs[0]["passed"] is True and runs[0]["stage"] == "landing"
    runs_page = (docs.parent / "gate_runs.html").read_text()  # self-contained: readable offline
    assert "landed_touchpoints" in runs_page and "https://" not in runs_page
    links = re.findall(r'href="(validations/[^"]+)"', runs_page)
    assert len(links) >= 4 and all((docs.parent / link).is_file() for link in links)
    assert "dataContextId" not in docs.read_text()  # opening the docs identifies nothing
    json.dumps(result.to_dict(), default=str)  # serialisable for XCom / JSON output

    # A second run has nothing new to look at; a new file is the only thing validated next.
    again = validate_landing(gate_settings)
    assert again.passed and again.scope["touchpoint_files"] == 0 and again.rows == {}
    land_touchpoints(gate_settings, day_of_touchpoints(TODAY - timedelta(days=1), 3, CUSTOMERS, prefix="T"))
    third = validate_landing(gate_settings)
    assert third.scope["touchpoint_files"] == 1 and third.rows["landed_touchpoints"] == 3 * len(EVENT_TYPES)
    assert third.passed, third.summary()
    assert len(quality_runs(gate_settings)) == 3


def test_exact_resends_are_not_a_defect(gate_settings):
    land_history(gate_settings)
    records = day_records()
    land_touchpoints(gate_settings, records)
    land_touchpoints(gate_settings, records[:5])  # the producer re-sent five events
    result = validate_landing(gate_settings)
    assert result.passed, result.summary()
    assert not result.warnings, result.summary()


# --- one test per kind of defect -----------------------------------------------------------------

def _duplicate_ids(settings: Settings) -> None:
    records = day_records()
    records[1]["event_id"] = records[0]["event_id"]  # same id, different content
    land_touchpoints(settings, records)


def _unknown_customers(settings: Settings) -> None:
    records = day_records()
    for record in records[::4]:  # 5 % of the run (history included): beyond the 2 % tolerance
        record["customer_id"] = "C9" + record["event_id"][-4:]
    land_touchpoints(settings, records)


def _future_timestamps(settings: Settings) -> None:
    records = day_records()
    records[3]["occurred_at"] = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    land_touchpoints(settings, records)


def _negative_amounts(settings: Settings) -> None:
    records = day_records()
    land_touchpoints(settings, records, rows_patch={index_of(records, "order"): {"amount": -5400.0}})


def _nps_out_of_range(settings: Settings) -> None:
    records = day_records()
    land_touchpoints(settings, records, rows_patch={index_of(records, "survey_response"): {"nps_score": 11}})


def _collapsed_volume(settings: Settings) -> None:
    counts = {t: PER_TYPE for t in EVENT_TYPES}
    counts["call"] = 2  # the phone system's feed broke: calls look like silence
    land_touchpoints(settings, day_of_touchpoints(DAY, counts, CUSTOMERS))


def _unknown_segment(settings: Settings) -> None:
    land_touchpoints(settings, day_records())
    land_customers(settings, [customer_record("C00007", segment="platinum",
                                              updated_at="2026-02-01T08:00:00Z")])


def _bad_manager_email(settings: Settings) -> None:
    land_touchpoints(settings, day_records())
    record = customer_record("C00008", updated_at="2026-02-01T08:00:00Z")
    record["account_manager"] = {**record["account_manager"], "email": "anna at example dot com"}
    land_customers(settings, [record])


DEFECTS: dict[str, tuple[Callable[[Settings], None], tuple[str, str, str]]] = {
    "duplicate_ids": (_duplicate_ids,
                      ("touchpoint_event_ids", "expect_column_values_to_be_unique", "event_id")),
    "missing_customer": (_unknown_customers,
                         ("landed_touchpoints", "expect_column_values_to_not_be_in_set", "customer_id")),
    "future_timestamps": (_future_timestamps,
                          ("landed_touchpoints", "expect_column_values_to_be_between", "occurred_at")),
    "negative_amounts": (_negative_amounts,
                         ("landed_touchpoints", "expect_column_values_to_be_between", "amount")),
    "nps_out_of_range": (_nps_out_of_range,
                         ("landed_touchpoints", "expect_column_values_to_be_between", "nps_score")),
    "collapsed_daily_volume": (_collapsed_volume, ("touchpoint_daily_volume",
                               "expect_column_pair_values_a_to_be_greater_than_b", "call")),
    "unknown_segment": (_unknown_segment,
                        ("landed_customers", "expect_column_values_to_be_in_set", "segment")),
    "malformed_manager_email": (_bad_manager_email, ("landed_customers",
                                "expect_column_values_to_match_regex", "account_manager_email")),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_fails_the_gate_naming_its_expectation(strict_settings, defect):
    """With quarantine off, each kind of defect stops the run naming its expectation."""
    gate_settings = strict_settings
    land_history(gate_settings)  # clean (test_clean_batch_passes...): exactly one failure is the defect's
    inject, expected = DEFECTS[defect]
    inject(gate_settings)
    result = validate_landing(gate_settings)
    assert not result.passed
    assert critical_names(result) == {expected}, result.summary()
    finding = result.critical_failures[0]
    assert finding.severity == "critical" and finding.why and finding.observed
    assert f"{expected[1]} on {expected[2]}" in result.summary()
    if expected[0] in ("landed_touchpoints", "landed_customers"):  # rows located for quarantine/replay
        assert finding.locations and all(Path(loc["source_file"]).is_file() and "kafka_offset" in loc
                                         for loc in finding.locations), finding


def test_duplicate_id_against_earlier_landed_data_is_quarantined(gate_settings):
    """The new row that re-uses an earlier event id with other content is set aside; the earlier
    one (already in the warehouse) is not touched."""
    land_history(gate_settings)
    assert validate_history(gate_settings).passed
    earlier = day_of_touchpoints(DAY - timedelta(weeks=1), PER_TYPE, CUSTOMERS)[0]
    reused = touchpoint_record(earlier["event_id"], "complaint",
                               datetime.combine(DAY, datetime.min.time(), UTC), "C00001")
    land_touchpoints(gate_settings, day_records() + [reused])
    result = validate_landing(gate_settings)
    assert result.passed and not result.critical_failures, result.summary()
    assert quarantined_names(result) == {("touchpoint_event_ids", "expect_column_values_to_be_unique",
                                          "event_id")}, result.summary()
    assert earlier["event_id"] in result.quarantined[0].observed
    (row,) = quarantine.listing(gate_settings)
    assert row["event_id"] == earlier["event_id"] and row["original"]["event_type"] == "complaint"
    assert row["customer_id"] == "C00001" and f"event_date={DAY}" in row["source_file"]


def test_warning_only_failure_does_not_block(gate_settings):
    land_history(gate_settings)
    records = day_records()
    records[0]["customer_id"] = "C77777"  # one unknown customer: within tolerance
    land_touchpoints(gate_settings, records)
    result = validate_landing(gate_settings)
    assert result.passed, result.summary()
    assert result.critical_failures == []
    assert warning_names(result) == {("landed_touchpoints", "expect_column_values_to_not_be_in_set",
                                      "customer_id")}
    assert "C77777" in result.warnings[0].observed


def test_an_unknown_id_that_looks_like_a_known_one_is_shown_so_the_difference_can_be_seen(gate_settings):
    """User trial: the warning read "e.g. C000006 " for a customer id with a trailing space, the
    difference invisible; such an example is quoted now."""
    land_history(gate_settings)
    records = day_records()
    known = records[0]["customer_id"]
    records[0]["customer_id"] = f"{known} "
    land_touchpoints(gate_settings, records)
    result = validate_landing(gate_settings)
    assert result.passed, result.summary()
    assert f"e.g. '{known} '" in result.warnings[0].observed, result.warnings[0].observed


def test_a_tiny_batch_with_two_new_customers_is_not_critical(gate_settings):
    """The tolerance of unknown customers has an absolute floor: nine rows of which two come from
    customers whose master data has not landed yet is a warning, not a stopped pipeline."""
    land_history(gate_settings)
    land_touchpoints(gate_settings, day_records())
    assert validate_landing(gate_settings).passed
    records = day_records()[:9]  # a later, event-driven batch of the same day
    for record in records:
        record["event_id"] += "-later"
    records[0]["customer_id"], records[1]["customer_id"] = "C77777", "C77778"
    land_touchpoints(gate_settings, records)
    result = validate_landing(gate_settings)
    assert result.passed, result.summary()
    assert "C77777" in result.warnings[0].observed and "C77778" in result.warnings[0].observed


def test_a_landing_zone_with_nothing_in_it_is_critical_not_no_new_data(gate_settings):
    """User trial: with the landing zone emptied the gate passed ("no new landed data"), and the
    next full refresh built an empty warehouse without a word. A fresh install's first runs,
    before anything was ever landed, pass as before."""
    for _ in range(2):
        fresh = validate_landing(gate_settings)
        assert fresh.passed and "no new landed data to validate" in fresh.notes, fresh.summary()
    land_history(gate_settings)
    land_touchpoints(gate_settings, day_records())
    assert validate_landing(gate_settings).passed
    shutil.rmtree(Path(gate_settings.landing))
    result = validate_landing(gate_settings)
    assert not result.passed
    assert [(f.suite, f.expectation) for f in result.critical_failures] == [("touchpoint_feed", "feed_is_fresh")]
    assert result.critical_failures[0].observed.startswith("nothing has landed at all: start the producers")


def test_a_damaged_gate_state_is_set_aside_and_every_file_is_checked_again(gate_settings, caplog):
    """User trial: a damaged quality/state.json stopped the run with "Invalid control character at:
    line 1 column 31". It only records how far the gate has checked: the gate now moves it aside
    and checks every landed file again."""
    land_history(gate_settings)
    land_touchpoints(gate_settings, day_records())
    assert validate_landing(gate_settings).passed
    state = Path(gate_settings.data_dir) / "quality" / "state.json"
    state.write_text('{"checked": "\x01 broken')
    with caplog.at_level("WARNING", logger="loyalty.quality"):
        again = validate_landing(gate_settings)
    assert again.passed, again.summary()
    assert again.scope["touchpoint_files"] > 1, "every landed file was checked again"
    assert [p.name.startswith("state.json.damaged-") for p in state.parent.glob("state.json.damaged-*")] == [True]
    assert "was damaged" in caplog.text and json.loads(state.read_text())


def test_a_feed_that_stopped_is_critical_whatever_the_gap_since_the_last_run(gate_settings):
    """Nothing new landed for days: not "no new data to validate" but a stopped feed. Judged at
    the end of a day two years later (a `loyalty run --as-of` long after the last event) and at
    the end of the fifth day without events."""
    land_history(gate_settings)
    land_touchpoints(gate_settings, day_records())
    assert validate_landing(gate_settings).passed
    for later in (timedelta(days=730), timedelta(days=5)):
        now = datetime.combine(DAY + later, datetime.min.time(), UTC)
        result = validate_landing(gate_settings, now=now)
        assert not result.passed, result.summary()
        assert critical_names(result) == {("touchpoint_feed", "feed_is_fresh", "event_date")}, result.summary()
        assert f"the newest landed touchpoint is from {DAY}" in result.critical_failures[0].observed
        # a real closure (no contact for days) is not a stopped feed: the finding names the way through
        days = (now.date() - timedelta(days=1) - DAY).days
        assert result.critical_failures[0].observed.endswith(f"LOYALTY_QUALITY__FEED_STALE_DAYS={days}")
    fresh = validate_landing(gate_settings, now=datetime.combine(DAY + timedelta(days=3), datetime.min.time(), UTC))
    assert ("touchpoint_feed", "feed_is_fresh", "event_date") not in critical_names(fresh)


def test_removing_the_bad_file_unblocks_the_gate(strict_settings):
    gate_settings = strict_settings
    land_history(gate_settings)
    assert validate_history(gate_settings).passed
    records = day_records()
    bad = land_touchpoints(gate_settings, records,
                           rows_patch={index_of(records, "order"): {"amount": -1.0}})
    assert not validate_landing(gate_settings).passed
    # A failed gate does not move the "validated up to" mark: the next run still sees the defect.
    assert not validate_landing(gate_settings).passed
    for path in bad:  # the data engineer quarantines the file (and re-lands a fixed one)
        os.replace(path, gate_settings.data_dir / Path(path).name)
    land_touchpoints(gate_settings, records)
    result = validate_landing(gate_settings)
    assert result.passed, result.summary()


def test_an_unreadable_landing_file_fails_the_gate_instead_of_crashing_it(gate_settings):
    land_history(gate_settings, weeks=1)
    broken = Path(gate_settings.landing) / "touchpoints" / f"event_date={DAY}" / "touchpoints-p000-1-2.parquet"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"PAR1 this is not parquet")
    result = validate_landing(gate_settings)
    assert not result.passed
    assert critical_names(result) == {("landing", "data_readable", None)}
    assert broken.name in result.critical_failures[0].observed


def test_every_day_and_type_outside_its_band_is_its_own_finding_from_one_validation(gate_settings):
    """Days checked at once are one table and one validation, but each day and type outside its
    band is named on its own, with what landed and the band it was judged by."""
    first, second = DAY - timedelta(weeks=1), DAY
    land_customers(gate_settings, [customer_record(c) for c in CUSTOMERS])
    for week in range(2, 7):
        land_touchpoints(gate_settings, day_of_touchpoints(DAY - timedelta(weeks=week), PER_TYPE, CUSTOMERS))
    assert validate_landing(gate_settings, now=datetime.combine(DAY - timedelta(weeks=2, days=-1),
                                                                datetime.min.time(), UTC)).passed
    counts = {t: PER_TYPE for t in EVENT_TYPES}
    land_touchpoints(gate_settings, day_of_touchpoints(first, {**counts, "call": 2, "order": 5 * PER_TYPE},
                                                       CUSTOMERS))
    land_touchpoints(gate_settings, day_of_touchpoints(second, {**counts, "meeting": 1}, CUSTOMERS))
    result = validate_landing(gate_settings, now=datetime.combine(DAY + timedelta(days=1),
                                                                  datetime.min.time(), UTC))
    volume = [f for f in result.critical_failures if f.suite == "touchpoint_daily_volume"]
    assert sorted((f.batch, f.column) for f in volume) == [(str(first), "call"), (str(second), "meeting")]
    [call] = [f for f in volume if f.column == "call"]
    low, high = volume_band([PER_TYPE] * 4, GateConfig.from_settings(gate_settings))
    assert low > 2
    assert call.observed == f"2 event(s), expected {low}-{high} from 4 same-weekday day(s)", call.observed
    assert (f"CRITICAL touchpoint_daily_volume [{first}]: expect_column_pair_values_a_to_be_greater_than_b "
            "on call: 2 event(s)") in result.summary()
    _, told = failure_notice(result)
    assert "`loyalty validate --accept-files \"REASON\"`" in told and "--max-share" not in told, told
    surge = [f for f in result.warnings if f.suite == "touchpoint_daily_volume"]
    assert [(f.batch, f.column) for f in surge] == [(str(first), "order")], result.summary()
    validations = [p for p in (gate_settings.data_dir / "quality" / "gx" / "uncommitted" / "validations").rglob("*.json")
                   if "touchpoint_daily_volume" in str(p)]
    assert len(validations) == 2, "one validation per gate run, not one per day"


def test_an_accepted_dip_unblocks_and_is_recorded(gate_settings):
    """A real dip (a holiday) is not a broken feed: the data engineer accepts it, with a reason."""
    land_history(gate_settings)
    _collapsed_volume(gate_settings)
    assert not validate_landing(gate_settings).passed
    with pytest.raises(ValueError):
        accept_landing(gate_settings, "  ")
    accepted = accept_landing(gate_settings, "national holiday, switchboard closed")
    assert accepted.passed and accepted.scope["accepted_files"] == 6
    assert validate_landing(gate_settings).rows == {}  # nothing pending any more
    log = quality_runs(gate_settings)
    assert [r["passed"] for r in log] == [False, True, True]
    assert "national holiday" in log[1]["notes"][0]


# --- quarantine: rows, not runs (issue 12) --------------------------------------------------------

#: What each row-level defect's quarantined row still shows of the defect (original values).
ROW_LEVEL = {
    "duplicate_ids": lambda o: o["event_id"] == "E" + f"{DAY:%Y%m%d}-000000",
    "future_timestamps": lambda o: o["occurred_at"] > datetime.now(UTC).isoformat()[:10],
    "negative_amounts": lambda o: o["amount"] == -5400.0 and o["event_type"] == "order",
    "nps_out_of_range": lambda o: o["nps_score"] == 11,
    "unknown_segment": lambda o: o["segment"] == "platinum" and o["customer_id"] == "C00007",
    "malformed_manager_email": lambda o: o["account_manager_email"] == "anna at example dot com",
}


@pytest.mark.parametrize("defect", list(ROW_LEVEL))
def test_a_row_level_defect_is_quarantined_and_the_run_goes_on(gate_settings, defect):
    """A few rows failing a row-level critical expectation are set aside with why, which
    expectation and their original values; the gate passes and the batch is done."""
    land_history(gate_settings)
    inject, expected = DEFECTS[defect]
    inject(gate_settings)
    result = validate_landing(gate_settings)
    assert result.passed and not result.critical_failures, result.summary()
    assert quarantined_names(result) == {expected}, result.summary()
    assert "set aside in quarantine" in result.summary()
    rows = quarantine.listing(gate_settings)
    assert len(rows) == result.quarantined_rows == len(result.quarantine_ids) == (2 if defect == "duplicate_ids" else 1)
    for row in rows:
        assert row["status"] == "quarantined" and row["gate_run_id"] == result.run_id
        assert row["expectation"] == f"{expected[0]}.{expected[1]} on {expected[2]}"
        assert row["reason"].startswith(result.quarantined[0].why)
        assert row["original"]["kafka_offset"] == row["kafka_offset"] and Path(row["source_file"]).is_file()
        assert row["dataset"] == ("customer" if expected[0] == "landed_customers" else "touchpoint")
    assert any(ROW_LEVEL[defect](row["original"]) for row in rows), rows
    assert validate_landing(gate_settings).rows == {}  # the batch is done: the mark moved on
    assert quarantine.held_keys(gate_settings).shape[0] == len(rows)


def test_a_share_of_failing_rows_above_the_limit_stops_the_run_and_sets_nothing_aside(gate_settings):
    """30 of 900 rows (3.3 %) failing is a broken producer, not a few bad rows: the run stops.
    Told it is one broken event type, the data engineer lets the gate set them aside for one run."""
    land_history(gate_settings)
    assert validate_history(gate_settings).passed  # the day is its own batch
    records = day_records()
    orders = [i for i, r in enumerate(records) if r["event_type"] == "order"][:30]
    land_touchpoints(gate_settings, records, rows_patch={i: {"amount": -1.0} for i in orders})
    result = validate_landing(gate_settings)
    assert not result.passed
    assert critical_names(result) == {("quarantine", "failing_row_share", None),
                                      ("landed_touchpoints", "expect_column_values_to_be_between", "amount")}
    share = next(f for f in result.critical_failures if f.expectation == "failing_row_share")
    assert share.observed.startswith(f"30 of {len(records)} new touchpoint row(s)"), share.observed
    assert not result.quarantined and quarantine.listing(gate_settings) == []
    # the notice says how to recover, in commands (user trial: only "fix the cause, then rerun")
    _, told = failure_notice(result)
    assert "`loyalty validate --max-share SHARE`" in told and "`loyalty run --as-of DATE`" in told, told
    assert "--accept-files" not in told

    wider = validate_landing(with_quality(gate_settings, quarantine_max_share=0.05))
    assert wider.passed, wider.summary()
    # more rows than the 20 a checkpoint lists: all of them come from GX's complete result
    offsets = {row["kafka_offset"] for row in quarantine.listing(gate_settings)}
    assert wider.quarantined_rows == len(offsets) == 30


def test_a_corrected_resend_goes_in_and_supersedes_the_quarantined_row(gate_settings):
    land_history(gate_settings)
    records = day_records()
    order = index_of(records, "order")
    land_touchpoints(gate_settings, records, rows_patch={order: {"amount": -5400.0}})
    assert validate_landing(gate_settings).quarantined_rows == 1
    land_touchpoints(gate_settings, [records[order]])  # the producer fixed it and sent it again
    result = validate_landing(gate_settings)
    # The held row is not history: the same event id with the right amount is no conflict.
    assert result.passed and not result.quarantined, result.summary()
    (row,) = quarantine.listing(gate_settings, status=None)
    assert row["status"] == "superseded" and row["released_by"] == "landing gate"
    assert any("superseded" in note for note in result.notes)
    assert quarantine.held_keys(gate_settings).shape[0] == 1  # still left out of the warehouse


def test_quarantined_rows_are_released_after_a_fix_or_accepted_as_they_are(gate_settings):
    """Touches of three customers whose master data has not landed yet (3.3 % of the batch: above
    the unknown-customer tolerance, within a 5 % quarantine) and one bad NPS answer are set aside.
    Released before the master data lands, they stay; after it landed, they go in. The NPS answer
    still fails a release, and is accepted as it is. Who, why and when are kept."""
    settings = with_quality(gate_settings, quarantine_max_share=0.05)
    land_history(settings)
    assert validate_history(settings).passed  # the day is its own batch
    records = day_records()
    for number, record in enumerate(records[1::30]):
        record["customer_id"] = f"C9{number % 3:04d}"
    survey = next(i for i, r in enumerate(records) if r["event_type"] == "survey_response" and i % 30 != 1)
    land_touchpoints(settings, records, rows_patch={survey: {"nps_score": 11}})
    result = validate_landing(settings)
    assert result.passed and result.quarantined_rows == 31, result.summary()
    rows = quarantine.listing(settings)
    unknown = [r["quarantine_id"] for r in rows if r["customer_id"].startswith("C9")]
    (nps,) = [r["quarantine_id"] for r in rows if r["original"]["nps_score"] == 11]
    assert len(unknown) == 30

    early = release_rows(settings, unknown[:1], "master data is due today", by="anna")
    assert early.changed == [] and "unknown to master data" in early.still_failing[unknown[0]]

    land_customers(settings, [customer_record(f"C9{n:04d}") for n in range(3)])
    released = release_rows(settings, None, "master data of C90000-C90002 landed", by="anna")
    assert sorted(released.changed) == sorted(unknown)
    assert list(released.still_failing) == [nps] and "NPS is 0-10" in released.still_failing[nps]
    assert released.result.scope["mode"] == "release" and released.result.passed

    accepted = accept_rows(settings, [nps, 999], "the survey tool scored 0-11 that week; agreed with support",
                           by="ben")
    assert accepted.changed == [nps] and accepted.skipped == {999: "no such quarantine id"}
    again = accept_rows(settings, [nps], "twice", by="ben")
    assert again.changed == [] and again.skipped == {nps: "status is accepted, not quarantined"}
    with pytest.raises(ValueError):
        accept_rows(settings, [nps], "  ")

    by_id = {r["quarantine_id"]: r for r in quarantine.listing(settings, status=None)}
    assert {by_id[i]["status"] for i in unknown} == {"released"}
    assert by_id[unknown[0]]["released_by"] == "anna" and "C90000" in by_id[unknown[0]]["release_reason"]
    assert by_id[nps]["status"] == "accepted" and by_id[nps]["released_by"] == "ben"
    assert by_id[nps]["released_at"] >= by_id[nps]["quarantined_at"]
    assert quarantine.held_keys(settings).empty  # nothing held: staging takes them all in
    modes = [run["scope"].get("mode") for run in quality_runs(settings)]
    assert modes.count("release") == 2 and modes.count("accept_rows") == 2


# --- marts ----------------------------------------------------------------------------------------

AS_OF = date(2026, 3, 2)


def build_marts(settings: Settings, schema: str = "build", **defects: Any) -> None:
    """Marts with the columns design.md fixes, as dbt would build them."""
    con = duckdb.connect(str(settings.warehouse))
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"""CREATE OR REPLACE TABLE {schema}.dim_customers AS
        SELECT 'C' || lpad(i::VARCHAR, 5, '0') AS customer_id, 'Customer ' || i AS customer_name,
               ['key', 'growth', 'standard'][i % 3 + 1] AS segment, 'DK' AS country,
               'AM' || (i % 4) AS account_manager_id, 'Manager ' || (i % 4) AS account_manager_name,
               'am' || (i % 4) || '@example.com' AS account_manager_email,
               100000.0 AS annual_potential, 'DKK' AS currency, TIMESTAMPTZ '2026-01-01 00:00:00+00' AS updated_at,
               true AS has_master_data
        FROM range(20) t(i)""")
    con.execute(f"""CREATE OR REPLACE TABLE {schema}.fct_customer_health_daily AS
        SELECT customer_id, DATE '{AS_OF}' AS as_of_date, 40.0 + i * 3 AS health_score,
               50.0 AS dialogue_score, 60.0 AS stakeholder_score, 70.0 AS service_score,
               80.0 AS financial_score, 90.0 AS commercial_score,
               CASE WHEN i < 5 THEN 'red' WHEN i < 10 THEN 'yellow' ELSE 'green' END AS status,
               'no dialogue for 40 days' AS drivers, 40 AS days_since_dialogue, 14 AS usual_gap_days,
               2.9 AS gap_ratio, segment, account_manager_id
        FROM (SELECT *, row_number() OVER (ORDER BY customer_id) - 1 AS i FROM {schema}.dim_customers)""")
    con.execute(f"""CREATE OR REPLACE TABLE {schema}.fct_churn_alerts AS
        SELECT 'A-' || h.customer_id AS alert_id, h.customer_id, c.customer_name, c.account_manager_id,
               c.account_manager_name, c.account_manager_email, 'silence' AS rule, 'high' AS severity,
               DATE '{AS_OF}' AS alert_date, NULL::DATE AS episode_end_date, h.health_score, h.status,
               h.drivers, 'call them this week' AS suggested_action, 100000.0 AS value_at_stake,
               'DKK' AS currency, c.segment
        FROM {schema}.fct_customer_health_daily h JOIN {schema}.dim_customers c USING (customer_id)
        WHERE h.status = 'red'""")
    for sql in defects.values():
        con.execute(sql.format(schema=schema))
    con.close()


MART_DEFECTS = {
    "health_score_out_of_range": ("UPDATE {schema}.fct_customer_health_daily SET health_score = 130 "
                                  "WHERE customer_id = 'C00003'",
                                  ("mart_health", "expect_column_values_to_be_between", "health_score")),
    "unknown_status": ("UPDATE {schema}.fct_customer_health_daily SET status = 'amber' "
                       "WHERE customer_id = 'C00012'",
                       ("mart_health", "expect_column_values_to_be_in_set", "status")),
    "two_health_rows_per_day": ("INSERT INTO {schema}.fct_customer_health_daily "
                                "SELECT * FROM {schema}.fct_customer_health_daily WHERE customer_id = 'C00001'",
                                ("mart_health", "expect_compound_columns_to_be_unique",
                                 "customer_id, as_of_date")),
    "alert_for_unknown_customer": ("UPDATE {schema}.fct_churn_alerts SET customer_id = 'C99999' "
                                   "WHERE customer_id = 'C00002'",
                                   ("mart_alerts", "expect_column_values_to_not_be_in_set", "customer_id")),
    "alert_for_unknown_manager": ("UPDATE {schema}.fct_churn_alerts SET account_manager_id = 'AM-gone' "
                                  "WHERE customer_id = 'C00002'",
                                  ("mart_alerts", "expect_column_values_to_not_be_in_set", "account_manager_id")),
}


def test_clean_marts_pass(gate_settings):
    build_marts(gate_settings)
    result = validate_marts(gate_settings, AS_OF)
    assert result.passed, result.summary()
    assert result.critical_failures == [] and result.warnings == []
    assert result.rows == {"mart_customers": 20, "mart_health": 20, "mart_alerts": 5}
    assert Path(result.docs_path).is_file()


def test_mart_defects_fail_naming_their_expectation(gate_settings):
    """All mart defect kinds against one warehouse, one schema per defect (one GX context)."""
    for name, (sql, expected) in MART_DEFECTS.items():
        build_marts(gate_settings, schema=name, defect=sql)
        result = validate_marts(gate_settings, AS_OF, schema=name)
        assert not result.passed, name
        assert critical_names(result) == {expected}, f"{name}: {result.summary()}"


def test_a_customer_awaiting_master_data_is_a_warning_not_a_broken_mart(gate_settings):
    """Touches that arrive before the customer's master data (an event-driven run over a tiny
    batch) give a dim_customers row with segment 'unknown' and no manager: the marts are still
    published, the data engineers see a warning; a customer WITH master data but no manager is
    still critical."""
    waiting = ("UPDATE {schema}.dim_customers SET segment = 'unknown', account_manager_id = NULL, "
               "account_manager_email = NULL, has_master_data = false WHERE customer_id = 'C00003'")
    build_marts(gate_settings, schema="waiting", defect=waiting)
    result = validate_marts(gate_settings, AS_OF, schema="waiting")
    assert result.passed, result.summary()
    assert any(f.expectation == "expect_column_values_to_be_in_set" and f.column == "has_master_data"
               for f in result.warnings), result.summary()
    broken = "UPDATE {schema}.dim_customers SET account_manager_id = NULL WHERE customer_id = 'C00003'"
    build_marts(gate_settings, schema="broken", defect=broken)
    assert not validate_marts(gate_settings, AS_OF, schema="broken").passed


def test_missing_mart_is_a_critical_failure(gate_settings):
    build_marts(gate_settings)
    con = duckdb.connect(str(gate_settings.warehouse))
    con.execute("DROP TABLE build.fct_churn_alerts")
    con.close()
    result = validate_marts(gate_settings, AS_OF)
    assert not result.passed
    assert critical_names(result) == {("marts", "table_exists", None)}
    assert "fct_churn_alerts" in result.critical_failures[0].observed

    build_marts(gate_settings)
    con = duckdb.connect(str(gate_settings.warehouse))
    con.execute("ALTER TABLE build.fct_customer_health_daily RENAME COLUMN as_of_date TO day")
    con.close()
    result = validate_marts(gate_settings, AS_OF)
    assert critical_names(result) == {("marts", "data_readable", None)}
    assert "as_of_date" in result.critical_failures[0].observed


def test_large_first_run_is_validated_in_chunks_and_still_finds_conflicts(gate_settings):
    """Bounded memory on a first run over a long history: files are validated chunk by chunk."""
    tiny_chunks = with_quality(gate_settings, chunk_mb=0.000001, quarantine_max_share=0)
    land_history(gate_settings, weeks=3)
    records = day_records()
    conflicting = touchpoint_record(records[0]["event_id"], "order",
                                    datetime.combine(DAY, datetime.min.time(), UTC), "C00002")
    land_touchpoints(gate_settings, records)
    land_touchpoints(gate_settings, [conflicting])
    result = validate_landing(tiny_chunks)
    assert result.rows["landed_touchpoints"] == 4 * len(EVENT_TYPES) * PER_TYPE + 1
    batches = {f.batch for f in result.critical_failures}
    assert len(batches) >= 1 and all(b.startswith("files ") for b in batches)
    assert critical_names(result) == {("touchpoint_event_ids", "expect_column_values_to_be_unique",
                                       "event_id")}, result.summary()


def test_marts_gate_reads_while_this_process_holds_the_warehouse_open(gate_settings):
    """dbt running in-process (dag.test) keeps a read-write connection open; the gate still reads."""
    build_marts(gate_settings)
    held = duckdb.connect(str(gate_settings.warehouse))
    try:
        result = validate_marts(gate_settings, AS_OF)
    finally:
        held.close()
    assert result.passed, result.summary()
    assert result.rows["mart_health"] == 20


def test_docs_table_is_generated_from_the_suites():
    """docs/quality.md shows every expectation with its severity; it must match the code."""
    from expectations.catalog import markdown

    docs = (Path(__file__).resolve().parents[2] / "docs" / "quality.md").read_text()
    assert markdown() in docs, "regenerate the table: python -m expectations.catalog"


def test_volume_band_is_tolerant_for_small_counts_and_strict_for_large_ones():
    config = GateConfig()
    assert volume_band([100], config) is None  # one same-weekday sample: no band yet
    assert volume_band([0, 0, 0, 0], config) == (0, 3)  # a usually absent type may occur a few times
    low, high = volume_band([1000, 980, 1010, 1000], config)
    assert 400 <= low <= 410 and 2090 <= high <= 2100  # a feed down to a third is caught
