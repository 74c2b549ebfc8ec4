"""The quality gate: what the DAG and ``loyalty validate`` call.

- ``validate_landing(settings, event_dates=None, since_landed_at=None)``: the NEW landed data of a
  run (files landed since the last passing landing gate, recorded in ``<data_dir>/quality/
  state.json``; or all files of the given event dates; or files landed after ``since_landed_at``),
  plus the daily-volume band of every closed day not yet checked.
- ``validate_marts(settings, as_of, schema="build")``: the marts before publish.

Both return a :class:`GateResult`: ``passed`` is False when the run must stop. On landed data a
critical failure of a ROW-LEVEL expectation (a null key, a value outside its set or range, an
unknown customer, an event id with two contents) does not stop the run: the failing rows are set
aside in the quarantine (expectations/quarantine.py; dbt staging leaves them out) and listed in
``GateResult.quarantined``, unless more than ``quarantine_max_share`` of a batch fails. Systemic
failures stop it: a stopped feed, a collapsed volume, too large a share of failing rows, data that
cannot be read, and every failure in the marts. ``release_rows`` re-validates quarantined rows
after a fix and lets those that pass in; ``accept_rows`` takes rows in as they are.
Every run keeps its GX validation results (``<data_dir>/quality/gx/uncommitted/validations``),
rebuilds the affected Data Docs pages (``<data_dir>/quality/data_docs/index.html``) and appends
one line to ``<data_dir>/quality/runs.jsonl``. The gate never publishes or alerts by itself: the
caller stops the pipeline on ``not passed`` and tells the data engineers :func:`failure_notice`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from expectations.config import GateConfig
from expectations.context import SITE_NAME, open_context
from loyalty_core import locks
from loyalty_core.landing_zone import DATASETS, LandingZone, docs_dir, quality_dir, quality_runs, runs_path  # noqa: F401 (gate API)
from loyalty_core.settings import Settings

if TYPE_CHECKING:  # frames imports Great Expectations (seconds): only when validating
    from expectations import frames as framing

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


# --- state and run records -----------------------------------------------------------------------

def _state_path(settings: Settings) -> Path:
    return quality_dir(settings) / "state.json"


def _read_state(settings: Settings) -> dict[str, Any]:
    try:
        return json.loads(_state_path(settings).read_text())
    except FileNotFoundError:
        return {}


def _write_state(settings: Settings, state: dict[str, Any]) -> None:
    path = _state_path(settings)
    tmp = path.with_suffix(f".tmp-{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _record(settings: Settings, result: GateResult) -> None:
    line = {k: v for k, v in result.to_dict().items()}
    for key in ("critical_failures", "warnings", "quarantined"):
        line[key] = [{k: v for k, v in f.items() if k != "examples"} for f in line[key]]
    with runs_path(settings).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=str) + "\n")


@contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    """One gate run at a time per data directory (GX stores and state.json are files)."""
    with locks.exclusive(quality_dir(settings) / ".lock", "the quality gate", settings.lock_timeout_s):
        yield


# --- running suites ------------------------------------------------------------------------------

def _summarise(result: Any, examples: int) -> tuple[str, list[Any]]:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        message = (info.get("exception_message") or "error").strip().splitlines()[0]
        return f"could not be evaluated: {message[:200]}", []
    details = result.result or {}
    if "unexpected_count" in details and details.get("element_count") is not None:
        values = list(details.get("partial_unexpected_list") or [])[:examples]
        shown = [v.isoformat() if hasattr(v, "isoformat") else v for v in values]
        count, total = details["unexpected_count"], details["element_count"]
        text = f"{count} of {total} rows unexpected ({100 * count / total if total else 0:.2f}%)"
        kwargs = result.expectation_config.kwargs
        if kwargs.get("mostly") not in (None, 1, 1.0):
            text += f", tolerance {100 * (1 - float(kwargs['mostly'])):.2f}%"
        if shown:
            text += f", e.g. {', '.join(str(v) for v in shown)}"
        return text, shown
    if "observed_value" in details:
        kwargs = result.expectation_config.kwargs
        bounds = {k: kwargs[k] for k in ("min_value", "max_value", "value") if kwargs.get(k) is not None}
        text = f"observed {details['observed_value']}"
        if bounds:
            text += " (expected " + ", ".join(f"{k.replace('_value', '')} {v}" for k, v in bounds.items()) + ")"
        return text, []
    return "failed", []


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value.isoformat() if hasattr(value, "isoformat") else value


def _locations(result: Any, limit: int) -> list[dict[str, Any]]:
    details = result.result or {}
    names = details.get("unexpected_index_column_names") or []
    rows = details.get("partial_unexpected_index_list") or []
    out = []
    for row in rows[:limit]:
        if isinstance(row, dict):
            out.append({name: _plain(row.get(name)) for name in names if name in row})
    return [loc for loc in out if loc]


@dataclass
class _RowFailure:
    """A failed critical expectation of a row-level suite, and the landed rows behind it."""

    finding: Finding
    dataset: str
    batch: str
    batch_rows: int  # landed rows of the batch (chunk) it was found in
    count: int  # failing rows GX counted
    rows: Any = None  # pandas.DataFrame of failing landed rows; None: not traceable to rows


def _all_failing_entries(quality: Any, frame: framing.Frame, result: Any) -> list[dict[str, Any]]:
    """Every failing row of one expectation (the checkpoint's SUMMARY lists a few): the same
    expectation on the same table, with GX's COMPLETE result format (not stored)."""
    # pandas and Great Expectations: only when validating
    from expectations.checkpoints import DATASOURCE, ROW_LOCATORS

    asset = quality.context.data_sources.get(DATASOURCE).get_asset(frame.suite)
    batch = asset.get_batch_definition("table").get_batch(batch_parameters={"dataframe": frame.data})
    complete = batch.validate(result.expectation_config.to_domain_obj(), result_format={
        "result_format": "COMPLETE", "unexpected_index_column_names": ROW_LOCATORS[frame.suite],
        "return_unexpected_index_query": False, "partial_unexpected_count": 0},
        expectation_parameters=frame.parameters)
    return list((complete.result or {}).get("unexpected_index_list") or [])


def _row_failure(quality: Any, frame: framing.Frame, result: Any, finding: Finding, cfg: GateConfig,
                 all_rows: bool) -> _RowFailure:
    """Trace a failed critical expectation of a row-level frame to its landed rows. Not traced
    (rows None) when GX could not evaluate it, or when more rows fail than the batch's quarantine
    takes (the run stops anyway: listing them all would only cost time)."""
    # the gate loads Great Expectations: not at import
    from expectations import quarantine

    # pandas and Great Expectations: only when validating
    from expectations.checkpoints import ROW_LOCATORS

    details = result.result or {}
    count = details.get("unexpected_count")
    failure = _RowFailure(finding, frame.dataset or "", frame.label, len(frame.rows), int(count or 0))
    if count is None or (result.exception_info or {}).get("raised_exception"):
        return failure
    entries = list(details.get("partial_unexpected_index_list") or [])
    if count > len(entries):
        if not all_rows and count > cfg.quarantine_limit(len(frame.rows)):
            return failure
        entries = _all_failing_entries(quality, frame, result)
    failure.rows = quarantine.failing_rows(frame, finding, entries, ROW_LOCATORS.get(frame.suite, ()))
    return failure


def _run_frames(settings: Settings, stage: str, frame_list: Iterable[framing.Frame], cfg: GateConfig,
                progress: Progress, rows: dict[str, int], *, all_rows: bool = False,
                ) -> tuple[list[Finding], list[Finding], str | None, str, list[_RowFailure]]:
    """Validate each table. Critical failures of row-level tables (``Frame.rows``) come back as
    ``_RowFailure``s for the caller to set aside or stop on, not among the critical findings;
    ``all_rows``: trace every failing row, however many."""
    row_failures: list[_RowFailure] = []
    quality = None  # opened at the first table: a run with nothing new does not import GX
    run_time = datetime.now(UTC)
    run_name = f"{stage}-{run_time:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    critical: list[Finding] = []
    warnings: list[Finding] = []
    identifiers = []
    frames = iter(frame_list)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - unreadable data is a finding, never a crash
            message = " ".join(str(exc).split())[:400]
            critical.append(Finding(stage, "data_readable", None, "critical",
                                    f"{type(exc).__name__}: {message}",
                                    "data the gate cannot read cannot be trusted downstream either"))
            log.warning("quality gate %s could not read its data: %s", stage, message)
            break
        rows[frame.suite] = rows.get(frame.suite, 0) + len(frame.data)
        progress(f"validating {frame.suite}{f' [{frame.label}]' if frame.label else ''}: "
                 f"{len(frame.data)} row(s)")
        if quality is None:
            quality = open_context(settings)
            # Great Expectations takes seconds to import: only when the gate runs
            from great_expectations.core.run_identifier import RunIdentifier
        checkpoint = quality.checkpoints[f"{stage}.{frame.suite}"]
        outcome = checkpoint.run(batch_parameters={"dataframe": frame.data},
                                 expectation_parameters=frame.parameters,
                                 run_id=RunIdentifier(run_name=run_name, run_time=run_time))
        for identifier, suite_result in outcome.run_results.items():
            identifiers.append(identifier)
            for result in suite_result.results:
                if result.success:
                    continue
                config = result.expectation_config
                kwargs = config.kwargs
                column = kwargs.get("column") or (", ".join(kwargs["column_list"])
                                                  if kwargs.get("column_list") else None)
                observed, shown = _summarise(result, cfg.examples)
                locations = _locations(result, cfg.examples)
                severity = getattr(config.severity, "value", str(config.severity))
                finding = Finding(frame.suite, config.type, column, severity, observed,
                                  (config.meta or {}).get("why", ""), frame.label, shown, locations)
                if severity == "critical" and frame.rows is not None:
                    row_failures.append(_row_failure(quality, frame, result, finding, cfg, all_rows))
                else:
                    (critical if severity == "critical" else warnings).append(finding)
    if quality is not None and identifiers:
        progress("building Data Docs")
        quality.context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=identifiers)
    return critical, warnings, _existing_docs(settings), run_name, row_failures


