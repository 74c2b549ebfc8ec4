"""The quality gate: what the DAG and ``loyalty validate`` call.

- ``validate_landing(settings, event_dates=None, since_landed_at=None)``: the NEW landed data of a
  run (files landed since the last passing landing gate, recorded in ``<data_dir>/quality/
  state.json``; or all files of the given event dates; or files landed after ``since_landed_at``),
  plus the daily-volume band of every closed day not yet checked.
- ``validate_marts(settings, as_of, schema="build")``: the marts before publish.

Both return a :class:`GateResult`: ``passed`` is False when any critical expectation failed.
Every run keeps its GX validation results (``<data_dir>/quality/gx/uncommitted/validations``),
rebuilds the affected Data Docs pages (``<data_dir>/quality/data_docs/index.html``) and appends
one line to ``<data_dir>/quality/runs.jsonl``. The gate never publishes or alerts by itself: the
caller stops the pipeline on ``not passed`` and calls :func:`notify_failure`.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from expectations.config import GateConfig
from expectations.context import SITE_NAME, docs_dir, open_context, quality_dir
from loyalty_monitor import locks
from loyalty_monitor.settings import Settings
from streaming.landing import DATASETS, LandingZone

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """Plain-text summary for terminals and notifications."""
        verdict = "PASSED" if self.passed else "FAILED (critical)"
        lines = [f"quality gate {self.stage}: {verdict}; {len(self.critical_failures)} critical, "
                 f"{len(self.warnings)} warning(s); run {self.run_id}"]
        lines += [f"  {f.line()}" for f in self.critical_failures + self.warnings]
        lines += [f"  note: {n}" for n in self.notes]
        if self.docs_path:
            lines.append(f"  Data Docs: {self.docs_path}")
        return "\n".join(lines)


# --- state and run records -----------------------------------------------------------------------

def _state_path(settings: Settings) -> Path:
    return quality_dir(settings) / "state.json"


def runs_path(settings: Settings) -> Path:
    return quality_dir(settings) / "runs.jsonl"


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
    for key in ("critical_failures", "warnings"):
        line[key] = [{k: v for k, v in f.items() if k != "examples"} for f in line[key]]
    with runs_path(settings).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=str) + "\n")


def quality_runs(settings: Settings, limit: int | None = None) -> list[dict[str, Any]]:
    """The recorded gate runs, oldest first (the last ``limit`` if given)."""
    try:
        lines = runs_path(settings).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    runs = [json.loads(line) for line in lines if line.strip()]
    return runs[-limit:] if limit else runs


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


def _run_frames(settings: Settings, stage: str, frame_list: Iterable[framing.Frame], cfg: GateConfig,
                progress: Progress, rows: dict[str, int]) -> tuple[list[Finding], list[Finding], str | None, str]:
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
                (critical if severity == "critical" else warnings).append(finding)
    if quality is not None and identifiers:
        progress("building Data Docs")
        quality.context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=identifiers)
    return critical, warnings, _existing_docs(settings), run_name


RUNS_PAGE = "gate_runs.html"


def _write_runs_page(settings: Settings, limit: int = 200) -> None:
    """A self-contained page of the latest gate runs beside the Data Docs index (GX's own pages
    load their scripts and styles from CDNs; this one also reads well offline), linking each run's
    validation pages."""
    from html import escape

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
            for sev, key in (("critical", "critical_failures"), ("warning", "warnings"))
            for f in run.get(key) or [])
        notes = "".join(f"<li>{escape(str(n))}</li>" for n in run.get("notes") or [])
        verdict = "passed" if run.get("passed") else "FAILED"
        rows.append(f"<tr class='{verdict.lower()}'><td>{escape(str(run.get('started_at', ''))[:19])}</td>"
                    f"<td>{escape(str(run.get('stage')))}</td><td>{verdict}</td>"
                    f"<td><ul>{findings}{notes}</ul></td><td>{links}</td></tr>")
    page = ("<!doctype html><meta charset='utf-8'><title>Loyalty Monitor quality gate runs</title>"
            "<style>body{font-family:sans-serif;margin:2em}td{vertical-align:top;padding:4px 8px;"
            "border-bottom:1px solid #ddd}tr.failed td:nth-child(3),li.critical{color:#b00}"
            "li.warning{color:#a60}</style><h1>Quality gate runs</h1>"
            "<p>Newest first. Full Data Docs: <a href='index.html'>index.html</a>.</p>"
            "<table><tr><th>started (UTC)</th><th>stage</th><th>result</th><th>findings</th>"
            "<th>validation pages</th></tr>" + "".join(rows) + "</table>")
    tmp = docs / f".{RUNS_PAGE}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, docs / RUNS_PAGE)


def _finish(settings: Settings, stage: str, started: float, started_at: datetime,
            critical: list[Finding], warnings: list[Finding], docs_path: str | None, run_id: str,
            scope: dict[str, Any], rows: dict[str, int], notes: list[str]) -> GateResult:
    result = GateResult(stage=stage, passed=not critical, critical_failures=critical,
                        warnings=warnings, docs_path=docs_path, run_id=run_id,
                        started_at=started_at.isoformat(), duration_s=round(time.monotonic() - started, 3),
                        scope=scope, rows=rows, notes=notes)
    _record(settings, result)
    _write_runs_page(settings)
    log.log(logging.INFO if result.passed else logging.WARNING,
            "quality gate %s %s: %d critical, %d warning(s); Data Docs %s", stage,
            "passed" if result.passed else "FAILED", len(critical), len(warnings), docs_path)
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
    from expectations import frames as framing

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
                 "event_dates": sorted({str(f.event_date) for f in new_touchpoints + new_customers
                                        if f.event_date}),
                 "volume_dates": [str(d) for d in volume_dates],
                 "mode": "event_dates" if event_dates is not None
                 else "since_landed_at" if since_landed_at is not None else "new_files"}
        progress(f"landing: {len(new_touchpoints)} new touchpoint file(s), {len(new_customers)} "
                 f"customer file(s), volume check of {len(volume_dates)} day(s)")
        notes: list[str] = []
        rows: dict[str, int] = {}
        frame_iter = framing.landing_frames(zone, cfg, new_touchpoints, new_customers, all_touchpoints,
                                            all_customers, volume_dates, now, notes)
        critical, warnings, docs_path, run_id = _run_frames(settings, "landing", frame_iter, cfg,
                                                            progress, rows)
        stale = _stale_feed(all_touchpoints, today, cfg) if event_dates is None else None
        if stale is not None:
            critical.append(stale)
        if not rows:
            notes.append("no new landed data to validate")
        if not critical and scope["mode"] == "new_files":
            state["touchpoints"] = _mark(new_touchpoints, state.get("touchpoints"))
            state["customers"] = _mark(new_customers, state.get("customers"))
            if volume_dates:
                latest = max(volume_dates)
                if not checked_through or latest > date.fromisoformat(checked_through):
                    state["volume_checked_through"] = str(latest)
            _write_state(settings, state)
        return _finish(settings, "landing", started, started_at, critical, warnings, docs_path,
                       run_id, scope, rows, notes)


def accept_landing(settings: Settings, reason: str, *, now: datetime | None = None) -> GateResult:
    """Accept the landed data as it is (e.g. a real holiday dip in volume): move the "validated up
    to" mark past every current file and the last closed day, and record who-knows-why in the run
    log. The failed validation results stay in Data Docs; nothing is deleted."""
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
        pending = _select(touchpoints, "touchpoints", state, None, None) + \
            _select(customers, "customers", state, None, None)
        state["touchpoints"] = _mark(touchpoints, state.get("touchpoints"))
        state["customers"] = _mark(customers, state.get("customers"))
        state["volume_checked_through"] = str(now.astimezone(UTC).date() - timedelta(days=1))
        _write_state(settings, state)
        scope = {"mode": "accepted", "touchpoint_files": 0, "customer_files": 0,
                 "accepted_files": len(pending), "reason": reason}
        return _finish(settings, "landing", started, started_at, [], [], _existing_docs(settings),
                       f"landing-{started_at:%Y%m%dT%H%M%S}-accepted", scope, {},
                       [f"accepted without validation by an operator: {reason} ({len(pending)} file(s))"])


# --- the marts gate ------------------------------------------------------------------------------

def validate_marts(settings: Settings, as_of: date, schema: str = "build", *,
                   progress: Progress | None = None) -> GateResult:
    """Validate the marts of ``schema`` for ``as_of``. A missing mart is a critical failure."""
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
        critical, warnings, docs_path, run_id = _run_frames(settings, "marts", frame_list, cfg,
                                                            progress, rows)
        return _finish(settings, "marts", started, started_at, critical, warnings, docs_path, run_id,
                       scope, rows, [])


# --- telling the data engineers ------------------------------------------------------------------

def notify_failure(settings: Settings, result: GateResult) -> list[dict[str, Any]]:
    """Send a failed gate's summary to the data engineers over the configured channels."""
    from loyalty_monitor.alerting import notify_data_engineers

    subject = (f"[loyalty-monitor] quality gate {result.stage} FAILED: "
               f"{len(result.critical_failures)} critical expectation(s)")
    text = (result.summary() + "\n\nThe pipeline stopped before publishing marts and before "
            "sending alerts. Fix or remove the bad data, then re-run `loyalty validate`.")
    return notify_data_engineers(settings, subject, text) or []
