"""The quality gate: what the DAG and ``loyalty validate`` call.

- ``validate_landing(settings, event_dates=None, since_landed_at=None)``: the NEW landed data of a
  run (files landed since the last passing landing gate, recorded in ``<data_dir>/quality/
  state.json``; or all files of the given event dates; or files landed after ``since_landed_at``),
  plus the daily-volume band of every closed day not yet checked (``gate.landing``).
- ``validate_marts(settings, as_of, schema="build")``: the marts before publish (``gate.marts``).

Both return a :class:`GateResult` (``gate.results``): ``passed`` is False when the run must stop. On
landed data a critical failure of a ROW-LEVEL expectation (a null key, a value outside its set or
range, an unknown customer, an event id with two contents) does not stop the run: the failing rows
are set aside in the quarantine (expectations/quarantine.py; dbt staging leaves them out) and listed
in ``GateResult.quarantined``, unless more than ``quarantine_max_share`` of a batch fails
(``gate.runner``). Systemic failures stop it: a stopped feed, a collapsed volume, too large a share
of failing rows, data that cannot be read, and every failure in the marts. ``release_rows``
re-validates quarantined rows after a fix and lets those that pass in; ``accept_rows`` takes rows in
as they are (``gate.decisions``).
Every run keeps its GX validation results (``<data_dir>/quality/gx/uncommitted/validations``),
rebuilds the affected Data Docs pages (``<data_dir>/quality/data_docs/index.html``) and appends
one line to ``<data_dir>/quality/runs.jsonl`` (``gate.records``). The gate never publishes or alerts
by itself: the caller stops the pipeline on ``not passed`` and tells the data engineers
:func:`failure_notice`.
"""

from expectations.gate.decisions import QuarantineDecision, accept_rows, release_rows
from expectations.gate.landing import accept_landing, validate_landing
from expectations.gate.marts import validate_marts
from expectations.gate.results import Finding, GateResult, failure_notice, quarantine_notice
from loyalty_core.landing_zone import quality_runs, runs_path

__all__ = ["Finding", "GateResult", "QuarantineDecision", "accept_landing", "accept_rows", "failure_notice",
           "quality_runs", "quarantine_notice", "release_rows", "runs_path", "validate_landing", "validate_marts"]
