"""Running suites on frames with Great Expectations, and sorting failures: rows to quarantine,
or a systemic failure that stops the run."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable

from expectations.config import GateConfig
from expectations.context import SITE_NAME, open_context
from expectations.gate.records import _existing_docs
from expectations.gate.results import UTC, Finding, Progress
from loyalty_core.settings import Settings

if TYPE_CHECKING:  # frames imports Great Expectations (seconds): only when validating
    from expectations import frames as framing

log = logging.getLogger("loyalty.quality")


def _visible(value: Any) -> str:
    """An example value as a data engineer can read it: a text with a space at an end or an
    invisible character ("C000006 ", "C000007\u200f") quoted and escaped, else as it is."""
    text = str(value)
    if isinstance(value, str) and (not text.isprintable() or text != text.strip() or not text):
        return repr(text)
    return text


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
            text += f", e.g. {', '.join(_visible(v) for v in shown)}"
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


def _row_findings(frame: framing.Frame, result: Any, severity: str) -> list[Finding]:
    """A failed expectation of a table of checks (``Frame.describe_row``, e.g. the daily volume):
    one finding per failing row, named by its row (a date and an event type), not one for the table."""
    config = result.expectation_config
    details = result.result or {}
    why = (config.meta or {}).get("why", "")
    names = list(details.get("unexpected_index_column_names") or [])
    table = {tuple(row[n] for n in names): row for row in frame.data.to_dict("records")} if names else {}
    found = []
    entries = [e for e in details.get("partial_unexpected_index_list") or [] if isinstance(e, dict)]
    for entry in entries:
        row = table.get(tuple(entry.get(n) for n in names))
        if row is None:  # not found again in the table: counted below, never a crash of the gate
            continue
        batch, column, observed = frame.describe_row({k: _plain(v) for k, v in row.items()})
        found.append(Finding(frame.suite, config.type, column, severity, observed, why, batch))
    rest = int(details.get("unexpected_count") or 0) - len(found)
    if rest > 0 or not found:  # failing rows not named above: still reported, as GX counted them
        text, shown = _summarise(result, 0)
        found.append(Finding(frame.suite, config.type, None, severity,
                             f"{rest} failing row(s) not named: {text}" if found else text, why, frame.label,
                             shown))
    return found


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
                severity = getattr(config.severity, "value", str(config.severity))
                if frame.describe_row is not None and not (result.exception_info or {}).get("raised_exception"):
                    (critical if severity == "critical" else warnings).extend(_row_findings(frame, result, severity))
                    continue
                kwargs = config.kwargs
                column = kwargs.get("column") or (", ".join(kwargs["column_list"])
                                                  if kwargs.get("column_list") else None)
                observed, shown = _summarise(result, cfg.examples)
                locations = _locations(result, cfg.examples)
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


def _stale_feed(files: list[Any], today: date, cfg: GateConfig, anything_landed: bool = True) -> Finding | None:
    """A critical finding when the newest landed touchpoint is more than ``feed_stale_days`` before
    the last closed day: however long since the last run, a stopped feed must not pass as "no new
    data" (the whole portfolio would turn silent, hence red)."""
    newest = max((f.event_date for f in files if f.event_date), default=None)
    last_closed = today - timedelta(days=1)
    if newest is None and not anything_landed:
        # nothing landed at all (a landing zone emptied, or moved): it passed as "no new data", and a
        # full refresh then built an empty warehouse without a word
        return Finding(
            suite="touchpoint_feed", expectation="feed_is_fresh", column="event_date", severity="critical",
            observed="nothing has landed at all: start the producers and `loyalty consume` (or check that the "
                     "landing zone is where it should be: LOYALTY_LANDING_URL, LOYALTY_DATA_DIR), then run again",
            why="a warehouse built from nothing would show every customer silent: nothing is published",
            batch=str(last_closed))
    if newest is None or (last_closed - newest).days <= cfg.feed_stale_days:
        return None
    days = (last_closed - newest).days
    return Finding(
        suite="touchpoint_feed", expectation="feed_is_fresh", column="event_date", severity="critical",
        observed=f"the newest landed touchpoint is from {newest}, {days} days before {last_closed} "
                 f"(limit {cfg.feed_stale_days}): a producer or the landing consumer has stopped; check "
                 "`loyalty consume` and the producers, then run again. If there really was no contact "
                 "(the company was closed), raise the limit for these runs: "
                 f"LOYALTY_QUALITY__FEED_STALE_DAYS={days}",
        why="a stopped feed looks like every customer going silent at once: nothing is published "
            "until it flows again", batch=str(last_closed))


def _quiet(_: str) -> None:
    return None
