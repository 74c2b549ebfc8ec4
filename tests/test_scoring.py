"""config/scoring.yml validation: the shipped file is valid, and a wrong value fails with one line
that names the key (here: the drift model, risk cases and the reporting currency)."""

from __future__ import annotations

import copy

import pytest
import yaml

from loyalty_monitor.scoring import ScoringError, load_scoring, validate
from loyalty_monitor.settings import PROJECT_ROOT

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
     "'drift.streams.emails' is not a stream the model knows"),
    (lambda c: c["drift"]["streams"]["dialogue"].update(drifting_ratio=1),
     "'drift.streams.dialogue.drifting_ratio' = 1 carries no evidence"),
    (lambda c: c["drift"]["streams"]["orders"].pop("drifting_ratio"),
     "missing key 'drift.streams.orders.drifting_ratio'"),
    (lambda c: c["drift"].update(prior_drift_share=0.9), "'drift.prior_drift_share' = 0.9 is outside"),
    (lambda c: c["drift"].update(window_days=[30, 30]), "'drift.window_days' must be a list of distinct whole numbers"),
    (lambda c: c["drift"].update(window_days=[0, 60]), "'drift.window_days' must be a list of distinct whole numbers"),
    (lambda c: c["drift"].update(window_days="30"), "'drift.window_days' must be a list of distinct whole numbers"),
    (lambda c: c["risk_cases"].update(close_probability=0.9, open_probability=0.5),
     "risk_cases.close_probability must not exceed open_probability"),
    (lambda c: c["risk_cases"].update(cases_per_manager_per_month="two"),
     "'risk_cases.cases_per_manager_per_month' must be a number"),
    (lambda c: c["reporting"].update(currency="CHF", rates={"EUR": 1.0}),
     "'reporting.rates' must be a mapping that includes reporting.currency"),
    (lambda c: c["reporting"]["rates"].update(euro=1.0), "'reporting.rates.euro' is not an ISO 4217 currency code"),
])
def test_a_wrong_value_names_its_key(cfg, change, message):
    change(cfg)
    with pytest.raises(ScoringError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        validate(cfg)


def test_a_budget_of_cases_is_accepted_instead_of_a_probability(cfg):
    cfg["risk_cases"]["cases_per_manager_per_month"] = 2
    assert validate(cfg)["risk_cases"]["cases_per_manager_per_month"] == 2


def test_the_population_step_counts_the_drift_models_streams():
    """BG/NBD's dialogue and order streams (Python) are the drift model's (dbt macro): one
    definition of a two-way dialogue and an order, checked here until the macro is the only one."""
    from loyalty_monitor.drift.population import STREAMS

    macro = (PROJECT_ROOT / "dbt_project" / "macros" / "drift_streams.sql").read_text()
    assert f"'dialogue': {{'kind': 'rate', 'condition': \"{STREAMS['dialogue']}\"}}" in macro
    assert f"'orders': {{'kind': 'rate', 'condition': \"{STREAMS['orders']}\"}}" in macro