def _triage(failures: list[_RowFailure], cfg: GateConfig) -> tuple[list[_RowFailure], list[Finding]]:
    """Row-level failures to set aside, or the findings that stop the run. A batch whose failing
    rows are more than its quarantine takes (``GateConfig.quarantine_limit``) is a systemic
    failure: a broken producer or feed, not a few bad rows. When anything stops the run, nothing
    is set aside: every row-level failure is then a critical finding (as before quarantine)."""
    # pandas and Great Expectations: only when validating
    from expectations.quarantine import keys_frame

    stop: list[Finding] = []
    batches: dict[tuple[str, str], list[_RowFailure]] = {}
    for failure in failures:
        batches.setdefault((failure.dataset, failure.batch), []).append(failure)
    for (dataset, batch), group in batches.items():
        if cfg.quarantine_max_share <= 0:  # quarantine is off
            stop += [f.finding for f in group]
            continue
        total = group[0].batch_rows
        limit = cfg.quarantine_limit(total)
        keys: set[tuple] = set()
        for failure in group:
            if failure.rows is not None:
                keys |= set(keys_frame(failure.rows).itertuples(index=False, name=None))
        failing = max([len(keys)] + [f.count for f in group if f.rows is None])
        if failing > limit:
            share = 100 * failing / total if total else 100.0
            stop.append(Finding(
                "quarantine", "failing_row_share", None, "critical",
                f"{failing} of {total} new {dataset} row(s) ({share:.2f}%) fail row-level critical "
                f"expectations: more than the {limit} the quarantine takes from a batch "
                f"({100 * cfg.quarantine_max_share:g}%, at least {cfg.quarantine_floor_rows} rows); "
                "nothing was set aside",
                "a few bad rows are set aside and the day goes on; this many mean a broken producer "
                "or feed, which stops the run", batch))
        stop += [f.finding for f in group if f.rows is None]  # cannot be traced to rows
    if stop:
        listed = {id(f) for f in stop}
        return [], stop + [f.finding for f in failures if id(f.finding) not in listed]
    return failures, []


