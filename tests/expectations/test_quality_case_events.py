"""The landing gate's suite for case events (landed_case_events) on real Parquet landing files, a
real DuckDB warehouse and real Great Expectations runs (issue 15).

A few bad case events are set aside in the quarantine with the expectation and why, and the run
goes on; with quarantine off each defect stops the run naming its expectation; an event about a
case the warehouse does not know yet is released once the case is published; without a
warehouse the case checks are skipped with a note. That dbt staging leaves quarantined case
events out is shown with a real dbt build in tests/loyalty_monitor/alerting/test_case_feedback.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import duckdb
import pytest
from quality_builders import case_event_record, land_case_events

from expectations import quarantine
from expectations.gate import GateResult, release_rows, validate_landing
from loyalty_core.settings import Settings, load_settings

UTC = timezone.utc
NOW = datetime.now(UTC)
# noon yesterday: the ten events, minutes apart, fall on one day (and one landed file) whenever the
# module is imported, also just before midnight
AT = (NOW - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
CASES = {f"K{i}": f"C0000{i}" for i in range(6)}  # case -> its customer


@pytest.fixture()
def gate_settings(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir)


def strict(settings: Settings) -> Settings:
    return settings.replace(quality={"quarantine_max_share": 0})


def publish_cases(settings: Settings, cases: dict[str, str]) -> None:
    """published.fct_churn_risk_cases as the pipeline publishes it (the columns the gate reads)."""
    con = duckdb.connect(str(settings.warehouse))
    try:
        con.execute("create schema if not exists published")
        con.execute("create or replace table published.fct_churn_risk_cases (case_id varchar, customer_id varchar, "
                    "opened_on date)")
        con.executemany("insert into published.fct_churn_risk_cases values (?, ?, current_date - 3)",
                        list(cases.items()))
    finally:
        con.close()


def events(prefix: str = "ev") -> list[dict[str, Any]]:
    """Ten good events: every type, on known cases, each by its case's customer."""
    kinds = ["acknowledge", "snooze", "close", "feedback", "acknowledge", "close", "feedback", "snooze",
             "acknowledge", "feedback"]
    return [case_event_record(f"{prefix}-{n}", kind, AT + timedelta(minutes=n), f"K{n % 6}", CASES[f"K{n % 6}"])
            for n, kind in enumerate(kinds)]


def quarantined_names(result: GateResult) -> set[tuple[str, str, str | None]]:
    return {(f.suite, f.expectation, f.column) for f in result.quarantined}


def critical_names(result: GateResult) -> set[tuple[str, str, str | None]]:
    return {(f.suite, f.expectation, f.column) for f in result.critical_failures}


