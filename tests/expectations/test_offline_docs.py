"""The documentation sites open from the file system without a network, and show their content.

- GX Data Docs: GX loads Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from CDNs, so
  its index of validations is an empty table offline. After each gate run the pages are rewritten
  (expectations/offline_docs.py); headless Chromium opens them and must request nothing but local
  files, log no error, and show every validation, passed and failed, in words.
- dbt docs: ``loyalty warehouse docs`` writes ``dbt docs generate --static``'s one-file page, which
  must list the models in Chromium without fetching anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from quality_builders import customer_ids, customer_record, day_of_touchpoints, land_customers, land_touchpoints
from report_browser import visit

from expectations.gate import validate_landing
from expectations.offline_docs import MARKER, make_offline
from loyalty_core.settings import load_settings

UTC = timezone.utc
TYPES = {"call": 12, "email": 12, "meeting": 12}  # a small batch: what matters is the pages
CUSTOMERS = customer_ids(20)
INDEX_PROBES = {
    "rows": "document.querySelectorAll('table.offline-table tbody tr').length",
    "failed_rows": "document.querySelectorAll('table.offline-table tr.offline-failed').length",
    "links": "Array.from(document.querySelectorAll('table.offline-table a')).map(a => a.href)",
    "text": "document.body.innerText",
    "scripts": "document.scripts.length",
}


def local_only(requests: list[str]) -> bool:
    return all(url.startswith("file://") or url.startswith("data:") for url in requests)


def test_gx_data_docs_open_offline_and_list_every_validation(data_dir: Path, tmp_path: Path, artifacts_dir):
    settings = load_settings(data_dir=data_dir)
    day = datetime.now(UTC).date() - timedelta(days=2)
    land_customers(settings, [customer_record(c) for c in CUSTOMERS])
    land_touchpoints(settings, day_of_touchpoints(day, TYPES, CUSTOMERS))
    passed = validate_landing(settings, event_dates=[day])
    assert passed.passed, passed.summary()
    # A second run with a defect the contract would have stopped (a null event id): its validation
    # fails, whatever the gate then does with the row (stop, or quarantine it).
    records = day_of_touchpoints(day - timedelta(days=1), TYPES, CUSTOMERS, prefix="B")
    land_touchpoints(settings, records, rows_patch={0: {"event_id": None}})
    failed = validate_landing(settings, event_dates=[day - timedelta(days=1)])

    index = Path(failed.docs_path)
    html = index.read_text()
    assert MARKER in html and "https://" not in html.split("<body", 1)[0]  # nothing remote in the head
    page = visit(index, tmp_path / "chromium", screenshot=artifacts_dir / "data-docs-offline.png",
                 probes=INDEX_PROBES, height=1600)
    assert local_only(page.requests), page.requests
    assert page.console_errors == []
    assert page.probes["scripts"] == 0
    validations = sorted(p for p in index.parent.glob("validations/*/*/*/*.html"))
    assert len(validations) >= 4  # two suites (touchpoints, event ids), two runs
    assert page.probes["rows"] == len(validations)
    assert page.probes["failed_rows"] >= 1
    assert "✗ failed" in page.probes["text"] and "✓ passed" in page.probes["text"]
    assert {Path(u.removeprefix("file://")) for u in page.probes["links"]} == set(validations)
    assert "gate_runs.html" in html  # the gate's own run list, with findings, is one click away

    # The failed validation's page: offline, the failure in words, the failing column named.
    failed_page = next(p for p in validations if failed.run_id in str(p) and "landed_touchpoints" in p.name)
    result = visit(failed_page, tmp_path / "chromium", probes={"text": "document.body.innerText",
                                                                "scripts": "document.scripts.length"})
    assert local_only(result.requests), result.requests
    assert result.console_errors == []
    assert result.probes["scripts"] == 0
    assert "✗ failed" in result.probes["text"] and "event_id" in result.probes["text"]

    # Rewriting is idempotent, and a full sweep leaves rewritten pages alone.
    assert make_offline(index.parent) == []


def test_make_offline_renders_the_index_table_from_gx_inline_data(tmp_path: Path):
    """The rewrite on a page shaped like GX's index: CDN tags gone, the table drawn, a dead suite
    link left as text."""
    site = tmp_path / "site"
    (site / "validations" / "s" / "run-1" / "t").mkdir(parents=True)
    (site / "validations" / "s" / "run-1" / "t" / "v.html").write_text("<html><body>ours</body></html>")
    row = {"validation_success": '<i class="fas fa-times text-danger" ></i>', "run_time": "2026-06-30 06:00 UTC",
           "_run_time_sort": 2.0, "run_name": "run-1", "expectation_suite_name":
           '<a href="expectations/s.html">s</a>', "_table_row_link_path": "validations/s/run-1/t/v.html",
           "_validation_success_text": "Failed"}
    older = dict(row, run_time="2026-06-29 06:00 UTC", _run_time_sort=1.0,
                 validation_success='<i class="fas fa-check-circle text-success" ></i>',
                 _validation_success_text="Success")
    columns = [{"field": "validation_success", "title": "Status"}, {"field": "run_time", "title": "Run Time"},
               {"field": "run_name", "title": "Run Name"}, {"field": "expectation_suite_name", "title": "Suite"}]
    (site / "index.html").write_text(
        "<!DOCTYPE html><html><head><title>Data Docs created by Great Expectations</title>"
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>'
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script></head><body>'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1">'
        '<table id="t-body-table" data-toggle="table"></table>'
        "<script>\n  $('#t-body-table').bootstrapTable(\n    Object.assign(\n      {\n"
        f"        columns: {columns!r},\n        data: {[older, row]!r},\n"
        "        toolbar: '#t-toolbar'\n      },\n      {'sortName': 'run_time', 'sortOrder': 'desc'}\n    )\n  );\n"
        "</script></body></html>")
    assert [p.name for p in make_offline(site)] == ["index.html"]  # a page GX did not write is left alone
    html = (site / "index.html").read_text()
    assert "https://" not in html and "<script" not in html
    assert 'src="static/images/logo-long.png"' in html
    body = html.split("<tbody>", 1)[1]
    assert body.index("✗ failed") < body.index("✓ passed")  # newest first
    assert '<a href="validations/s/run-1/t/v.html">2026-06-30 06:00 UTC</a>' in body
    assert 'href="expectations/s.html"' not in body and "<td>s</td>" in body  # GX built no suite page


@pytest.mark.slow
def test_warehouse_docs_writes_one_file_that_opens_offline(data_dir: Path, tmp_path: Path, artifacts_dir):
    env = {**os.environ, "LOYALTY_DATA_DIR": str(data_dir)}
    done = subprocess.run([str(Path(sys.executable).parent / "loyalty"), "warehouse", "docs"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    page_file = data_dir / "dbt-target" / "static_index.html"
    assert page_file.is_file() and page_file.resolve().as_uri() in done.stdout
    text = page_file.read_text()
    for model in ("fct_churn_alerts", "fct_customer_health_daily", "dim_customers", "fct_loyalty_matrix"):
        assert model in text
    page = visit(page_file, tmp_path / "chromium", screenshot=artifacts_dir / "dbt-docs.png",
                 fragment="#!/model/model.loyalty_monitor.fct_churn_alerts",
                 probes={"text": "document.body.innerText"}, height=1400)
    assert local_only(page.requests), [u for u in page.requests if not u.startswith("file://")]
    # The model's own page renders from the inlined manifest: its description and columns.
    assert "fct_churn_alerts" in page.probes["text"]
    assert "value_at_stake_reporting" in page.probes["text"]