RUNS_PAGE = "gate_runs.html"


def _write_runs_page(settings: Settings, limit: int = 200) -> None:
    """A self-contained page of the latest gate runs beside the Data Docs index (GX's own pages
    load their scripts and styles from CDNs; this one also reads well offline), linking each run's
    validation pages."""

    docs = docs_dir(settings)
    docs.mkdir(parents=True, exist_ok=True)
    rows = []
    for run in reversed(quality_runs(settings, limit)):
        pages = sorted(docs.glob(f"validations/*/{run.get('run_id')}/*/*.html"))
        links = " ".join(f'<a href="{escape(str(p.relative_to(docs)))}">{escape(p.parts[-4])}</a>'
                         for p in pages)
        findings = "".join(
            f"<li class='{escape(sev)}'>{escape(sev)}: {escape(f.get('suite', ''))} "
            f"{escape(f.get('expectation', ''))} {escape(str(f.get('column') or ''))}: "
            f"{escape(str(f.get('observed', '')))}</li>"
            for sev, key in (("critical", "critical_failures"), ("quarantined", "quarantined"),
                             ("warning", "warnings"))
            for f in run.get(key) or [])
        notes = "".join(f"<li>{escape(str(n))}</li>" for n in run.get("notes") or [])
        verdict = "passed" if run.get("passed") else "FAILED"
        rows.append(f"<tr class='{verdict.lower()}'><td>{escape(str(run.get('started_at', ''))[:19])}</td>"
                    f"<td>{escape(str(run.get('stage')))}</td><td>{verdict}</td>"
                    f"<td><ul>{findings}{notes}</ul></td><td>{links}</td></tr>")
    page = ("<!doctype html><meta charset='utf-8'><title>Loyalty Monitor quality gate runs</title>"
            "<style>body{font-family:sans-serif;margin:2em}td{vertical-align:top;padding:4px 8px;"
            "border-bottom:1px solid #ddd}tr.failed td:nth-child(3),li.critical{color:#b00}"
            "li.warning,li.quarantined{color:#a60}</style><h1>Quality gate runs</h1>"
            "<p>Newest first. Full Data Docs: <a href='index.html'>index.html</a>.</p>"
            "<table><tr><th>started (UTC)</th><th>stage</th><th>result</th><th>findings</th>"
            "<th>validation pages</th></tr>" + "".join(rows) + "</table>")
    tmp = docs / f".{RUNS_PAGE}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, docs / RUNS_PAGE)


