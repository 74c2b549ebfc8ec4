"""The report rendered from a warehouse the real pipeline built, with hostile names and notes.

A generated history whose customer names and last notes carry ``<script>`` and HTML goes through
the real path: `loyalty produce` to the session broker, `loyalty consume --until-idle`,
`loyalty run` (Airflow dag.test: dbt, quality gate, publish, alerts), `loyalty report`. Headless
Chromium then opens the report.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty_monitor.generator import CUSTOMERS_FILE, TOUCHPOINTS_FILE, generate
from report_browser import visit
from report_fixtures import EVIL_NAME, EVIL_NOTE
from test_report import PROBES, SECTIONS, assert_self_contained

END = dt.date(2026, 6, 30)


def loyalty(*args: str) -> str:
    done = subprocess.run([str(Path(sys.executable).parent / "loyalty"), *args], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"loyalty {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def hostile_history(out: Path) -> tuple[Path, Path]:
    """A small generated history; every name and every customer's last note carries markup."""
    generate(out, customers=16, start=END - dt.timedelta(days=150), end=END, seed=11)
    customers, touchpoints = out / CUSTOMERS_FILE, out / TOUCHPOINTS_FILE
    lines, ids = [], []
    for line in customers.read_text().splitlines():
        record = json.loads(line)
        if "name" in record:
            record["name"] = f"{EVIL_NAME} #{record['customer_id']}"
            ids.append(record["customer_id"])
        lines.append(json.dumps(record))
    customers.write_text("\n".join(lines) + "\n")
    with touchpoints.open("a") as fh:
        for n, customer_id in enumerate(sorted(set(ids))):
            fh.write(json.dumps({
                "schema_version": 1, "event_id": f"hostile-{n}", "event_type": "email",
                "occurred_at": f"{END.isoformat()}T15:00:00Z", "customer_id": customer_id,
                "department": "sales", "direction": "outbound", "note": EVIL_NOTE, "payload": {},
            }) + "\n")
    return customers, touchpoints


@pytest.mark.slow
def test_report_from_pipeline_warehouse_in_chromium(settings, tmp_path, artifacts_dir):
    customers, touchpoints = hostile_history(tmp_path / "history")
    loyalty("produce", str(customers), "--topic", settings.topic_customers)
    loyalty("produce", str(touchpoints), "--topic", settings.topic_touchpoints)
    loyalty("consume", "--until-idle")
    loyalty("run", "--as-of", END.isoformat())
    out = tmp_path / "report.html"
    loyalty("report", "--out", str(out))

    page = visit(out, tmp_path / "chromium", screenshot=artifacts_dir / "report-pipeline.png", probes=PROBES)
    assert_self_contained(page, out)
    for section in SECTIONS:
        assert f'<section id="{section}"' in page.dom, section
    # Every mart the report reads is published by the pipeline: no section is empty for want of data.
    assert "No data." not in page.probes["text"], page.probes["text"]
    assert f"as of {END}" in page.probes["text"]
    assert page.probes["not_pwned"] is True
    assert page.probes["injected_elements"] == 0
    assert html.escape(EVIL_NAME, quote=False) in page.dom
    assert EVIL_NAME in page.probes["text"]
    assert EVIL_NOTE in page.probes["text"]