SUITE = "landed_case_events"
#: defect -> (how to land it, the expectation it fails, what the quarantined row's original shows)
DEFECTS: dict[str, tuple[Callable[[Settings], Any], tuple[str, str, str], Callable[[dict], bool]]] = {
    "no_case_id": (lambda s: land_case_events(s, events(), rows_patch={2: {"case_id": None}}),
                   (SUITE, "expect_column_values_to_not_be_null", "case_id"), lambda o: o["case_id"] is None),
    "unknown_event_type": (lambda s: land_case_events(s, events(), rows_patch={0: {"event_type": "escalate"}}),
                           (SUITE, "expect_column_values_to_be_in_set", "event_type"),
                           lambda o: o["event_type"] == "escalate"),
    "unknown_outcome": (lambda s: land_case_events(s, events(), rows_patch={2: {"outcome": "won"}}),
                        (SUITE, "expect_column_values_to_be_in_set", "outcome"), lambda o: o["outcome"] == "won"),
    "close_without_outcome": (lambda s: land_case_events(s, events(), rows_patch={5: {"outcome": None}}),
                              (SUITE, "expect_column_values_to_not_be_null", "outcome"),
                              lambda o: o["event_type"] == "close" and o["outcome"] is None),
    "snooze_ends_before_it_starts": (
        lambda s: land_case_events(s, events(), rows_patch={1: {"snooze_until": (AT - timedelta(days=3)).date()}}),
        (SUITE, "expect_column_values_to_be_between", "snooze_days"), lambda o: o["event_type"] == "snooze"),
    "from_the_future": (lambda s: land_case_events(s, events(), rows_patch={3: {"occurred_at": NOW + timedelta(days=30)}}),
                        (SUITE, "expect_column_values_to_be_between", "occurred_at"),
                        lambda o: o["event_type"] == "feedback"),
    "unknown_case": (lambda s: land_case_events(s, events()[:9] + [case_event_record("ev-x", "acknowledge", AT, "K-typo", "C00001")]),
                     (SUITE, "expect_column_values_to_not_be_in_set", "case_id"), lambda o: o["case_id"] == "K-typo"),
    "customer_is_not_the_cases": (lambda s: land_case_events(s, events(), rows_patch={4: {"customer_id": "C00005"}}),
                                  (SUITE, "expect_column_values_to_be_null", "case_customer_mismatch"),
                                  lambda o: o["case_id"] == "K4" and o["customer_id"] == "C00005"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_a_bad_case_event_is_quarantined_with_why_and_the_run_goes_on(gate_settings, defect):
    publish_cases(gate_settings, CASES)
    inject, expected, shows = DEFECTS[defect]
    inject(gate_settings)
    result = validate_landing(gate_settings)
    assert result.passed and not result.critical_failures, result.summary()
    assert quarantined_names(result) == {expected}, result.summary()
    assert result.rows.get(SUITE) == 10 and result.scope["case_event_files"] == 1
    (row,) = quarantine.listing(gate_settings)
    assert row["dataset"] == "case_event" and row["status"] == "quarantined"
    assert row["expectation"] == f"{expected[0]}.{expected[1]} on {expected[2]}"
    assert row["reason"].startswith(result.quarantined[0].why) and Path(row["source_file"]).is_file()
    assert shows(row["original"]), row["original"]
    assert "1 row(s) set aside in quarantine" in result.summary()
    assert validate_landing(gate_settings).rows == {}  # the batch is done: the mark moved on


@pytest.mark.parametrize("defect", ["unknown_outcome", "customer_is_not_the_cases"])
def test_with_quarantine_off_a_bad_case_event_stops_the_run_naming_its_expectation(gate_settings, defect):
    settings = strict(gate_settings)
    publish_cases(settings, CASES)
    inject, expected, _ = DEFECTS[defect]
    inject(settings)
    result = validate_landing(settings)
    assert not result.passed and critical_names(result) == {expected}, result.summary()
    finding = result.critical_failures[0]
    assert finding.why and finding.examples
    if defect == "unknown_outcome":  # where the row is, for replay (GX lists no rows for "to be null")
        assert finding.locations and finding.locations[0]["source_file"].endswith(".parquet")
    assert f"CRITICAL landed_case_events: {expected[1]} on {expected[2]}: 1 of 10 rows unexpected" in result.summary()
    assert validate_landing(settings).rows.get(SUITE) == 10  # the mark did not move: judged again


def test_the_same_event_id_with_other_content_is_quarantined_and_an_exact_resend_is_not(gate_settings):
    publish_cases(gate_settings, CASES)
    first = events()
    land_case_events(gate_settings, first)
    assert validate_landing(gate_settings).passed
    resend = [dict(first[0])]  # the web app's retry: same event, same content
    changed = [{**first[2], "payload": {"outcome": "lost"}}]  # same id, another outcome
    land_case_events(gate_settings, resend + changed)
    result = validate_landing(gate_settings)
    assert result.passed and quarantined_names(result) == {
        (SUITE, "expect_column_values_to_be_null", "conflicting_event_id")}, result.summary()
    (row,) = quarantine.listing(gate_settings)
    assert row["event_id"] == first[2]["event_id"] and row["original"]["outcome"] == "lost"


def test_an_event_about_a_case_not_yet_published_is_released_once_it_is(gate_settings):
    publish_cases(gate_settings, CASES)
    land_case_events(gate_settings, events()[:9] + [case_event_record("ev-new", "acknowledge", AT, "K9", "C00009")])
    result = validate_landing(gate_settings)
    assert result.passed and result.quarantined_rows == 1
    (held,) = quarantine.listing(gate_settings)
    early = release_rows(gate_settings, [held["quarantine_id"]], "the case should be there", by="anna")
    assert early.changed == [] and "does not know" in early.still_failing[held["quarantine_id"]]
    publish_cases(gate_settings, {**CASES, "K9": "C00009"})
    released = release_rows(gate_settings, [held["quarantine_id"]], "K9 published by today's run", by="anna")
    assert released.changed == [held["quarantine_id"]], released
    assert quarantine.held_keys(gate_settings).empty


def test_without_a_warehouse_the_case_checks_are_skipped_with_a_note(gate_settings):
    land_case_events(gate_settings, events()[:9] + [case_event_record("ev-x", "acknowledge", AT, "K-typo", "C00001")])
    result = validate_landing(gate_settings)
    assert result.passed and not result.quarantined, result.summary()
    assert any("no published warehouse to check their case ids" in note for note in result.notes)