def _finish(settings: Settings, stage: str, started: float, started_at: datetime,
            critical: list[Finding], warnings: list[Finding], docs_path: str | None, run_id: str,
            scope: dict[str, Any], rows: dict[str, int], notes: list[str],
            quarantined: list[Finding] | None = None, quarantined_rows: int = 0,
            quarantine_ids: list[int] | None = None) -> GateResult:
    result = GateResult(stage=stage, passed=not critical, critical_failures=critical,
                        warnings=warnings, docs_path=docs_path, run_id=run_id,
                        started_at=started_at.isoformat(), duration_s=round(time.monotonic() - started, 3),
                        scope=scope, rows=rows, notes=notes, quarantined=quarantined or [],
                        quarantined_rows=quarantined_rows, quarantine_ids=quarantine_ids or [])
    _record(settings, result)
    _write_runs_page(settings)
    log.log(logging.INFO if result.passed and not quarantined_rows else logging.WARNING,
            "quality gate %s %s: %d critical, %d warning(s), %d row(s) quarantined; Data Docs %s", stage,
            "passed" if result.passed else "FAILED", len(critical), len(warnings), quarantined_rows,
            docs_path)
    return result


def _stale_feed(files: list[Any], today: date, cfg: GateConfig) -> Finding | None:
    """A critical finding when the newest landed touchpoint is more than ``feed_stale_days`` before
    the last closed day: however long since the last run, a stopped feed must not pass as "no new
    data" (the whole portfolio would turn silent, hence red)."""
    newest = max((f.event_date for f in files if f.event_date), default=None)
    last_closed = today - timedelta(days=1)
    if newest is None or (last_closed - newest).days <= cfg.feed_stale_days:
        return None
    days = (last_closed - newest).days
    return Finding(
        suite="touchpoint_feed", expectation="feed_is_fresh", column="event_date", severity="critical",
        observed=f"the newest landed touchpoint is from {newest}, {days} days before {last_closed} "
                 f"(limit {cfg.feed_stale_days}): a producer or the landing consumer has stopped; check "
                 "`loyalty consume` and the producers, then run again",
        why="a stopped feed looks like every customer going silent at once: nothing is published "
            "until it flows again", batch=str(last_closed))


