"""Settings for a benchmark that lands a whole history at once and then times a daily run.

The landing-overlap safety margin (config/scoring.yml ``incremental.landing_overlap_seconds``)
makes a daily run re-check events landed within that many seconds of its watermark. A streaming
consumer lands continuously, so in production the margin covers minutes of recent events; a
benchmark that lands a year of history in one go just before the daily batch would have the
margin cover the whole history, and time a full rebuild as "the daily run". The benchmarks
therefore set the margin to 0 in a copy of scoring.yml next to their data.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def settings_for_history_bench(data_dir: Path, **overrides):
    from loyalty_core.settings import PROJECT_ROOT

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    scoring = yaml.safe_load((PROJECT_ROOT / "config" / "scoring.yml").read_text())
    scoring["incremental"]["landing_overlap_seconds"] = 0
    (data_dir / "scoring.yml").write_text(yaml.safe_dump(scoring, sort_keys=False))
    return written_history_bench_settings(data_dir, **overrides)


def written_history_bench_settings(data_dir: Path, **overrides):
    """The settings with the scoring copy settings_for_history_bench wrote, as it is: a long run's
    later steps keep the scoring its first step began with, whatever config/scoring.yml says now."""
    from loyalty_core.settings import load_settings

    data_dir = Path(data_dir)
    return load_settings(data_dir=data_dir, scoring_file=data_dir / "scoring.yml", **overrides)
