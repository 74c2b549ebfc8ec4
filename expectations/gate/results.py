"""What the gate reports: findings, a run's result, and what the data engineers are told about it
(the pipeline decides who is told)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import timezone
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # frames imports Great Expectations (seconds): only when validating
    pass

log = logging.getLogger("loyalty.quality")


UTC = timezone.utc


Progress = Callable[[str], None]


def _short(value: Any) -> Any:
    """A landing file as ``event_date=.../name.parquet``: enough to find it, short enough to read."""
    if isinstance(value, str) and value.endswith(".parquet"):
        return "/".join(value.split("/")[-2:])
    return value


@dataclass
class Finding:
    """One failed expectation, named so a data engineer can find it in Data Docs."""

    suite: str
    expectation: str
    column: str | None
    severity: str
    observed: str
    why: str = ""
    batch: str = ""
    examples: list[Any] = field(default_factory=list)
    #: Where failing rows are (landing: file and Kafka offset), for quarantine and replay.
    locations: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        where = f"{self.suite}{f' [{self.batch}]' if self.batch else ''}"
        column = f" on {self.column}" if self.column else ""
        found = ""
        if self.locations:
            found = "; rows at " + ", ".join(
                " ".join(f"{k}={_short(v)}" for k, v in loc.items()) for loc in self.locations[:3])
        return f"{self.severity.upper():8} {where}: {self.expectation}{column}: {self.observed}{found}"


@dataclass
class GateResult:
    stage: str  # "landing" | "marts"
    passed: bool
    critical_failures: list[Finding]
    warnings: list[Finding]
    docs_path: str | None
    run_id: str
    started_at: str
    duration_s: float
    scope: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Critical row-level failures whose rows were set aside in the quarantine (the run went on).
    quarantined: list[Finding] = field(default_factory=list)
    #: Distinct landed rows behind ``quarantined``, and the quarantine ids of those new to it.
    quarantined_rows: int = 0
    quarantine_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """Plain-text summary for terminals and notifications."""
        verdict = "PASSED" if self.passed else "FAILED (critical)"
        lines = [f"quality gate {self.stage}: {verdict}; {len(self.critical_failures)} critical, "
                 f"{len(self.warnings)} warning(s); run {self.run_id}"]
        if self.quarantined:
            ids = _id_ranges(self.quarantine_ids)
            lines.append(f"  {self.quarantined_rows} row(s) set aside in quarantine"
                         f"{f' (new ids {ids})' if ids else ''}; the rest goes on")
        lines += [f"  {f.line()}" for f in self.critical_failures]
        lines += [f"  quarantined: {f.line()}" for f in self.quarantined]
        lines += [f"  {f.line()}" for f in self.warnings]
        lines += [f"  note: {n}" for n in self.notes]
        if self.docs_path:
            lines.append(f"  Data Docs: {self.docs_path}")
        return "\n".join(lines)


def _id_ranges(ids: list[int]) -> str:
    """1,2,3,7 -> "1-3, 7"."""
    spans: list[list[int]] = []
    for i in sorted(ids):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


#: How to recover from a critical finding of a landing suite or check, in the data engineer's
#: commands (docs/operations.md, "What can go wrong"); the feed check's finding says it itself.
RECOVERY = {
    "failing_row_share": "Too many rows of a batch failed: fix the producer or the feed and rerun. If one "
                         "broken source is something the day can do without, `loyalty validate --max-share "
                         "SHARE` (above the failing share the finding names) sets its rows aside for this run; "
                         "they are then listed by `loyalty validate --quarantined`.",
    "touchpoint_daily_volume": "If the volume really dipped (a holiday, a closure), accept the landed days "
                               "as they are: `loyalty validate --accept-files \"REASON\"`; otherwise fix the "
                               "feed and rerun.",
}


def failure_notice(result: GateResult) -> tuple[str, str]:
    """Subject and text of a failed gate's summary for the data engineers, with what to do."""
    subject = (f"[loyalty-monitor] quality gate {result.stage} FAILED: "
               f"{len(result.critical_failures)} critical expectation(s)")
    steps = []
    for finding in result.critical_failures:
        step = RECOVERY.get(finding.expectation) or RECOVERY.get(finding.suite)
        if step and step not in steps:
            steps.append(step)
    text = (result.summary() + "\n\nThe pipeline stopped before publishing marts and before "
            "sending alerts. " + " ".join(steps or ["Fix or remove the bad data, then re-run `loyalty validate`."])
            + "\nThen rerun the date (`loyalty run --as-of DATE`, or clear the DAG run in Airflow). "
            "Every fault and its recovery: docs/operations.md, \"What can go wrong\".")
    return subject, text


def quarantine_notice(result: GateResult) -> tuple[str, str]:
    """Subject and text telling the data engineers that rows were set aside (the run went on)."""
    ids = _id_ranges(result.quarantine_ids)
    subject = (f"quality gate {result.stage}: {len(result.quarantine_ids)} row(s) quarantined, "
               "the run goes on without them")
    text = (result.summary() + "\n\nThese rows failed critical expectations and are held out of the "
            "warehouse; the rest of the data is built, published and alerted. The rows, why and their "
            "original values: `loyalty validate --quarantined`.\n"
            f"After a fix (master data landed, a suite or producer corrected): "
            f"`loyalty validate --release {ids or 'ID'} --reason \"...\"` re-validates them and lets "
            "those that pass in on the next run.\n"
            f"If they are right as they are: `loyalty validate --accept {ids or 'ID'} --reason \"...\"`.")
    return subject, text
