"""Checkpoints as code: which suite validates which data, per gate stage.

GX runs one checkpoint per suite here, because each suite validates its own in-memory table
(a GX checkpoint passes the same batch parameters, i.e. the same dataframe, to all its
validation definitions). Each checkpoint's data asset has the suite's name in the pandas data
source ``loyalty``; the tables themselves are built by expectations.frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from expectations.suites import (landed_case_events, landed_customers, landed_touchpoints, mart_alerts,
                                 mart_customers, mart_health, touchpoint_daily_volume, touchpoint_event_ids)

DATASOURCE = "loyalty"
#: Results keep the per-expectation SUMMARY (counts and up to 20 failing values), not whole rows.
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


#: Columns that locate a failing row in the landing zone, per suite (quoted in findings and Data
#: Docs so that a data engineer can find, quarantine and replay the exact records).
ROW_LOCATORS = {
    landed_touchpoints.NAME: ["source_file", "kafka_partition", "kafka_offset"],
    touchpoint_event_ids.NAME: ["files"],
    landed_customers.NAME: ["source_file", "kafka_partition", "kafka_offset"],
    landed_case_events.NAME: ["source_file", "kafka_partition", "kafka_offset"],
}
#: Suites whose critical failures are failures of landed rows: those rows are set aside in the
#: quarantine and the run goes on (expectations/quarantine.py; expectations.frames gives their
#: tables the landed rows). Every other critical failure is systemic and stops the run.
ROW_LEVEL_SUITES = frozenset(ROW_LOCATORS)
#: Suites whose rows are checks of their own (volume: a day and event type), each failing row its
#: own finding: the columns that name a row, and enough of them listed for every row of a month.
ROW_NAMES = {touchpoint_daily_volume.NAME: list(touchpoint_daily_volume.ROW_NAMES)}
ROW_NAMES_LISTED = 1000


@dataclass(frozen=True)
class CheckpointSpec:
    stage: str  # "landing" | "marts"
    suite: str

    @property
    def result_format(self) -> dict:
        locators = ROW_LOCATORS.get(self.suite)
        if locators:
            return {**RESULT_FORMAT, "unexpected_index_column_names": locators}
        if self.suite in ROW_NAMES:
            return {**RESULT_FORMAT, "unexpected_index_column_names": ROW_NAMES[self.suite],
                    "partial_unexpected_count": ROW_NAMES_LISTED}
        return RESULT_FORMAT

    @property
    def name(self) -> str:
        return f"{self.stage}.{self.suite}"

    @property
    def asset(self) -> str:
        return self.suite


#: Stage "landing": new landed data, before dbt builds anything.
LANDING = tuple(CheckpointSpec("landing", m.NAME) for m in (
    landed_touchpoints, touchpoint_event_ids, touchpoint_daily_volume, landed_customers, landed_case_events))
#: Stage "marts": the marts in schema `build`, before publish and before any alert is sent.
MARTS = tuple(CheckpointSpec("marts", m.NAME) for m in (mart_customers, mart_health, mart_alerts))

ALL = LANDING + MARTS
