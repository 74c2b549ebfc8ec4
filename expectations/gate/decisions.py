"""Quarantined rows after a fix (release: re-validated, those that pass go in) or as they are (accept)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from expectations.config import GateConfig
from expectations.gate.records import _exclusive, _existing_docs, _finish
from expectations.gate.results import UTC, Finding, GateResult, Progress, _id_ranges, _short
from expectations.gate.runner import _quiet, _RowFailure, _run_frames
from loyalty_core.landing_zone import DATASETS, LandingZone
from loyalty_core.settings import Settings

if TYPE_CHECKING:  # frames imports Great Expectations (seconds): only when validating
    pass

log = logging.getLogger("loyalty.quality")


@dataclass
class QuarantineDecision:
    """What ``release_rows`` / ``accept_rows`` did, by quarantine id."""

    action: str  # "release" | "accept"
    changed: list[int]  # now released / accepted: staging takes them in on the next run
    still_failing: dict[int, str] = field(default_factory=dict)  # release: id -> why still held
    skipped: dict[int, str] = field(default_factory=dict)  # id -> why nothing was done
    result: GateResult | None = None  # the re-validation (release) or the run-log record (accept)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _targets(settings: Settings, ids: list[int] | None) -> tuple[Any, dict[int, str]]:
    """The quarantined rows asked for (``None``: all of them) and why the others are skipped."""
    # the gate loads Great Expectations: not at import
    from expectations import quarantine

    table = quarantine.table(settings)
    pending = table[table["status"] == "quarantined"]
    if ids is None:
        return pending, {}
    status = dict(zip(table["quarantine_id"].astype(int), table["status"]))
    skipped = {int(i): (f"status is {status[i]}, not quarantined" if i in status else "no such quarantine id")
               for i in ids if status.get(i) != "quarantined"}
    return pending[pending["quarantine_id"].isin(list(ids))], skipped


def release_rows(settings: Settings, ids: list[int] | None, reason: str, *, by: str | None = None,
                 now: datetime | None = None, progress: Progress | None = None) -> QuarantineDecision:
    """Re-validate quarantined rows after a fix (their master data landed, a suite or the contract
    was corrected) and release those that pass: staging takes them in on the next run, which
    rebuilds the days they change. ``ids=None``: every quarantined row. The re-validation reads the
    rows from their landing files with the current suites, and is strict where a batch would be
    tolerant: every row of an unknown customer fails. Rows that still fail stay quarantined."""
    # the gate loads Great Expectations: not at import
    from expectations import frames as framing

    # the gate loads Great Expectations: not at import
    from expectations import quarantine

    if not reason.strip():
        raise ValueError("say why the rows may go in now (it is recorded with them)")
    by = by or quarantine.operator()
    progress = progress or _quiet
    started, started_at = time.monotonic(), datetime.now(UTC)
    now = now or started_at
    cfg = GateConfig.from_settings(settings)
    with _exclusive(settings):
        targets, skipped = _targets(settings, ids)
        zone = LandingZone.from_settings(settings)
        landed = {DATASETS[kind]: framing.list_landed(zone, DATASETS[kind]) for kind in DATASETS}
        url = (lambda path: path) if zone.local else zone.fs.unstrip_protocol
        files = {url(f.path): f for listed in landed.values() for f in listed}
        present = targets["source_file"].isin(list(files))
        for row in targets[~present].itertuples():
            skipped[int(row.quarantine_id)] = (f"its landing file {_short(row.source_file)} is gone "
                                               "(rewritten or removed): re-send the event, or accept the row")
        targets = targets[present]
        picked = {kind: sorted({files[path].path for path in targets.loc[targets["dataset"] == kind, "source_file"]})
                  for kind in DATASETS}
        chosen = {kind: [f for f in landed[DATASETS[kind]] if f.path in set(picked[kind])] for kind in DATASETS}
        notes: list[str] = []
        rows: dict[str, int] = {}
        critical: list[Finding] = []
        warnings: list[Finding] = []
        failures: list[_RowFailure] = []
        docs_path, run_id = _existing_docs(settings), f"landing-{started_at:%Y%m%dT%H%M%S}-release"
        if len(targets):
            progress(f"re-validating {len(targets)} quarantined row(s)")
            frame_iter = framing.landing_frames(
                zone, cfg, chosen["touchpoint"], chosen["customer"], landed[DATASETS["touchpoint"]],
                landed[DATASETS["customer"]], [], now, notes, held=quarantine.held_keys(settings),
                only=quarantine.keys_frame(targets), case_event_files=chosen["case_event"],
                all_case_events=landed[DATASETS["case_event"]], case_lookup=framing.published_cases(settings))
            critical, warnings, docs_path, run_id, failures = _run_frames(
                settings, "landing", frame_iter, cfg, progress, rows, all_rows=True)
        failing: dict[tuple, list[str]] = {}
        for failure in failures:
            if failure.rows is None:
                critical.append(failure.finding)
                continue
            for record in failure.rows.to_dict("records"):
                failing.setdefault(quarantine.key_of(record), []).append(record["reason"])
        still: dict[int, str] = {}
        passing: list[int] = []
        for record in targets.to_dict("records"):
            key = quarantine.key_of(record)
            identifier = int(record["quarantine_id"])
            if critical:
                still[identifier] = "the re-validation itself failed: " + "; ".join(f.line() for f in critical)[:300]
            elif key in failing:
                still[identifier] = "; ".join(dict.fromkeys(failing[key]))
            else:
                passing.append(identifier)
        changed = quarantine.decide(settings, passing, "released", reason, by) if passing else []
        scope = {"mode": "release", "requested": "all" if ids is None else list(ids), "released": changed,
                 "still_failing": sorted(still), "skipped": sorted(skipped), "reason": reason, "by": by}
        if changed:
            notes.append(f"released by {by}: {_id_ranges(changed)} ({reason})")
        result = _finish(settings, "landing", started, started_at, critical, warnings, docs_path, run_id,
                         scope, rows, notes, [f.finding for f in failures if f.rows is not None],
                         len(still))
        return QuarantineDecision("release", changed, still, skipped, result)


def accept_rows(settings: Settings, ids: list[int] | None, reason: str, *,
                by: str | None = None) -> QuarantineDecision:
    """Take quarantined rows into the warehouse as they are (``ids=None``: every quarantined row):
    an operator who knows the data is right after all says why; who, why and when are kept with
    each row and in the run log. Staging takes them in on the next run."""
    # the gate loads Great Expectations: not at import
    from expectations import quarantine

    if not reason.strip():
        raise ValueError("say why the rows are accepted as they are (it is recorded with them)")
    by = by or quarantine.operator()
    started, started_at = time.monotonic(), datetime.now(UTC)
    with _exclusive(settings):
        targets, skipped = _targets(settings, ids)
        changed = quarantine.decide(settings, [int(i) for i in targets["quarantine_id"]], "accepted",
                                    reason, by)
        scope = {"mode": "accept_rows", "requested": "all" if ids is None else list(ids),
                 "accepted": changed, "skipped": sorted(skipped), "reason": reason, "by": by}
        note = (f"quarantined row(s) {_id_ranges(changed) or 'none'} accepted as they are by {by}: {reason}")
        result = _finish(settings, "landing", started, started_at, [], [], _existing_docs(settings),
                         f"landing-{started_at:%Y%m%dT%H%M%S}-accepted-rows", scope, {}, [note])
        return QuarantineDecision("accept", changed, {}, skipped, result)
