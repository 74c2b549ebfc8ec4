"""The marts gate: the freshly built marts before publish."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime
from typing import TYPE_CHECKING

import duckdb

from expectations.config import GateConfig
from expectations.gate.records import _exclusive, _existing_docs, _finish
from expectations.gate.results import UTC, Finding, GateResult, Progress
from expectations.gate.runner import _quiet, _run_frames
from loyalty_core.settings import Settings

if TYPE_CHECKING:  # frames imports Great Expectations (seconds): only when validating
    pass

log = logging.getLogger("loyalty.quality")


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
        except duckdb.Error as exc:  # e.g. a mart without the column the gate filters on
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
