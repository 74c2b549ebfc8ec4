"""Load and validate ``config/scoring.yml``: the user-edited weights, thresholds, plans and rules.

The dbt models read these values through dbt vars (see ``loyalty_monitor.warehouse.dbt_vars``);
this module is the only place that parses the file. Its shape is the pydantic model ``ScoringFile``
below (unknown keys are rejected with a "did you mean"), and a wrong value fails with a line that
names the key path (``scoring.yml: risk_cases.open_probability: must be between 0.0001 and 0.9999,
got 1.5``), so a typo never turns into silently wrong scores.

The enumerations the file is keyed by come from the event contract's JSON Schema (dunning stages,
segments, departments); the alert rules are the keys of ``alerts.rules`` (``RULES``, and
``action_rules``/``reason_rules`` for what each one does).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, create_model, model_validator

from loyalty_core import contract

SEVERITIES = ("high", "medium", "low")
AREAS = ("dialogue", "stakeholder", "service", "financial", "commercial")
DUNNING_STAGES = contract.DUNNING_STAGES
#: The segment of a customer whose master data has not arrived (or was erased): the warehouse
#: writes it for a missing segment (``coalesce(segment, 'unknown')``), so scoring has a value for it
#: besides the contract's segments.
UNKNOWN_SEGMENT = "unknown"
SEGMENTS = (*contract.SEGMENTS, UNKNOWN_SEGMENT)
#: The streams the drift model knows how to count (dbt_project/macros/drift_streams.sql).
DRIFT_STREAMS = ("dialogue", "senior", "orders", "friction", "unresolved", "detractors", "promoters")


class ScoringError(ValueError):
    """config/scoring.yml is missing, unreadable or has an invalid value."""


# --- building blocks ------------------------------------------------------------------------------

class _KeyProblem(ValueError):
    """Raised inside a validator about a key below the one being validated (``key`` is appended to
    the error's path); ``missing`` words it as a missing key."""

    def __init__(self, key: str, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.key, self.missing = key, missing


def _did_you_mean(key: Any, known: Any) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    return "unknown key; expected one of " + ", ".join(str(k) for k in known)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _in_range(low: float | None, high: float | None):
    def check(value: float) -> float:
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                raise ValueError(f"must be at least {_fmt(low)}, got {_fmt(value)}")
            if low is None:
                raise ValueError(f"must be at most {_fmt(high)}, got {_fmt(value)}")
            raise ValueError(f"must be between {_fmt(low)} and {_fmt(high)}, got {_fmt(value)}")
        return value
    return AfterValidator(check)


def _whole(value: float) -> float:
    if value != int(value):
        raise ValueError(f"must be a whole number, got {_fmt(value)}")
    return value


def _sentence(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a sentence")
    return value


def Number(low: float | None = None, high: float | None = None) -> Any:  # noqa: N802 - a type
    """A number (int or float, not a bool or a string) in ``[low, high]``."""
    return Annotated[float, _in_range(low, high)]


def Whole(low: float | None = None, high: float | None = None) -> Any:  # noqa: N802 - a type
    """A whole number in ``[low, high]`` (``20.0`` counts, as YAML may write it)."""
    return Annotated[float, _in_range(low, high), AfterValidator(_whole)]


Sentence = Annotated[str, AfterValidator(_sentence)]
Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
DunningStage = Literal[DUNNING_STAGES]  # type: ignore[valid-type]
Department = Literal[contract.DEPARTMENTS]  # type: ignore[valid-type]


class _Section(BaseModel):
    """A mapping of config/scoring.yml: known keys only, values of the declared types (no coercion
    of strings to numbers), numbers finite (YAML's .nan and .inf would reach every score)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # extra='forbid' would say "Extra inputs are not permitted"; this names a close key.
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    raise _KeyProblem(str(key), _did_you_mean(key, cls.model_fields))
        return data


def _keyed(name: str, keys: tuple[str, ...], value_type: Any, required: bool = True) -> type[_Section]:
    """A section keyed by a fixed set of names (segments, areas, dunning stages, streams)."""
    fields = {key: (value_type, ...) if required else (Optional[value_type], None) for key in keys}
    return create_model(name, __base__=_Section, **fields)


# --- the sections -----------------------------------------------------------------------------------

class Classification(_Section):
    dropped_call_max_seconds: Number(0)
    non_caring_departments: list[Department]
    non_dialogue_departments: list[Department]


class Dialogue(_Section):
    segment_usual_gap_days: _keyed("SegmentGaps", SEGMENTS, Number(1, 3650))
    own_baseline_min_dialogue_days: Number(1, 3650)
    own_baseline_min_observed_days: Number(1, 3650)
    baseline_window_days: Number(1, 3650)
    min_gap_days: Number(1, 3650)
    max_gap_days: Number(1, 3650)
    order_followup_days: Number(1, 3650)
    recent_days: Number(1, 3650)

    @model_validator(mode="after")
    def _gaps(self) -> Dialogue:
        if self.min_gap_days > self.max_gap_days:
            raise _KeyProblem("min_gap_days", "must not exceed dialogue.max_gap_days")
        return self


class HealthDialogue(_Section):
    full_score_ratio: Number(0)
    zero_score_ratio: Number(0)
    frequency_weight: Number(0, 1)
    friction_weight: Number(0, 1)

    @model_validator(mode="after")
    def _ratios(self) -> HealthDialogue:
        if self.zero_score_ratio <= self.full_score_ratio:
            raise _KeyProblem("zero_score_ratio", "must exceed full_score_ratio")
        if self.friction_weight + self.frequency_weight > 1:
            raise _KeyProblem("friction_weight", "friction_weight + frequency_weight must not exceed 1")
        return self


class Stakeholder(_Section):
    window_days: Number(1, 3650)
    target_roles: Number(1, 5)
    executive_points: Number(0, 100)


class Service(_Section):
    window_days: Number(1, 3650)
    prior_rate: Number(0, 1)
    prior_weight: Number(0)
    points_per_complaint: Number(0, 100)
    points_per_open_high_complaint: Number(0, 100)


class Financial(_Section):
    window_days: Number(1, 3650)
    stage_scores: _keyed("StageScores", DUNNING_STAGES, Number(0, 100))
    max_amount_points: Number(0, 100)
    overdue_share_for_max: Number(0.0001)


class Commercial(_Section):
    trend_window_days: Number(1, 1000)
    target_potential_share: Number(0.0001)
    trend_weight: Number(0, 1)


class Health(_Section):
    weights: _keyed("AreaWeights", AREAS, Number(0))
    green_min: Number(0, 100)
    yellow_min: Number(0, 100)
    friction_share_not_green: Number(0, 1)
    no_evidence_score: Number(0, 100)
    dialogue: HealthDialogue
    stakeholder: Stakeholder
    service: Service
    financial: Financial
    commercial: Commercial

    @model_validator(mode="after")
    def _bands(self) -> Health:
        if sum(getattr(self.weights, area) for area in AREAS) <= 0:
            raise _KeyProblem("weights", "must not all be zero")
        if self.yellow_min > self.green_min:
            raise _KeyProblem("yellow_min", "must not exceed health.green_min")
        return self


class Loyalty(_Section):
    window_days: Number(1, 3650)
    strong_min: Number(0, 100)
    promoter_min: Number(0, 10)
    detractor_max: Number(0, 10)
    prior_answers: Number(0.0001)
    complaint_weight: Number(0, 10)


class ActivityPlan(_Section):
    calls_per_week: Number(0)
    meetings_per_week: Number(0)


class DriftStream(_Section):
    drifting_ratio: Number(0.01, 100)
    label: str

    @model_validator(mode="after")
    def _evidence(self) -> DriftStream:
        if self.drifting_ratio == 1:
            raise _KeyProblem("drifting_ratio", "1 carries no evidence (the usual rate); below 1 fades, above 1 grows")
        return self


_Streams = _keyed("DriftStreams", DRIFT_STREAMS, DriftStream, required=False)


def _window_days(windows: Any) -> Any:
    if (not isinstance(windows, list) or not windows or len(set(map(str, windows))) != len(windows)
            or not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 730 for k in windows)):
        raise ValueError("must be a list of distinct whole numbers of days between 1 and 730 "
                         f"(e.g. [14, 30, 60, 90, 135, 180]), not {windows!r}")
    return windows


class Drift(_Section):
    streams: _Streams
    baseline_skip_days: Number(0, 3650)
    prior_days: Number(1, 3650)
    share_prior_events: Number(0.01, 100000)
    segment_window_days: Number(7, 3650)
    season_pseudo_count: Number(0)
    window_days: Annotated[Any, AfterValidator(_window_days)]
    max_daily_evidence: Number(0.01)
    prior_drift_share: Number(0.0001, 0.5)
    single_stream_share: Number(0.0, 0.99)
    learned_mixture: bool
    mixture_prior_drift_days: Number(0.0)
    min_rate_per_day: Number(0)
    min_baseline_events: Number(0, 1000)

    @model_validator(mode="after")
    def _some_stream(self) -> Drift:
        if not self.streams.model_fields_set:
            raise _KeyProblem("streams", f"must name at least one stream of {', '.join(DRIFT_STREAMS)}")
        return self


class RiskCases(_Section):
    open_probability: Number(0.0001, 0.9999)
    cases_per_manager_per_month: Optional[Number(0.01, 1000)] = None
    target_precision: Optional[Number(0.01, 1.0)] = None
    target_precision_min_customers: Number(1, 100000) = 30
    close_probability: Number(0.0001, 0.9999)
    warmup_days: Number(0, 3650)
    high_probability: Number(0.0001, 1)
    min_driver_evidence: Number(0)
    suggested_action: Sentence
    went_silent_min_days: Number(0, 3650) = 30
    went_silent_chance: Number(0, 0.5) = 0.01
    went_silent_action: Optional[Sentence] = None

    @model_validator(mode="after")
    def _hysteresis(self) -> RiskCases:
        if self.cases_per_manager_per_month is not None and self.target_precision is not None:
            raise _KeyProblem("target_precision", "set either cases_per_manager_per_month or target_precision "
                              "(each derives the opening probability), not both")
        if self.close_probability > self.open_probability:
            raise _KeyProblem("close_probability", "must not exceed open_probability "
                              f"({_fmt(self.close_probability)} > {_fmt(self.open_probability)})")
        return self


def _iso_currency(code: str) -> str:
    if not (len(code) == 3 and code.isupper()):
        raise ValueError("is not an ISO 4217 currency code")
    return code


def _iso_date(value: str | dt.date) -> str | dt.date:
    if isinstance(value, str):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be a date, YYYY-MM-DD, got {value!r}") from None
    return value


class Reporting(_Section):
    currency: str
    #: shown beside converted values in the report ("rates of ..."): a real day
    rates_date: Optional[Annotated[str | dt.date, AfterValidator(_iso_date)]] = None
    rates: dict[Annotated[str, AfterValidator(_iso_currency)], Number(0.000001)]

    @model_validator(mode="after")
    def _currency_has_a_rate(self) -> Reporting:
        if self.currency not in self.rates:
            raise _KeyProblem("rates", f"must include the reporting currency {self.currency!r}")
        return self


# --- alert rules ------------------------------------------------------------------------------------

class _Rule(_Section):
    """What every rule has. A rule with a ``reason`` is a scorecard rule: it raises no alert of its
    own, and its words are listed among the reasons of a churn-risk case that opens while it holds.
    A rule without one states a fact that needs action: it raises an alert of its own (of
    ``severity``)."""

    enabled: bool
    severity: Optional[Severity] = None
    reason: Optional[Sentence] = None
    suggested_action: Sentence

    @model_validator(mode="after")
    def _alert_has_a_severity(self) -> _Rule:
        if self.reason is None and self.severity is None:
            raise _KeyProblem("severity", "is needed by a rule without a reason (it raises alerts of its own)",
                              missing=True)
        return self


class StatusDrop(_Rule):
    persist_days: Number(1, 365)
    recent_days: Number(1, 365)
    norm_window_days: Number(1, 3650)
    norm_skip_days: Number(0, 3650)
    norm_min_days: Number(1, 3650)
    min_points_below_norm: Number(0, 100)
    high_points_below_norm: Number(0, 100)
    severity_red: Severity
    severity_yellow: Severity

    @model_validator(mode="after")
    def _norm(self) -> StatusDrop:
        if self.norm_skip_days >= self.norm_window_days:
            raise _KeyProblem("norm_skip_days", "must be below norm_window_days")
        return self


class SharpHealthDrop(_Rule):
    window_days: Number(1, 365)
    min_drop_points: Number(0, 100)
    persist_days: Number(1, 365)


class DialogueGap(_Rule):
    min_gap_ratio: Number(0)
    min_days_since_dialogue: Number(0)


class DunningEscalation(_Rule):
    stages: Annotated[list[DunningStage], AfterValidator(lambda s: s if s else _empty_stages())]
    min_value_at_stake: Number(0)
    no_caring_days: Number(1, 3650)


def _empty_stages() -> list[str]:
    raise ValueError(f"must list at least one dunning stage of {', '.join(DUNNING_STAGES)}")


class NewHighComplaint(_Rule):
    pass


class OpenHighComplaint(_Rule):
    deadline_days: Number(0, 3650)


class AlertRules(_Section):
    """Every rule the warehouse evaluates (int_alert_flags has a flag per rule): all must be listed."""

    status_drop: StatusDrop
    sharp_health_drop: SharpHealthDrop
    dialogue_gap: DialogueGap
    dunning_escalation: DunningEscalation
    new_high_complaint: NewHighComplaint
    open_high_complaint: OpenHighComplaint


#: The alert rules, in the order of config/scoring.yml's ``alerts.rules``.
RULES = tuple(AlertRules.model_fields)


class Alerts(_Section):
    episode_cooldown_days: Number(0, 365)
    warmup_days: Number(0, 3650)
    rules: AlertRules
    value_at_stake_potential_share: Number(0)
    dispatch_window_days: Optional[Whole(0, 3650)] = None
    max_per_manager_per_week: Optional[Whole(0)] = None


# --- forecast, incremental runs, case feedback ------------------------------------------------------

def _band_edges(edges: Any) -> Any:
    if (not isinstance(edges, list) or len(edges) < 2
            or any(isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) for e in edges)
            or edges[0] != 0 or edges[-1] != 1 or any(b <= a for a, b in zip(edges, edges[1:]))):
        raise ValueError(f"must be increasing numbers from 0 to 1, got {edges!r}")
    return edges


class Forecast(_Section):
    band_edges: Annotated[Any, AfterValidator(_band_edges)]
    min_closed_deals: Whole(1, 100000)
    min_band_forecasts: Whole(1, 100000)
    bias_tolerance: Number(0, 1)
    significance_z: Number(0, 10)
    track_record_quarters: Whole(1, 40)
    track_record_prior_deals: Number(0, 10000)
    slip_grace_days: Number(0, 3650)
    silent_opportunity_days: Number(1, 3650)


class Incremental(_Section):
    landing_overlap_seconds: Number(0)


class CaseFeedback(_Section):
    """Optional overrides of fct_case_feedback_monthly's parameters (defaults in
    dbt_project/macros/case_feedback.sql)."""

    acknowledge_days: Optional[Whole(0, 3650)] = None
    dialogue_days: Optional[Whole(0, 3650)] = None
    churn_min_orders: Optional[Whole(0)] = None
    churn_lapse_min_days: Optional[Whole(0, 3650)] = None
    churn_lapse_gaps: Optional[Number(0)] = None
    recall_lookback_days: Optional[Whole(0, 3650)] = None


class ScoringFile(_Section):
    """config/scoring.yml, version 1."""

    version: Literal[1]
    classification: Classification
    dialogue: Dialogue
    health: Health
    loyalty: Loyalty
    activity_plan: ActivityPlan
    drift: Drift
    risk_cases: RiskCases
    reporting: Reporting
    alerts: Alerts
    forecast: Forecast
    incremental: Incremental
    case_feedback: Optional[CaseFeedback] = None


# --- validation -------------------------------------------------------------------------------------

_TYPE_WORDS = {
    "float_type": "must be a number", "int_type": "must be a whole number", "bool_type": "must be true or false",
    "string_type": "must be text", "list_type": "must be a list", "dict_type": "must be a mapping",
    "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
    "finite_number": "must be a finite number",
}


def _problem(error: dict[str, Any]) -> str:
    """One line for one pydantic error: the key path, then what is wrong."""
    path: list[str] = []
    for part in error["loc"]:
        if isinstance(part, int) and path:  # a list's item
            path[-1] += f"[{part}]"
        elif part != "[key]":  # "[key]": the mapping's key itself is wrong
            path.append(str(part))
    kind, cause = error["type"], (error.get("ctx") or {}).get("error")
    if isinstance(cause, _KeyProblem):
        path.append(cause.key)
        if cause.missing:
            return f"missing key '{'.'.join(path)}': {cause}"
    dotted = ".".join(path) or "(top level)"
    if kind == "missing":
        return f"missing key '{dotted}'"
    if kind in _TYPE_WORDS:
        return f"{dotted}: {_TYPE_WORDS[kind]}, got {error['input']!r}"
    if kind == "literal_error":
        return f"{dotted}: must be one of {error['ctx']['expected']}, got {error['input']!r}"
    if cause is not None:
        return f"{dotted}: {cause}"
    return f"{dotted}: {error['msg']}"


def validate(cfg: Any, source: str = "scoring.yml") -> dict[str, Any]:
    """Check every value the models use; return ``cfg`` unchanged (raises ScoringError naming each
    wrong key, one a line, after ``source``: the file the values came from)."""
    if not isinstance(cfg, dict):
        raise ScoringError(f"{source}: top level must be a mapping")
    if cfg.get("version") != 1:
        raise ScoringError(f"{source}: unsupported version {cfg.get('version')!r} (expected 1)")
    try:
        ScoringFile.model_validate(cfg)
    except ValidationError as exc:
        raise ScoringError("\n".join(f"{source}: {_problem(e)}" for e in exc.errors())) from None
    return cfg


class _DuplicateKeys(ValueError):
    """Keys given twice in one mapping of the file: one ``key.path: ...`` text per key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping. YAML loaders keep the
    last value silently: a second ``max_per_manager_per_week: 0`` further down a section turned the
    alerts off with no word. Every mapping of the document is checked before it is built, so the
    error can name each duplicate's key path and lines."""

    def construct_document(self, node: yaml.Node) -> Any:
        problems: list[str] = []
        _find_duplicates(node, [], problems)
        if problems:
            raise _DuplicateKeys(problems)
        return super().construct_document(node)


def _find_duplicates(node: yaml.Node, path: list[str], problems: list[str], seen: set[int] | None = None) -> None:
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already checked (YAML anchors may even refer back)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, Any], yaml.Node] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":  # "<<: *defaults": later keys override, on purpose
                _find_duplicates(value, path, problems, seen)
                continue
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else f"<{key.id} key>"
            identity = (key.tag, key.value if isinstance(key, yaml.ScalarNode) else id(key))
            if identity in first:
                problems.append(f"{'.'.join([*path, name])}: given twice, on lines {first[identity].start_mark.line + 1} "
                                f"and {key.start_mark.line + 1} (YAML would keep the second silently); keep one")
            else:
                first[identity] = key
            _find_duplicates(value, [*path, name], problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _find_duplicates(item, [*path[:-1], f"{path[-1] if path else ''}[{index}]"], problems, seen)


def load_scoring(path: str | Path) -> dict[str, Any]:
    """Read and validate the scoring file at ``path``; a key given twice in one mapping is refused."""
    path = Path(path)
    try:
        cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader: no tags run code
    except OSError as exc:
        raise ScoringError(f"cannot read scoring file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ScoringError(f"scoring file {path} is not valid YAML: {exc}") from exc
    except _DuplicateKeys as exc:
        raise ScoringError("\n".join(f"{path}: {problem}" for problem in exc.problems)) from None
    return validate(cfg, str(path))  # the path as given: which file to edit, also when it is not the shipped one


def fingerprint(cfg: dict[str, Any]) -> str:
    """A stable hash of the scoring values: a change means past days must be re-scored."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


# --- the alert rules, read from the file -------------------------------------------------------------

def action_rules(cfg: dict[str, Any]) -> list[str]:
    """The rules that state a fact needing action and raise alerts of their own (no ``reason``),
    by name, as dbt's macro ``action_needed_rules`` lists them."""
    return [name for name, spec in sorted(cfg["alerts"]["rules"].items()) if spec.get("reason") is None]


def reason_rules(cfg: dict[str, Any]) -> dict[str, str]:
    """The scorecard rules: rule -> the words it adds to a churn-risk case's reasons (dbt:
    int_case_openings)."""
    return {name: spec["reason"] for name, spec in sorted(cfg["alerts"]["rules"].items()) if spec.get("reason")}
