"""The GX project of a data directory is written from code once and then only read, until the
code's definitions or the written files change (expectations/context.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from expectations import context as quality_context
from expectations.context import DIGEST_FILE, open_context
from loyalty_core.settings import load_settings


def _definition_files(project: Path) -> dict[str, str]:
    """The written definitions, less the ids GX gives them anew at every write."""
    return {str(p.relative_to(project)): re.sub(r'"id": "[^"]*"', '"id"', p.read_text())
            for folder in ("expectations", "validation_definitions", "checkpoints")
            for p in sorted((project / folder).glob("*.json"))}


def _reopen(settings):
    quality_context._cache.clear()  # as a new process would
    return open_context(settings)


def test_definitions_are_written_once_read_after_and_written_again_when_a_file_was_edited(tmp_path, monkeypatch):
    settings = load_settings(data_dir=tmp_path / "data")
    project = settings.data_dir / "quality" / "gx"
    writes = []
    sync = quality_context._sync_definitions
    monkeypatch.setattr(quality_context, "_sync_definitions", lambda ctx: writes.append(1) or sync(ctx))
    monkeypatch.setattr(quality_context, "_templates", {})  # as in a process that wrote none yet

    opened = open_context(settings)
    assert writes == [1] and (project / DIGEST_FILE).is_file()
    written = _definition_files(project)
    assert "expectations/touchpoint_daily_volume.json" in written and len(written) == 24

    again = _reopen(settings)
    assert writes == [1], "unchanged definitions are read, not written again"
    assert _definition_files(project) == written
    assert sorted(again.checkpoints) == sorted(opened.checkpoints)

    edited = project / "expectations" / "landed_customers.json"  # a hand edit: the code wins
    edited.write_text(edited.read_text().replace('"critical"', '"warning"'))
    _reopen(settings)
    assert writes == [1, 1] and _definition_files(project) == written

    (project / DIGEST_FILE).write_text("another-release " + (project / DIGEST_FILE).read_text().split()[1])
    _reopen(settings)
    assert writes == [1, 1, 1] and _definition_files(project) == written


def test_a_new_data_directory_starts_from_the_project_already_written_and_validates(tmp_path, monkeypatch):
    first = load_settings(data_dir=tmp_path / "first")
    open_context(first)
    writes = []
    sync = quality_context._sync_definitions
    monkeypatch.setattr(quality_context, "_sync_definitions", lambda ctx: writes.append(1) or sync(ctx))
    second = load_settings(data_dir=tmp_path / "second")
    opened = open_context(second)
    project = second.data_dir / "quality" / "gx"
    assert writes == [] and _definition_files(project) == _definition_files(first.data_dir / "quality" / "gx")
    assert str(second.data_dir) in (project / "great_expectations.yml").read_text()  # its own Data Docs
    assert str(first.data_dir) not in (project / "great_expectations.yml").read_text()
    volume = pd.DataFrame({"event_date": ["2026-02-01"], "event_type": ["call"], "events": [2],
                           "band_low": [8], "band_high": [20]})
    outcome = opened.checkpoints["landing.touchpoint_daily_volume"].run(batch_parameters={"dataframe": volume})
    assert not outcome.success  # the copied definitions validate: 2 calls are below the band
    assert list((project / "uncommitted" / "validations").rglob("*.json"))


def test_a_failing_row_the_table_no_longer_holds_is_counted_not_a_crash(tmp_path):
    """Each failing row of the volume table is its own finding; a listed row that cannot be found
    again in the frame (it cannot happen with the gate's own tables) is still reported, as a count
    of what Great Expectations found, and the gate does not crash on it."""
    from expectations.frames import Frame, _volume_finding
    from expectations.gate.runner import _row_findings

    opened = open_context(load_settings(data_dir=tmp_path / "data"))
    day = pd.Timestamp("2026-02-01").date()
    volume = pd.DataFrame({"event_date": [day, day, day], "event_type": ["call", "email", "order"],
                           "events": [2, 1, 50], "band_low": [8, 6, 40], "band_high": [20, 15, 70],
                           "history_days": [4, 4, 4]})
    outcome = opened.checkpoints["landing.touchpoint_daily_volume"].run(batch_parameters={"dataframe": volume})
    [suite_result] = outcome.run_results.values()
    [low] = [r for r in suite_result.results if not r.success]
    whole = _row_findings(Frame("touchpoint_daily_volume", volume, describe_row=_volume_finding), low, "critical")
    assert [(f.batch, f.column, f.observed) for f in whole] == [
        ("2026-02-01", "call", "2 event(s), expected 8-20 from 4 same-weekday day(s)"),
        ("2026-02-01", "email", "1 event(s), expected 6-15 from 4 same-weekday day(s)")]
    partial = _row_findings(Frame("touchpoint_daily_volume", volume[volume.event_type != "email"],
                                  describe_row=_volume_finding), low, "critical")
    assert [f.column for f in partial] == ["call", None]
    assert partial[1].observed.startswith("1 failing row(s) not named: 2 of 3 rows unexpected"), partial[1].observed
