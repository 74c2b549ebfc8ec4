"""Load and validate ``config/scoring.yml``: the user-edited weights, thresholds, plans and rules.

The dbt models read these values through dbt vars (see ``loyalty_monitor.warehouse.dbt_vars``);
this module is the only place that parses the file, and it fails with one clear line naming the
offending key, so a typo never turns into silently wrong scores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

SEVERITIES = ("high", "medium", "low")
AREAS = ("dialogue", "stakeholder", "service", "financial", "commercial")
RULES = ("status_drop", "sharp_health_drop", "dialogue_gap", "dunning_escalation", "new_high_complaint",
         "open_high_complaint")
DUNNING_STAGES = ("reminder", "second_reminder", "collection_call", "final_notice")
SEGMENTS = ("key", "growth", "standard", "unknown")
#: The streams the drift model knows how to count (dbt_project/macros/drift_streams.sql).
DRIFT_STREAMS = ("dialogue", "senior", "orders", "friction", "unresolved", "detractors", "promoters")


class ScoringError(ValueError):
    """config/scoring.yml is missing, unreadable or has an invalid value."""


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ScoringError(f"scoring.yml: missing key '{dotted}'")
        node = node[part]
    return node


def _number(cfg: dict[str, Any], dotted: str, low: float | None = None, high: float | None = None) -> float:
    value = _get(cfg, dotted)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScoringError(f"scoring.yml: '{dotted}' must be a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ScoringError(f"scoring.yml: '{dotted}' = {value} is outside [{low}, {high}]")
    return float(value)


def validate(cfg: Any) -> dict[str, Any]:
    """Check every value the models use; return ``cfg`` unchanged (raises ScoringError)."""
    if not isinstance(cfg, dict):
        raise ScoringError("scoring.yml: top level must be a mapping")
    if cfg.get("version") != 1:
        raise ScoringError(f"scoring.yml: unsupported version {cfg.get('version')!r} (expected 1)")
    _number(cfg, "classification.dropped_call_max_seconds", 0)
    for key in ("non_caring_departments", "non_dialogue_departments"):
        if not isinstance(_get(cfg, f"classification.{key}"), list):
            raise ScoringError(f"scoring.yml: 'classification.{key}' must be a list")
    for seg in SEGMENTS:
        _number(cfg, f"dialogue.segment_usual_gap_days.{seg}", 1, 3650)
    for key in ("own_baseline_min_dialogue_days", "own_baseline_min_observed_days",
                "baseline_window_days", "min_gap_days", "max_gap_days", "order_followup_days",
                "recent_days"):
        _number(cfg, f"dialogue.{key}", 1, 3650)
    if _number(cfg, "dialogue.min_gap_days") > _number(cfg, "dialogue.max_gap_days"):
        raise ScoringError("scoring.yml: dialogue.min_gap_days must not exceed dialogue.max_gap_days")
    weights = [_number(cfg, f"health.weights.{area}", 0) for area in AREAS]
    if sum(weights) <= 0:
        raise ScoringError("scoring.yml: health.weights must not all be zero")
    green, yellow = _number(cfg, "health.green_min", 0, 100), _number(cfg, "health.yellow_min", 0, 100)
    if yellow > green:
        raise ScoringError("scoring.yml: health.yellow_min must not exceed health.green_min")
    _number(cfg, "health.friction_share_not_green", 0, 1)
    _number(cfg, "health.no_evidence_score", 0, 100)
    full, zero = _number(cfg, "health.dialogue.full_score_ratio", 0), _number(cfg, "health.dialogue.zero_score_ratio", 0)
    if zero <= full:
        raise ScoringError("scoring.yml: health.dialogue.zero_score_ratio must exceed full_score_ratio")
    if _number(cfg, "health.dialogue.friction_weight", 0, 1) + _number(cfg, "health.dialogue.frequency_weight", 0, 1) > 1:
        raise ScoringError("scoring.yml: health.dialogue.friction_weight + frequency_weight must not exceed 1")
    _number(cfg, "health.stakeholder.window_days", 1, 3650)
    _number(cfg, "health.stakeholder.target_roles", 1, 5)
    _number(cfg, "health.stakeholder.executive_points", 0, 100)
    _number(cfg, "health.service.window_days", 1, 3650)
    _number(cfg, "health.service.prior_rate", 0, 1)
    _number(cfg, "health.service.prior_weight", 0)
    _number(cfg, "health.service.points_per_complaint", 0, 100)
    _number(cfg, "health.service.points_per_open_high_complaint", 0, 100)
    _number(cfg, "health.financial.window_days", 1, 3650)
    for stage in DUNNING_STAGES:
        _number(cfg, f"health.financial.stage_scores.{stage}", 0, 100)
    _number(cfg, "health.financial.max_amount_points", 0, 100)
    _number(cfg, "health.financial.overdue_share_for_max", 0.0001)
    _number(cfg, "health.commercial.trend_window_days", 1, 1000)
    _number(cfg, "health.commercial.target_potential_share", 0.0001)
    _number(cfg, "health.commercial.trend_weight", 0, 1)
    _number(cfg, "loyalty.window_days", 1, 3650)
    _number(cfg, "loyalty.strong_min", 0, 100)
    _number(cfg, "loyalty.promoter_min", 0, 10)
    _number(cfg, "loyalty.detractor_max", 0, 10)
    _number(cfg, "loyalty.prior_answers", 0.0001)
    _number(cfg, "loyalty.complaint_weight", 0, 10)
    _number(cfg, "activity_plan.calls_per_week", 0)
    _number(cfg, "activity_plan.meetings_per_week", 0)
    _number(cfg, "alerts.episode_cooldown_days", 0, 365)
    _number(cfg, "alerts.warmup_days", 0, 3650)
    _number(cfg, "alerts.value_at_stake_potential_share", 0)
    for rule in RULES:
        spec = _get(cfg, f"alerts.rules.{rule}")
        if not isinstance(spec.get("enabled"), bool):
            raise ScoringError(f"scoring.yml: 'alerts.rules.{rule}.enabled' must be true or false")
        action = spec.get("suggested_action")
        if not isinstance(action, str) or not action.strip():
            raise ScoringError(f"scoring.yml: 'alerts.rules.{rule}.suggested_action' must be a sentence")
        for key in ("severity", "severity_red", "severity_yellow"):
            if key in spec and spec[key] not in SEVERITIES:
                raise ScoringError(f"scoring.yml: 'alerts.rules.{rule}.{key}' must be one of {SEVERITIES}")
    _get(cfg, "alerts.rules.status_drop.severity_red")
    _number(cfg, "alerts.rules.status_drop.persist_days", 1, 365)
    _number(cfg, "alerts.rules.status_drop.recent_days", 1, 365)
    if _number(cfg, "alerts.rules.status_drop.norm_skip_days", 0, 3650) >= \
            _number(cfg, "alerts.rules.status_drop.norm_window_days", 1, 3650):
        raise ScoringError("scoring.yml: alerts.rules.status_drop.norm_skip_days must be below norm_window_days")
    _number(cfg, "alerts.rules.status_drop.norm_min_days", 1, 3650)
    _number(cfg, "alerts.rules.status_drop.min_points_below_norm", 0, 100)
    _number(cfg, "alerts.rules.status_drop.high_points_below_norm", 0, 100)
    _number(cfg, "alerts.rules.sharp_health_drop.persist_days", 1, 365)
    _number(cfg, "alerts.rules.sharp_health_drop.window_days", 1, 365)
    _number(cfg, "alerts.rules.sharp_health_drop.min_drop_points", 0, 100)
    _number(cfg, "alerts.rules.dialogue_gap.min_gap_ratio", 0)
    _number(cfg, "alerts.rules.dialogue_gap.min_days_since_dialogue", 0)
    stages = _get(cfg, "alerts.rules.dunning_escalation.stages")
    if not isinstance(stages, list) or not stages or any(s not in DUNNING_STAGES for s in stages):
        raise ScoringError(f"scoring.yml: 'alerts.rules.dunning_escalation.stages' must list stages of {DUNNING_STAGES}")
    _number(cfg, "alerts.rules.dunning_escalation.min_value_at_stake", 0)
    _number(cfg, "alerts.rules.dunning_escalation.no_caring_days", 1, 3650)
    _number(cfg, "alerts.rules.open_high_complaint.deadline_days", 0, 3650)
    _validate_drift(cfg)
    _validate_forecast(cfg)
    _number(cfg, "incremental.landing_overlap_seconds", 0)
    return cfg


def _validate_drift(cfg: dict[str, Any]) -> None:
    """The drift model (``drift``), its risk cases (``risk_cases``) and the reporting currency."""
    streams = _get(cfg, "drift.streams")
    if not isinstance(streams, dict) or not streams:
        raise ScoringError("scoring.yml: 'drift.streams' must name at least one stream")
    for name in streams:
        if name not in DRIFT_STREAMS:
            raise ScoringError(f"scoring.yml: 'drift.streams.{name}' is not a stream the model knows {DRIFT_STREAMS}")
        ratio = _number(cfg, f"drift.streams.{name}.drifting_ratio", 0.01, 100)
        if ratio == 1:
            raise ScoringError(f"scoring.yml: 'drift.streams.{name}.drifting_ratio' = 1 carries no evidence")
        if not isinstance(streams[name].get("label"), str):
            raise ScoringError(f"scoring.yml: 'drift.streams.{name}.label' must be words")
    _number(cfg, "drift.baseline_skip_days", 0, 3650)
    _number(cfg, "drift.prior_days", 1, 3650)
    _number(cfg, "drift.share_prior_events", 0.01, 100000)
    _number(cfg, "drift.segment_window_days", 7, 3650)
    _number(cfg, "drift.season_pseudo_count", 0)
    _number(cfg, "drift.max_daily_evidence", 0.01)
    _number(cfg, "drift.prior_drift_share", 0.0001, 0.5)
    _number(cfg, "drift.single_stream_share", 0.0, 0.99)
    _number(cfg, "drift.min_baseline_events", 0, 1000)
    _number(cfg, "drift.min_rate_per_day", 0)
    windows = _get(cfg, "drift.window_days")
    if (not isinstance(windows, list) or not windows or len(set(map(str, windows))) != len(windows)
            or not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 730 for k in windows)):
        raise ScoringError("scoring.yml: 'drift.window_days' must be a list of distinct whole numbers of days "
                           f"between 1 and 730 (e.g. [14, 30, 60, 90, 135, 180]), not {windows!r}")
    close = _number(cfg, "risk_cases.close_probability", 0.0001, 0.9999)
    opening = _number(cfg, "risk_cases.open_probability", 0.0001, 0.9999)
    if close > opening:
        raise ScoringError("scoring.yml: risk_cases.close_probability must not exceed open_probability")
    _number(cfg, "risk_cases.high_probability", 0.0001, 1)
    if _get(cfg, "risk_cases").get("cases_per_manager_per_month") is not None:
        _number(cfg, "risk_cases.cases_per_manager_per_month", 0.01, 1000)
    _number(cfg, "risk_cases.min_driver_evidence", 0)
    _number(cfg, "risk_cases.warmup_days", 0, 3650)
    action = _get(cfg, "risk_cases.suggested_action")
    if not isinstance(action, str) or not action.strip():
        raise ScoringError("scoring.yml: 'risk_cases.suggested_action' must be a sentence")
    currency = _get(cfg, "reporting.currency")
    rates = _get(cfg, "reporting.rates")
    if not isinstance(rates, dict) or currency not in rates:
        raise ScoringError("scoring.yml: 'reporting.rates' must be a mapping that includes reporting.currency")
    for code in rates:
        if not (isinstance(code, str) and len(code) == 3 and code.isupper()):
            raise ScoringError(f"scoring.yml: 'reporting.rates.{code}' is not an ISO 4217 currency code")
        _number(cfg, f"reporting.rates.{code}", 0.000001)


def _validate_forecast(cfg: dict[str, Any]) -> None:
    """The forecast audit (``forecast``): bands, minimum samples, the track record."""
    edges = _get(cfg, "forecast.band_edges")
    if (not isinstance(edges, list) or len(edges) < 2
            or any(isinstance(e, bool) or not isinstance(e, (int, float)) for e in edges)
            or edges[0] != 0 or edges[-1] != 1 or any(b <= a for a, b in zip(edges, edges[1:]))):
        raise ScoringError("scoring.yml: 'forecast.band_edges' must be increasing numbers from 0 to 1, "
                           f"got {edges!r}")
    for key in ("min_closed_deals", "min_band_forecasts"):
        if _number(cfg, f"forecast.{key}", 1, 100000) != int(_get(cfg, f"forecast.{key}")):
            raise ScoringError(f"scoring.yml: 'forecast.{key}' must be a whole number")
    _number(cfg, "forecast.bias_tolerance", 0, 1)
    _number(cfg, "forecast.significance_z", 0, 10)
    if _number(cfg, "forecast.track_record_quarters", 1, 40) != int(_get(cfg, "forecast.track_record_quarters")):
        raise ScoringError("scoring.yml: 'forecast.track_record_quarters' must be a whole number")
    _number(cfg, "forecast.track_record_prior_deals", 0, 10000)
    _number(cfg, "forecast.slip_grace_days", 0, 3650)
    _number(cfg, "forecast.silent_opportunity_days", 1, 3650)


def load_scoring(path: str | Path) -> dict[str, Any]:
    """Read and validate the scoring file at ``path``."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScoringError(f"cannot read scoring file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ScoringError(f"scoring file {path} is not valid YAML: {exc}") from exc
    return validate(cfg)


def fingerprint(cfg: dict[str, Any]) -> str:
    """A stable hash of the scoring values: a change means past days must be re-scored."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
