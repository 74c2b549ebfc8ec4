"""config/scoring.yml validation: the shipped file is valid, and a wrong value fails with one line
that names the key (here: the drift model, risk cases and the reporting currency)."""

from __future__ import annotations

import copy

import pytest
import yaml

from loyalty_core.settings import PROJECT_ROOT
from loyalty_monitor.scoring import ScoringError, load_scoring, validate

SHIPPED = PROJECT_ROOT / "config" / "scoring.yml"


@pytest.fixture()
def cfg() -> dict:
    return copy.deepcopy(yaml.safe_load(SHIPPED.read_text()))


def test_the_shipped_file_is_valid():
    cfg = load_scoring(SHIPPED)
    assert set(cfg["drift"]["streams"]) >= {"dialogue", "orders", "senior"}
    assert cfg["reporting"]["currency"] in cfg["reporting"]["rates"]


@pytest.mark.parametrize("change, message", [
    (lambda c: c["drift"]["streams"].update(emails={"drifting_ratio": 0.5, "label": "e-mails"}),
     "drift.streams.emails: unknown key; expected one of dialogue, senior"),
    (lambda c: c["drift"]["streams"]["dialogue"].update(drifting_ratio=1),
     "drift.streams.dialogue.drifting_ratio: 1 carries no evidence"),
    (lambda c: c["drift"]["streams"]["orders"].pop("drifting_ratio"),
     "missing key 'drift.streams.orders.drifting_ratio'"),
    (lambda c: c["drift"].update(prior_drift_share=0.9), "drift.prior_drift_share: must be between 0.0001 and 0.5, got 0.9"),
    (lambda c: c["drift"].update(window_days=[30, 30]), "drift.window_days: must be a list of distinct whole numbers"),
    (lambda c: c["drift"].update(window_days=[0, 60]), "drift.window_days: must be a list of distinct whole numbers"),
    (lambda c: c["drift"].update(window_days="30"), "drift.window_days: must be a list of distinct whole numbers"),
    (lambda c: c["risk_cases"].update(close_probability=0.9, open_probability=0.5),
     "risk_cases.close_probability: must not exceed open_probability"),
    (lambda c: c["risk_cases"].update(cases_per_manager_per_month="two", target_precision=None),
     "risk_cases.cases_per_manager_per_month: must be a number"),
    (lambda c: c["risk_cases"].update(cases_per_manager_per_month=2, target_precision=0.5),
     "risk_cases.target_precision: set either cases_per_manager_per_month or target_precision"),
    (lambda c: c["risk_cases"].update(target_precision=1.5),
     "risk_cases.target_precision: must be between 0.01 and 1"),
    (lambda c: c["reporting"].update(currency="CHF", rates={"EUR": 1.0}),
     "reporting.rates: must include the reporting currency 'CHF'"),
    (lambda c: c["reporting"]["rates"].update(euro=1.0), "reporting.rates.euro: is not an ISO 4217 currency code"),
    (lambda c: c["reporting"].update(rates_date="2026-13-30"),
     "reporting.rates_date: must be a date, YYYY-MM-DD, got '2026-13-30'"),
])
def test_a_wrong_value_names_its_key(cfg, change, message):
    change(cfg)
    with pytest.raises(ScoringError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        validate(cfg)


@pytest.mark.parametrize("change, message", [
    # an unknown key (a typo) is refused, with the close key it probably meant
    (lambda c: c["risk_cases"].update(open_probabilty=0.5),
     "risk_cases.open_probabilty: unknown key; did you mean 'open_probability'?"),
    (lambda c: c["health"]["financial"]["stage_scores"].update(reminer=80),
     "health.financial.stage_scores.reminer: unknown key; did you mean 'reminder'?"),
    (lambda c: c.update(alert={}), "alert: unknown key; did you mean 'alerts'?"),
    # a value out of its range names its path and the range
    (lambda c: c["risk_cases"].update(open_probability=1.5),
     "risk_cases.open_probability: must be between 0.0001 and 0.9999, got 1.5"),
    (lambda c: c["alerts"]["rules"]["dialogue_gap"].update(min_gap_ratio=-1),
     "alerts.rules.dialogue_gap.min_gap_ratio: must be at least 0, got -1"),
    (lambda c: c["alerts"]["rules"]["dunning_escalation"].update(stages=["collection_call", "dunning"]),
     "alerts.rules.dunning_escalation.stages[1]: must be one of 'reminder', 'second_reminder'"),
    (lambda c: c["alerts"]["rules"]["dialogue_gap"].update(enabled="yes"),
     "alerts.rules.dialogue_gap.enabled: must be true or false, got 'yes'"),
    # cross-field rules
    (lambda c: c["health"].update(yellow_min=80, green_min=70), "health.yellow_min: must not exceed health.green_min"),
    (lambda c: c["alerts"]["rules"]["status_drop"].update(norm_skip_days=400, norm_window_days=365),
     "alerts.rules.status_drop.norm_skip_days: must be below norm_window_days"),
    (lambda c: c["alerts"]["rules"]["open_high_complaint"].pop("severity"),
     "missing key 'alerts.rules.open_high_complaint.severity': is needed by a rule without a reason"),
    (lambda c: c["alerts"]["rules"].pop("dialogue_gap"), "missing key 'alerts.rules.dialogue_gap'"),
    # YAML's .nan and .inf are numbers to a parser, not to a score
    (lambda c: c["health"]["weights"].update(dialogue=float("nan")),
     "health.weights.dialogue: must be a finite number, got nan"),
    (lambda c: c["health"].update(green_min=float("inf")), "health.green_min: must be a finite number, got inf"),
    (lambda c: c["alerts"].update(max_per_manager_per_week=float("inf")),
     "alerts.max_per_manager_per_week: must be a finite number, got inf"),
    (lambda c: c["reporting"]["rates"].update(DKK=float("nan")), "reporting.rates.DKK: must be a finite number, got nan"),
    (lambda c: c["forecast"].update(band_edges=[0, float("nan"), 1]),
     "forecast.band_edges: must be increasing numbers from 0 to 1, got [0, nan, 1]"),
])
def test_the_schema_names_the_key_path(cfg, change, message):
    change(cfg)
    with pytest.raises(ScoringError) as caught:
        validate(cfg)
    assert str(caught.value).startswith("scoring.yml: ") and message in str(caught.value), str(caught.value)


def test_a_file_is_named_as_given_so_that_the_right_one_is_edited(cfg, tmp_path):
    cfg["risk_cases"]["open_probability"] = float("nan")
    mine = tmp_path / "scoring-test.yml"
    mine.write_text(yaml.safe_dump(cfg))
    assert "open_probability: .nan" in mine.read_text()
    with pytest.raises(ScoringError) as caught:
        load_scoring(mine)
    assert str(caught.value) == f"{mine}: risk_cases.open_probability: must be a finite number, got nan"


def test_every_wrong_key_is_reported_one_a_line(cfg):
    cfg["risk_cases"]["open_probability"] = 2
    cfg["loyalty"]["strong_minimum"] = 65
    with pytest.raises(ScoringError) as caught:
        validate(cfg)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and all(line.startswith("scoring.yml: ") for line in lines), lines


def test_the_rule_list_is_the_files():
    """The rules are the keys of alerts.rules: those with a reason are a risk case's reasons, the
    others raise alerts of their own (what dbt's action_needed_rules() and int_case_openings read)."""
    from loyalty_monitor import scoring

    cfg = load_scoring(SHIPPED)
    assert tuple(cfg["alerts"]["rules"]) == scoring.RULES
    assert scoring.action_rules(cfg) == ["dunning_escalation", "new_high_complaint", "open_high_complaint"]
    assert scoring.reason_rules(cfg) == {"status_drop": "health fell below its own norm",
                                         "sharp_health_drop": "health dropped sharply",
                                         "dialogue_gap": "far outside its usual dialogue rhythm"}


def test_enumerations_come_from_the_contract():
    from loyalty_core import contract
    from loyalty_monitor import scoring

    assert scoring.DUNNING_STAGES == contract.DUNNING_STAGES
    assert scoring.SEGMENTS == (*contract.SEGMENTS, "unknown")


def test_a_budget_of_cases_is_accepted_instead_of_a_probability(cfg):
    cfg["risk_cases"].update(cases_per_manager_per_month=2, target_precision=None)
    assert validate(cfg)["risk_cases"]["cases_per_manager_per_month"] == 2


def test_a_target_precision_is_the_default_and_can_be_turned_off(cfg):
    assert validate(cfg)["risk_cases"]["target_precision"] == 0.3
    cfg["risk_cases"]["target_precision"] = None
    assert validate(cfg)["risk_cases"]["target_precision"] is None


def test_the_population_step_counts_the_drift_models_streams():
    """BG/NBD's dialogue and order streams (Python) are the drift model's (dbt macro): one
    definition of a two-way dialogue and an order, checked here until the macro is the only one."""
    from loyalty_monitor.drift.population import STREAMS

    macro = (PROJECT_ROOT / "dbt_project" / "macros" / "drift_streams.sql").read_text()
    assert f"'dialogue': {{'kind': 'rate', 'condition': \"{STREAMS['dialogue']}\"}}" in macro
    assert f"'orders': {{'kind': 'rate', 'condition': \"{STREAMS['orders']}\"}}" in macro


def test_a_key_given_twice_is_refused_naming_its_path_and_lines(tmp_path):
    """Tester: a second ``max_per_manager_per_week: 0`` in the alerts section was accepted silently
    (YAML keeps the last value): the cap became 0. Every key given twice in one mapping is refused,
    one line each, naming the key path and both lines."""
    text = SHIPPED.read_text()
    lines = text.splitlines(keepends=True)
    first = next(n for n, line in enumerate(lines, 1) if line.strip().startswith("max_per_manager_per_week:"))
    mine = tmp_path / "scoring.yml"
    mine.write_text("".join(lines[:first]) + "  max_per_manager_per_week: 0\n" + "".join(lines[first:])
                    + "version: 1\n")
    assert yaml.safe_load(mine.read_text())["alerts"]["max_per_manager_per_week"] == 0  # what YAML does
    with pytest.raises(ScoringError) as caught:
        load_scoring(mine)
    version = next(n for n, line in enumerate(lines, 1) if line.startswith("version:"))
    assert str(caught.value).splitlines() == [  # in the order the second ones come
        (f"{mine}: alerts.max_per_manager_per_week: given twice, on lines {first} and {first + 1} (YAML would "
         "keep the second silently); keep one"),
        (f"{mine}: version: given twice, on lines {version} and {len(lines) + 2} (YAML would keep the second "
         "silently); keep one")]


def test_keys_given_twice_are_found_in_lists_and_merges_still_override(tmp_path):
    from loyalty_monitor.scoring import _UniqueKeyLoader  # the loader itself: a merge is no scoring key

    mine = tmp_path / "scoring.yml"
    mine.write_text("a: [{x: 1}, {x: 1, y: 2, x: 3}]\n")
    with pytest.raises(ScoringError) as caught:
        load_scoring(mine)
    assert str(caught.value) == (f"{mine}: a[1].x: given twice, on lines 1 and 1 (YAML would keep the second "
                                 "silently); keep one")
    merged = "b: &base {k: 1, j: 1}\nc:\n  <<: *base\n  k: 2\nd: *base\n"
    assert yaml.load(merged, Loader=_UniqueKeyLoader) == {"b": {"k": 1, "j": 1}, "c": {"k": 2, "j": 1},
                                                          "d": {"k": 1, "j": 1}}
