"""Suite definitions, one module per suite. Each module exposes ``NAME``, ``DATA`` (what it reads,
in words) and ``build() -> gx.ExpectationSuite``.

Every expectation goes through :func:`critical` or :func:`warning` so that its severity and the
reason it exists are part of the definition (GX ``severity`` field + ``meta["why"]``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import great_expectations as gx
from great_expectations.expectations.metadata_types import FailureSeverity

#: Suite modules in the order the gate runs them (landing first, marts second).
SUITE_MODULES = (
    "expectations.suites.landed_touchpoints",
    "expectations.suites.touchpoint_event_ids",
    "expectations.suites.touchpoint_daily_volume",
    "expectations.suites.landed_customers",
    "expectations.suites.landed_case_events",
    "expectations.suites.mart_customers",
    "expectations.suites.mart_health",
    "expectations.suites.mart_alerts",
)


def _expect(severity: FailureSeverity, expectation: type, why: str, **kwargs: Any):
    return expectation(severity=severity, meta={"why": why}, notes=why, **kwargs)


def critical(expectation: type, why: str, **kwargs: Any):
    """An expectation whose failure stops the pipeline before publish and alerts."""
    return _expect(FailureSeverity.CRITICAL, expectation, why, **kwargs)


def warning(expectation: type, why: str, **kwargs: Any):
    """An expectation whose failure is reported but does not block."""
    return _expect(FailureSeverity.WARNING, expectation, why, **kwargs)


def param(name: str) -> dict[str, str]:
    """A run-time suite parameter (computed by expectations.frames for each run)."""
    return {"$PARAMETER": name}


def suite_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in SUITE_MODULES]


def all_suites() -> dict[str, gx.ExpectationSuite]:
    return {module.NAME: module.build() for module in suite_modules()}
