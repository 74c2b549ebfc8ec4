"""The gate's memory: its state (which landed files passed), the record of its runs
(``runs.jsonl`` and the runs page in Data Docs), one gate run at a time per data directory."""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from expectations.gate.results import Finding, GateResult
from loyalty_core import locks
from loyalty_core.files import replace_text
from loyalty_core.landing_zone import docs_dir, quality_dir, quality_runs, runs_path
from loyalty_core.settings import Settings

if TYPE_CHECKING:  # frames imports Great Expectations (seconds): only when validating
    pass

log = logging.getLogger("loyalty.quality")


def _state_path(settings: Settings) -> Path:
    return quality_dir(settings) / "state.json"


def _read_state(settings: Settings) -> dict[str, Any]:
    path = _state_path(settings)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(state, dict):
            return state
        problem: Exception = TypeError(f"expected a JSON object, got {type(state).__name__}")
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as exc:
        problem = exc
    # It only records how far the gate has checked: without it every landed file is checked again
    # (slower, nothing lost). Kept aside, not deleted, for whoever looks into the damage.
    aside = path.with_name(f"{path.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    path.replace(aside)
    log.warning("quality gate state %s was damaged (%s): moved to %s; this run checks every landed file again",
                path, problem, aside.name)
    return {}


def _write_state(settings: Settings, state: dict[str, Any]) -> None:
    replace_text(_state_path(settings), json.dumps(state, indent=1, sort_keys=True))


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
    replace_text(docs / RUNS_PAGE, page)


def _existing_docs(settings: Settings) -> str | None:
    index = docs_dir(settings) / "index.html"
    return str(index) if index.exists() else None


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
