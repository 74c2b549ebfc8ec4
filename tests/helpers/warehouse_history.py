"""Generated histories landed for the warehouse tests (real generator, real landing, real files)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import yaml

from loyalty_core.settings import PROJECT_ROOT, Settings, load_settings
from loyalty_monitor.generator import generate
from streaming.landing import land_jsonl_offline


@dataclass
class History:
    directory: Path
    start: date
    end: date
    truth: dict

    @property
    def touchpoints(self) -> Path:
        return self.directory / "touchpoints.jsonl"

    @property
    def customers(self) -> Path:
        return self.directory / "customers.jsonl"

    def truth_by_customer(self) -> dict[str, dict]:
        return {row["customer_id"]: row for row in self.truth["customers"]}


def make_history(directory: Path, customers: int, start: str, end: str, seed: int) -> History:
    summary = generate(directory, customers=customers, start=start, end=end, seed=seed)
    truth = json.loads(summary.ground_truth_file.read_text())
    return History(directory, summary.start, summary.end, truth)


def warehouse_settings(data_dir: Path, **scoring_overrides: dict) -> Settings:
    """Settings on an isolated data dir; scoring.yml copied there with the given section overrides."""
    data_dir.mkdir(parents=True, exist_ok=True)
    scoring = yaml.safe_load((PROJECT_ROOT / "config" / "scoring.yml").read_text())
    for section, values in scoring_overrides.items():
        scoring[section].update(values)
    scoring_file = data_dir / "scoring.yml"
    scoring_file.write_text(yaml.safe_dump(scoring, sort_keys=False))
    return load_settings(data_dir=data_dir, scoring_file=scoring_file, landing_url="", warehouse_path="")


def land(settings: Settings, touchpoints: Path | None, customers: Path | None) -> None:
    land_jsonl_offline(settings, touchpoints, customers)


def _occurred_day(line: str, key: str) -> str | None:
    try:
        value = json.loads(line).get(key)
    except (ValueError, AttributeError):
        return None
    return value[:10] if isinstance(value, str) else None


def split_by_send_order(source: Path, first: Path, second: Path, key: str, cut: date) -> int:
    """Lines sent before the first line dated after ``cut`` go to ``first``, the rest to ``second``.

    The generator writes in send order, so events sent late (after ``cut``) about days before it
    end up in ``second``: they arrive late, as in production.
    """
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    split_at = len(lines)
    for index, line in enumerate(lines):
        day = _occurred_day(line, key)
        if day is not None and day > cut.isoformat():
            split_at = index
            break
    first.write_text("".join(lines[:split_at]), encoding="utf-8")
    second.write_text("".join(lines[split_at:]), encoding="utf-8")
    return split_at


def history_in_two_landings(factory, customers: int, seed: int, start: str, end: str,
                            cut: date) -> tuple[History, Path, Settings, Path]:
    """A generated history split by send order at ``cut`` into two landings (``tp1``/``cu1`` before,
    ``tp2``/``cu2`` after), and warehouse settings for building it incrementally: overlap 0 (the
    two landings are seconds apart, and the point is the incremental path), risk cases opening at a
    lower probability than the default so that a small history has some. ``factory``: pytest's
    ``tmp_path_factory``. Returns (history, parts directory, settings, scratch directory)."""
    history = make_history(factory.mktemp("history"), customers=customers, start=start, end=end, seed=seed)
    parts = factory.mktemp("parts")
    split_by_send_order(history.touchpoints, parts / "tp1.jsonl", parts / "tp2.jsonl", "occurred_at", cut)
    split_by_send_order(history.customers, parts / "cu1.jsonl", parts / "cu2.jsonl", "updated_at", cut)
    settings = warehouse_settings(factory.mktemp("warehouse") / "data",
                                  incremental={"landing_overlap_seconds": 0},
                                  risk_cases={"open_probability": 0.3, "close_probability": 0.15})
    return history, parts, settings, factory.mktemp("scratch")


def land_as_partition(settings: Settings, scratch: Path, touchpoints: Path, customers: Path,
                      partition: int) -> None:
    """Land files as if a consumer of another partition wrote them (distinct file names)."""
    staging = load_settings(data_dir=scratch, landing_url="", warehouse_path="")
    land_jsonl_offline(staging, touchpoints, customers)
    target = Path(settings.landing)
    for path in Path(staging.landing).rglob("*.parquet"):
        relative = path.relative_to(staging.landing)
        renamed = relative.with_name(path.name.replace("-p000-", f"-p{partition:03d}-"))
        (target / renamed).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target / renamed)


def snapshot(settings: Settings, tables: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Every row of each build-schema table, columns in table order, rows sorted: what two builds
    that must agree are compared on."""
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        out = {}
        for table in tables:
            columns = [name for (name,) in con.execute(
                "select column_name from information_schema.columns where table_schema = 'build' "
                "and table_name = ? order by ordinal_position", [table]).fetchall()]
            order = ", ".join(f'"{c}"' for c in columns)
            out[table] = con.execute(f"select {order} from build.{table} order by {order}").fetchall()
        return out
    finally:
        con.close()