def _quiet(_: str) -> None:
    return None


def _existing_docs(settings: Settings) -> str | None:
    index = docs_dir(settings) / "index.html"
    return str(index) if index.exists() else None


# --- the landing gate ----------------------------------------------------------------------------

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
        stale = _stale_feed(all_touchpoints, today, cfg) if event_dates is None else None
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


# --- quarantined rows: release after a fix, accept as they are ----------------------------------

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


# --- the marts gate ------------------------------------------------------------------------------

def validate_marts(settings: Settings, as_of: date, schema: str = "build", *,
                   progress: Progress | None = None) -> GateResult:
    """Validate the marts of ``schema`` for ``as_of``. A missing mart is a critical failure."""
    # the gate loads Great Expectations: not at import
    from expectations import frames as framing

    progress = progress or _quiet
    started, started_at = time.monotonic(), datetime.now(UTC)
    cfg = GateConfig.from_settings(settings)
    scope = {"as_of": str(as_of), "schema": schema}
    with _exclusive(settings):
        try:
            frame_list = framing.mart_frames(settings, as_of, schema)
        except (framing.MissingTable, FileNotFoundError) as exc:
            missing = Finding("marts", "table_exists", None, "critical", str(exc),
                              "the marts the pipeline publishes must exist")
            return _finish(settings, "marts", started, started_at, [missing], [],
                           _existing_docs(settings), f"marts-{started_at:%Y%m%dT%H%M%S}-missing",
                           scope, {}, [])
        except framing.duckdb.Error as exc:  # e.g. a mart without the column the gate filters on
            unreadable = Finding("marts", "data_readable", None, "critical",
                                 f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}",
                                 "marts the gate cannot read cannot be trusted downstream either")
            return _finish(settings, "marts", started, started_at, [unreadable], [],
                           _existing_docs(settings), f"marts-{started_at:%Y%m%dT%H%M%S}-unreadable",
                           scope, {}, [])
        rows: dict[str, int] = {}
        critical, warnings, docs_path, run_id, _ = _run_frames(settings, "marts", frame_list, cfg,
                                                               progress, rows)
        return _finish(settings, "marts", started, started_at, critical, warnings, docs_path, run_id,
                       scope, rows, [])


# --- what the data engineers are told (the pipeline decides who is told and how) -------------------

def failure_notice(result: GateResult) -> tuple[str, str]:
    """Subject and text of a failed gate's summary for the data engineers."""
    subject = (f"[loyalty-monitor] quality gate {result.stage} FAILED: "
               f"{len(result.critical_failures)} critical expectation(s)")
    text = (result.summary() + "\n\nThe pipeline stopped before publishing marts and before "
            "sending alerts. Fix or remove the bad data, then re-run `loyalty validate`.")
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
