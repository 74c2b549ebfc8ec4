"""The landing gate: the new landed data of a run, and accepting landed data as it is."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from expectations.config import GateConfig
from expectations.gate.records import _exclusive, _existing_docs, _finish, _read_state, _write_state
from expectations.gate.results import UTC, Finding, GateResult, Progress, _id_ranges
from expectations.gate.runner import _quiet, _run_frames, _stale_feed, _triage
from loyalty_core.landing_zone import DATASETS, LandingZone
from loyalty_core.settings import Settings

if TYPE_CHECKING:  # frames imports Great Expectations (seconds): only when validating
    from expectations import frames as framing

log = logging.getLogger("loyalty.quality")


def _select(files: list[framing.LandedFile], state_key: str, state: dict[str, Any],
            event_dates: list[date] | None, since: datetime | None) -> list[framing.LandedFile]:
    if event_dates is not None:
        wanted = set(event_dates)
        return [f for f in files if f.event_date in wanted]
    if since is not None:
        return [f for f in files if f.modified > since.timestamp()]
    mark = state.get(state_key)
    if not mark:
        return list(files)
    cutoff, at_cutoff = mark["modified"], set(mark.get("files_at_cutoff", []))
    return [f for f in files if f.modified > cutoff or (f.modified == cutoff and f.path not in at_cutoff)]


def _mark(files: list[framing.LandedFile], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    if not files:
        return previous
    cutoff = max(f.modified for f in files)
    if previous and previous["modified"] > cutoff:
        return previous
    names = [f.path for f in files if f.modified == cutoff]
    if previous and previous["modified"] == cutoff:
        names = sorted(set(names) | set(previous.get("files_at_cutoff", [])))
    return {"modified": cutoff, "files_at_cutoff": names}


def validate_landing(settings: Settings, event_dates: list[date] | None = None,
                     since_landed_at: datetime | None = None, *, now: datetime | None = None,
                     progress: Progress | None = None) -> GateResult:
    """Validate the new landed data; see the module docstring. ``now`` is for tests/backfills."""
    # the gate loads Great Expectations: not at import
    from expectations import frames as framing

    # the gate loads Great Expectations: not at import
    from expectations import quarantine

    progress = progress or _quiet
    started, started_at = time.monotonic(), datetime.now(UTC)
    now = now or started_at
    cfg = GateConfig.from_settings(settings)
    with _exclusive(settings):
        zone = LandingZone.from_settings(settings)
        state = _read_state(settings)
        all_touchpoints = framing.list_landed(zone, DATASETS["touchpoint"])
        all_customers = framing.list_landed(zone, DATASETS["customer"])
        new_touchpoints = _select(all_touchpoints, "touchpoints", state, event_dates, since_landed_at)
        new_customers = _select(all_customers, "customers", state, event_dates, since_landed_at)
        all_case_events = framing.list_landed(zone, DATASETS["case_event"])
        new_case_events = _select(all_case_events, "case_events", state, event_dates, since_landed_at)

        today = now.astimezone(UTC).date()
        volume_dates = {f.event_date for f in new_touchpoints if f.event_date}
        recent = today - timedelta(days=cfg.volume_recent_days)
        checked_through = state.get("volume_checked_through")
        if event_dates is None:
            volume_dates = {d for d in volume_dates if d >= recent}
            if since_landed_at is None and checked_through:  # catch up on days without new files
                day = max(date.fromisoformat(checked_through), recent - timedelta(days=1))
                while (day := day + timedelta(days=1)) < today:
                    volume_dates.add(day)
        volume_dates |= set(event_dates or [])
        volume_dates = sorted(d for d in volume_dates if d < today)  # an open day is not complete yet

        scope = {"touchpoint_files": len(new_touchpoints), "customer_files": len(new_customers),
                 "case_event_files": len(new_case_events),
                 "event_dates": sorted({str(f.event_date) for f in new_touchpoints + new_customers + new_case_events
                                        if f.event_date}),
                 "volume_dates": [str(d) for d in volume_dates],
                 "mode": "event_dates" if event_dates is not None
                 else "since_landed_at" if since_landed_at is not None else "new_files"}
        progress(f"landing: {len(new_touchpoints)} new touchpoint file(s), {len(new_customers)} "
                 f"customer file(s), {len(new_case_events)} case-event file(s), volume check of "
                 f"{len(volume_dates)} day(s)")
        notes: list[str] = []
        rows: dict[str, int] = {}
        frame_iter = framing.landing_frames(zone, cfg, new_touchpoints, new_customers, all_touchpoints,
                                            all_customers, volume_dates, now, notes,
                                            held=quarantine.held_keys(settings),
                                            case_event_files=new_case_events, all_case_events=all_case_events,
                                            case_lookup=framing.published_cases(settings))
        critical, warnings, docs_path, run_id, row_failures = _run_frames(
            settings, "landing", frame_iter, cfg, progress, rows)
        # nothing landed is a finding once the gate has checked something before (an emptied or
        # moved landing zone), not on a fresh install's first runs
        checked_before = any(state.get(d) for d in ("touchpoints", "customers", "case_events"))
        landed_before = bool(all_touchpoints or all_customers or all_case_events) or not checked_before
        stale = _stale_feed(all_touchpoints, today, cfg, landed_before) if event_dates is None else None
        if stale is not None:
            critical.append(stale)
        set_aside, stopping = _triage(row_failures, cfg)
        critical += stopping
        if not rows:
            notes.append("no new landed data to validate")
        new_ids: list[int] = []
        if set_aside and not critical:
            try:
                new_ids = quarantine.record(settings, zone, [f.rows for f in set_aside], run_id)
            except Exception as exc:  # noqa: BLE001 - unsaved, the rows would reach the warehouse
                critical.append(Finding(
                    "quarantine", "rows_set_aside", None, "critical",
                    f"could not write {quarantine.quarantine_path(settings)}: {type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:300]}",
                    "failing rows must be held out before dbt reads their batch"))
                critical += [f.finding for f in set_aside]
                set_aside = []
        if not critical and new_touchpoints:
            try:  # corrected re-sends of held rows, taken in now
                superseded = quarantine.supersede(settings, zone, [f.path for f in new_touchpoints])
                if superseded:
                    notes.append(f"quarantined row(s) {_id_ranges(superseded)} superseded: a re-send "
                                 "of the same event id passed and was taken in instead")
            except Exception as exc:  # noqa: BLE001 - bookkeeping only: they stay held either way
                log.warning("could not mark superseded quarantine rows: %s", exc)
        quarantined_rows = len({key for f in set_aside
                                for key in quarantine.keys_frame(f.rows).itertuples(index=False, name=None)})
        if not critical and scope["mode"] == "new_files":
            state["touchpoints"] = _mark(new_touchpoints, state.get("touchpoints"))
            state["customers"] = _mark(new_customers, state.get("customers"))
            state["case_events"] = _mark(new_case_events, state.get("case_events"))
            if volume_dates:
                latest = max(volume_dates)
                if not checked_through or latest > date.fromisoformat(checked_through):
                    state["volume_checked_through"] = str(latest)
            _write_state(settings, state)
        return _finish(settings, "landing", started, started_at, critical, warnings, docs_path,
                       run_id, scope, rows, notes, [f.finding for f in set_aside], quarantined_rows,
                       new_ids)


def accept_landing(settings: Settings, reason: str, *, now: datetime | None = None) -> GateResult:
    """Accept the landed data as it is (e.g. a real holiday dip in volume): move the "validated up
    to" mark past every current file and the last closed day, and record who-knows-why in the run
    log. The failed validation results stay in Data Docs; nothing is deleted."""
    # the gate loads Great Expectations: not at import
    from expectations import frames as framing

    if not reason.strip():
        raise ValueError("say why the landed data is accepted (it is recorded in the run log)")
    started, started_at = time.monotonic(), datetime.now(UTC)
    now = now or started_at
    with _exclusive(settings):
        zone = LandingZone.from_settings(settings)
        state = _read_state(settings)
        touchpoints = framing.list_landed(zone, DATASETS["touchpoint"])
        customers = framing.list_landed(zone, DATASETS["customer"])
        case_events = framing.list_landed(zone, DATASETS["case_event"])
        pending = _select(touchpoints, "touchpoints", state, None, None) + \
            _select(customers, "customers", state, None, None) + \
            _select(case_events, "case_events", state, None, None)
        state["touchpoints"] = _mark(touchpoints, state.get("touchpoints"))
        state["customers"] = _mark(customers, state.get("customers"))
        state["case_events"] = _mark(case_events, state.get("case_events"))
        state["volume_checked_through"] = str(now.astimezone(UTC).date() - timedelta(days=1))
        _write_state(settings, state)
        scope = {"mode": "accepted", "touchpoint_files": 0, "customer_files": 0,
                 "accepted_files": len(pending), "reason": reason}
        return _finish(settings, "landing", started, started_at, [], [], _existing_docs(settings),
                       f"landing-{started_at:%Y%m%dT%H%M%S}-accepted", scope, {},
                       [f"accepted without validation by an operator: {reason} ({len(pending)} file(s))"])
