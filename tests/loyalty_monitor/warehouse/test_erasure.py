"""Erasure is complete (issue 12): a tombstoned customer's name, id and texts are nowhere under the
data directory afterwards: not in the landing zone's Parquet, not in any warehouse schema (nor in
the DuckDB file's free blocks), not in the alert outbox or ``ops.alert_state``, not in the quality
gate's files, logs, reports or Airflow's metadata; the dead-letter topic can be purged of it; and
re-running the pipeline, even over a replayed batch, never brings it back.

Every file is searched as bytes (the text as is, JSON-escaped, HTML-escaped, UTF-16) and, for
Parquet, DuckDB and SQLite files, cell by cell (their strings are compressed on disk).

The fast tests erase on a landed history with a small hand-made warehouse; the end-to-end test
runs the real consumer, ``loyalty run`` (Airflow, dbt, Great Expectations, dispatch to the file
outbox) on a generated history with one distinctive customer, tombstones it through Kafka and
searches the whole data directory.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import html
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loyalty_core.landing_zone import LandingZone
from loyalty_core.settings import PROJECT_ROOT, load_settings
from loyalty_monitor import erasure
from loyalty_monitor.alerting import state as alert_state
from streaming.landing import land_jsonl_offline

pytestmark = pytest.mark.faults

CANARY_ID = "CX-7f3a-ERASE"
CANARY_NAME = "Zyxwvut Quillfeather"
CANARY_NOTE = "erasure-canary-7f3a"
TERMS = [CANARY_ID, CANARY_NAME, CANARY_NOTE]


# --- searching everything ------------------------------------------------------------------------

def _forms(term: str) -> set[bytes]:
    return {term.encode(), json.dumps(term)[1:-1].encode(), json.dumps(term, ensure_ascii=False)[1:-1].encode(),
            html.escape(term).encode(), term.encode("utf-16-le")}


def _parquet_cells(path: Path):
    table = pq.read_table(path)
    for name, column in zip(table.column_names, table.columns):
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                or pa.types.is_boolean(column.type) or pa.types.is_temporal(column.type)):
            for value in column.to_pylist():
                if value is not None:
                    yield f"{name}={value}"
    for key, value in (pq.read_metadata(path).metadata or {}).items():
        yield f"metadata {key!r}={value!r}"


#: DuckDB column types that cannot hold text.
_NOT_TEXT = ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "DOUBLE", "FLOAT",
             "DECIMAL", "BOOLEAN", "DATE", "TIMESTAMP", "TIME", "INTERVAL")


def _duckdb_cells(path: Path, terms: list[str]):
    """Cells of every table (and the SQL of every view) of a DuckDB file that contain a term."""
    with tempfile.TemporaryDirectory() as tmp:  # a copy: never touch (or lock) the real file
        copy = Path(tmp) / path.name
        shutil.copy(path, copy)
        wal = path.with_name(path.name + ".wal")
        if wal.exists():
            shutil.copy(wal, Path(tmp) / wal.name)
        con = duckdb.connect(str(copy), read_only=True)
        try:
            for schema, table in con.execute("select schema_name, table_name from duckdb_tables()").fetchall():
                relation = f'"{schema}"."{table}"'
                columns = [c for c, kind in con.execute(
                    "select column_name, data_type from duckdb_columns() where schema_name = ? and table_name = ?",
                    [schema, table]).fetchall() if not kind.upper().startswith(_NOT_TEXT)]
                for column in columns:
                    for term in terms:
                        for (value,) in con.execute(f'select cast("{column}" as varchar) from {relation} '
                                                    f'where contains(cast("{column}" as varchar), ?) limit 3',
                                                    [term]).fetchall():
                            yield f"{schema}.{table}.{column}={value}"
            for (sql,) in con.execute("select sql from duckdb_views() where not internal").fetchall():
                yield f"view {sql}"
        finally:
            con.close()


def _sqlite_cells(path: Path):
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "db"
        shutil.copy(path, copy)
        con = sqlite3.connect(copy)
        try:
            for (table,) in con.execute("select name from sqlite_master where type = 'table'").fetchall():
                for row in con.execute(f'select * from "{table}"'):
                    for value in row:
                        if isinstance(value, bytes):
                            value = value.decode("utf-8", "replace")
                        if value is not None:
                            yield f"{table}: {value}"
        finally:
            con.close()


def find_everywhere(root: Path, terms: list[str] = TERMS) -> list[str]:
    """Every place under ``root`` that holds one of the terms: raw bytes of every file, and the
    cells of every Parquet, DuckDB and SQLite file (and gzip content)."""
    hits = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        data = path.read_bytes()
        for term in terms:
            if any(form in data for form in _forms(term)):
                hits.append(f"{path.relative_to(root)}: bytes hold {term!r}")
        cells = None
        if data[:4] == b"PAR1":
            cells = _parquet_cells(path)
        elif data[8:12] == b"DUCK":
            cells = _duckdb_cells(path, terms)
        elif data[:16] == b"SQLite format 3\x00":
            cells = _sqlite_cells(path)
        elif data[:2] == b"\x1f\x8b":
            cells = iter([gzip.decompress(data).decode("utf-8", "replace")])
        for cell in cells or ():
            if any(term in str(cell) for term in terms):
                hits.append(f"{path.relative_to(root)}: content {str(cell)[:200]!r}")
    return hits


# --- a landed history with one distinctive customer ------------------------------------------------

def canary_history(directory: Path, customers: int, start: str, end: str, seed: int,
                   complaint_on: str | None = None) -> dict:
    """A generated history in which one active customer is renamed CANARY_*: distinctive id,
    name, notes and a survey comment. Written outside the data directory."""
    from loyalty_monitor.generator import generate

    summary = generate(directory, customers=customers, start=start, end=end, seed=seed)
    truth = json.loads(summary.ground_truth_file.read_text())
    alive = [c for c in truth["customers"] if not c["deleted"]]
    chosen = next((c for c in alive if c["churns"]), alive[0])["customer_id"]  # a churner has alerts
    other = next(c["customer_id"] for c in truth["customers"]
                 if not c["deleted"] and c["customer_id"] != chosen)
    customers_file, touchpoints_file = directory / "customers.jsonl", directory / "touchpoints.jsonl"
    lines = []
    for line in customers_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("customer_id") == chosen:
            record["customer_id"] = CANARY_ID
            if "name" in record:
                record["name"] = CANARY_NAME
        lines.append(json.dumps(record, ensure_ascii=False))
    customers_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines, n = [], 0
    for line in touchpoints_file.read_text(encoding="utf-8").splitlines():
        if f'"{chosen}"' in line:
            record = json.loads(line)
            record["customer_id"] = CANARY_ID
            n += 1
            if n % 4 == 0:
                record["note"] = f"{CANARY_NOTE}: called {CANARY_NAME} about the invoice"
            line = json.dumps(record, ensure_ascii=False)
        lines.append(line)
    lines.append(json.dumps({
        "schema_version": 1, "event_id": "canary-survey", "event_type": "survey_response",
        "occurred_at": f"{end}T07:00:00Z", "customer_id": CANARY_ID, "department": "support",
        "payload": {"nps_score": 2, "comment": f"{CANARY_NOTE} survey comment"}}))
    if complaint_on:  # an open high-severity complaint: an action-needed alert for the canary
        lines.append(json.dumps({
            "schema_version": 1, "event_id": "canary-complaint", "event_type": "complaint",
            "occurred_at": f"{complaint_on}T10:00:00Z", "customer_id": CANARY_ID, "department": "support",
            "direction": "inbound", "note": f"{CANARY_NOTE} complaint by {CANARY_NAME}",
            "payload": {"severity": "high"}}))
    touchpoints_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"other": other, "truth": truth}


def _offline_settings(data_dir: Path):
    return load_settings(data_dir=data_dir, landing_url="", warehouse_path="")


def _landed_ids(settings) -> dict[str, set[str]]:
    zone = LandingZone.from_settings(settings)
    return {dataset: set(zone.read(dataset).column("customer_id").to_pylist())
            for dataset in ("touchpoints", "customers")}


def _alert_id(customer_id: str, rule: str, day: dt.date) -> str:
    return hashlib.md5(f"{customer_id}|{rule}|{day.isoformat()}".encode()).hexdigest()


def _small_warehouse(settings, other: str) -> None:
    """A warehouse shaped like the real one: marts in build and published, ops tables, a view."""
    con = duckdb.connect(str(settings.warehouse))
    try:
        landing = str(Path(settings.landing) / "customers" / "*" / "*.parquet")
        for schema in ("build", "published"):
            con.execute(f"create schema {schema}")
            con.execute(f"create table {schema}.dim_customers as select customer_id, name as customer_name, "
                        f"account_manager_email from read_parquet('{landing}') where not is_deleted")
            con.execute(f"create table {schema}.fct_touchpoints as select customer_id, note, comment from "
                        f"read_parquet('{Path(settings.landing) / 'touchpoints' / '*' / '*.parquet'}')")
        con.execute("create view build.stg_customers as select * from build.dim_customers")
        alert_state.ensure_table(con)
        day = dt.date(2026, 2, 27)
        for customer_id in (CANARY_ID, other):
            con.execute("insert into ops.alert_state (alert_id, channel, status, attempts, recipient, alert_date, "
                        "updated_at) values (?, 'file', 'sent', 1, 'am@example.com', ?, now())",
                        [_alert_id(customer_id, "open_high_complaint", day), day])
        con.execute("create table ops.pipeline_runs (published_at timestamp, published_by varchar)")
        con.execute("insert into ops.pipeline_runs values (now(), ?), (now(), 'loyalty_pipeline')",
                    [f"rerun after {CANARY_NAME} complained"])
    finally:
        con.close()


def _outbox_message(outbox: Path, customer_id: str, name: str) -> str:
    key = _alert_id(customer_id, "open_high_complaint", dt.date(2026, 2, 27))
    outbox.mkdir(parents=True, exist_ok=True)
    record = {"subject": f"Action needed: {name}", "to": ["am@example.com"], "text": f"{name} complained",
              "kind": "churn_alert", "idempotency_key": key,
              "alerts": [{"alert_id": key, "customer_id": customer_id, "customer_name": name}]}
    (outbox / f"{key}.file.json").write_text(json.dumps(record, indent=2))
    (outbox / f"{key}.file.eml").write_text(f"Subject: Action needed: {name}\n\n{name} complained\n")
    (outbox / f"{key}.file.html").write_text(f"<p>{html.escape(name)} complained</p>")
    return key


def _side_files(data_dir: Path, other: str) -> None:
    """What other parts leave under the data directory: a log, JSON Lines, the quarantine, a
    SQLite metadata DB with an XCom, a Data Docs page."""
    (data_dir / "logs").mkdir(exist_ok=True)
    (data_dir / "logs" / "run.log").write_text(f"warning: {CANARY_NAME} ({CANARY_ID}) has a gap\n"
                                               f"info: {other} built\n")
    (data_dir / "inputs").mkdir(exist_ok=True)
    (data_dir / "inputs" / "customers.jsonl").write_text(
        json.dumps({"customer_id": CANARY_ID, "name": CANARY_NAME}) + "\n"
        + json.dumps({"customer_id": other, "name": "Other Co"}) + "\n")
    quality = data_dir / "quality"
    quality.mkdir(exist_ok=True)
    pq.write_table(pa.table({"customer_id": [CANARY_ID, other], "original_json": [
        json.dumps({"note": CANARY_NOTE}), json.dumps({"note": "fine"})]}), quality / "quarantine.parquet")
    (quality / "data_docs").mkdir(exist_ok=True)
    (quality / "data_docs" / "index.html").write_text(
        f"<td>{html.escape(CANARY_NAME)}</td><td>{other}</td>")
    (data_dir / "airflow").mkdir(exist_ok=True)
    con = sqlite3.connect(data_dir / "airflow" / "airflow.db")
    con.execute("create table xcom (key text, value blob)")
    con.execute("insert into xcom values ('return_value', ?), ('other', 'kept')",
                [json.dumps({"customer": CANARY_NAME}).encode()])
    con.commit()
    con.close()


@pytest.fixture()
def landed(tmp_path: Path):
    gen = tmp_path / "generated"
    facts = canary_history(gen, customers=20, start="2025-11-01", end="2026-02-27", seed=5)
    data_dir = tmp_path / "data"
    settings = _offline_settings(data_dir)
    land_jsonl_offline(settings, gen / "touchpoints.jsonl", gen / "customers.jsonl")
    deleted = [c["customer_id"] for c in facts["truth"]["customers"] if c["deleted"]]
    return {"settings": settings, "gen": gen, "other": facts["other"], "data_dir": data_dir, "deleted": deleted}


def _reasons(settings, report, customer_id: str) -> list[str]:
    subject = erasure.pseudonym(erasure.subject_key(settings), customer_id)
    return [e["reason"] for e in report.erasures if e["subject"] == subject]


def test_erasure_on_request_leaves_no_trace_anywhere_and_records_who_without_the_data(landed):
    settings, other, data_dir = landed["settings"], landed["other"], landed["data_dir"]
    _small_warehouse(settings, other)
    outbox = data_dir / "alerts" / "outbox"
    canary_key = _outbox_message(outbox, CANARY_ID, CANARY_NAME)
    other_key = _outbox_message(outbox, other, "Other Co")
    _side_files(data_dir, other)
    before = find_everywhere(data_dir)
    for place in ("landing/", "warehouse.duckdb", "alerts/outbox", "logs/run.log", "inputs/customers.jsonl",
                  "quality/quarantine.parquet", "quality/data_docs", "airflow/airflow.db"):
        assert any(h.startswith(place) for h in before), f"the canary should be in {place} before erasure"
    landed_before = _landed_ids(settings)

    report = erasure.erase_customers(settings, [CANARY_ID], requested_by="dpo@example.com")

    assert find_everywhere(data_dir) == []
    removed = report.erasures[0]["removed"]
    assert removed["landing_rows"] > 5 and removed["warehouse_rows"] > 5
    assert removed["alert_states"] == 1 and removed["outbox_files"] == 3
    assert {"build.dim_customers", "published.fct_touchpoints"} <= set(removed["warehouse_tables"])
    # everybody else is untouched
    after = _landed_ids(settings)
    assert after["touchpoints"] == landed_before["touchpoints"] - {CANARY_ID}
    assert after["customers"] == landed_before["customers"] - {CANARY_ID}
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        assert con.execute("select count(*) from published.dim_customers where customer_id = ?", [other]).fetchone()[0]
        assert con.execute("select alert_id from ops.alert_state").fetchall() == [
            (_alert_id(other, "open_high_complaint", dt.date(2026, 2, 27)),)]
        assert con.execute("select count(*) from build.stg_customers").fetchone()[0] > 0  # views survive the copy
        assert sorted(r[0] for r in con.execute("select published_by from ops.pipeline_runs").fetchall()) == [
            "loyalty_pipeline", "rerun after [erased] complained"]
    finally:
        con.close()
    assert not any(outbox.glob(f"{canary_key}.*")) and len(list(outbox.glob(f"{other_key}.*"))) == 3
    assert (data_dir / "logs" / "run.log").read_text() == f"warning: [erased] ([erased]) has a gap\ninfo: {other} built\n"
    assert [json.loads(line)["customer_id"] for line in (data_dir / "inputs" / "customers.jsonl").read_text().splitlines()] == [other]
    assert pq.read_table(data_dir / "quality" / "quarantine.parquet").column("customer_id").to_pylist() == [other]
    con = sqlite3.connect(data_dir / "airflow" / "airflow.db")
    assert con.execute("select count(*) from xcom").fetchone()[0] == 2
    con.close()

    # recorded: who, when, what; the customer only as a keyed hash
    [entry] = erasure.erasures(settings)
    assert entry["requested_by"] == "dpo@example.com" and entry["reason"] == "request"
    assert entry["completed_at"] and entry["removed"]["landing_rows"] == removed["landing_rows"]
    assert entry["subject"] == erasure.pseudonym(erasure.subject_key(settings), CANARY_ID)
    assert erasure.is_erased(settings, CANARY_ID) and not erasure.is_erased(settings, other)
    assert oct((data_dir / "erasure" / "key").stat().st_mode & 0o777) == "0o600"


def test_erase_warns_when_nothing_of_an_id_is_found(landed):
    """A mistyped id erases nobody, yet is recorded for good: `loyalty erase` says so, naming the id
    on the terminal only, and says nothing about an id it found or erased before."""
    env = {**os.environ, "LOYALTY_DATA_DIR": str(landed["data_dir"])}
    typo = CANARY_ID[:-1]
    # an id found nowhere may be an ordinary word: other files are not searched for it
    report = landed["data_dir"] / "reports" / "report.html"
    report.parent.mkdir()
    report.write_text("<td>Berg Plast AB</td><td>Ek & Holm AB</td>")
    word = loyalty(env, "erase", "AB", "--by", "dpo@example.com")
    assert "no other file was searched for it" in word.stderr, word.stderr
    assert report.read_text() == "<td>Berg Plast AB</td><td>Ek & Holm AB</td>"
    done = loyalty(env, "erase", typo, CANARY_ID, "--by", "dpo@example.com")
    assert "erased 2 customer(s)" in done.stdout and "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"customer {typo!r}" in warnings[0] and "check the id" in warnings[0], done.stderr
    assert CANARY_ID not in _landed_ids(landed["settings"])["touchpoints"]
    assert typo not in (landed["data_dir"] / "erasure" / "erasures.jsonl").read_text()
    # erased again, with nothing left to find: still searched for (its rows were found the first time)
    log = landed["data_dir"] / "logs" / "late.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(f"late line about {CANARY_ID}\n")
    again = loyalty(env, "erase", CANARY_ID, "--by", "dpo@example.com")
    assert "warning:" not in again.stderr, again.stderr
    assert log.read_text() == "late line about [erased]\n"
    # ids with --pending would be ignored ("nothing to erase"): refused, and nothing recorded
    before = (landed["data_dir"] / "erasure" / "erasures.jsonl").read_text()
    for args in (["--pending", landed["other"]], []):
        refused = subprocess.run([str(Path(sys.executable).parent / "loyalty"), "erase", *args, "--by", "dpo@example.com"],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert "`loyalty erase ID... --by WHO`" in refused.stderr and "nothing to erase" not in refused.stdout
    assert (landed["data_dir"] / "erasure" / "erasures.jsonl").read_text() == before
    assert landed["other"] in _landed_ids(landed["settings"])["touchpoints"]


def test_another_customers_name_that_holds_the_erased_name_stays_whole(landed, tmp_path):
    """Erasing "Lindqvist Packaging AB" must not turn "Ek & Lindqvist Packaging AB", another
    customer, into "Ek & [erased]" in the report, the logs, Airflow's database or the warehouse;
    nor drop that customer's JSON Lines records."""
    settings, other, data_dir = landed["settings"], landed["other"], landed["data_dir"]
    longer, longer_id = f"Ek & {CANARY_NAME}", "CX-LONGER-NAME"
    extra = tmp_path / "longer-customers.jsonl"
    extra.write_text(json.dumps({
        "schema_version": 1, "customer_id": longer_id, "name": longer, "segment": "standard", "country": "DK",
        "account_manager": {"id": "AM01", "name": "A M", "email": "am@example.com"},
        "annual_potential": 1000.0, "currency": "EUR", "updated_at": "2026-01-02T00:00:00Z"}) + "\n")
    land_jsonl_offline(settings, None, extra)
    _small_warehouse(settings, other)
    con = duckdb.connect(str(settings.warehouse))
    con.execute("insert into ops.pipeline_runs values (now(), ?), (now(), ?)",
                [f"{longer} rebuilt", f"{CANARY_NAME} rebuilt"])
    con.close()
    (data_dir / "reports").mkdir()
    (data_dir / "reports" / "report.html").write_text(
        f"<title>{html.escape(longer)}: 83</title><title>{html.escape(CANARY_NAME)}: 85</title>")
    (data_dir / "logs").mkdir()
    (data_dir / "logs" / "run.log").write_text(f"{longer} ({longer_id}) built; {CANARY_NAME} ({CANARY_ID}) built\n")
    (data_dir / "logs" / "events.jsonl").write_text(
        json.dumps({"customer": longer}) + "\n" + json.dumps({"customer": CANARY_NAME}) + "\n")
    (data_dir / "airflow").mkdir()
    db = sqlite3.connect(data_dir / "airflow" / "airflow.db")
    db.execute("create table log (event text)")
    db.execute("insert into log values (?), (?)", [f"scored {longer}", f"scored {CANARY_NAME}"])
    db.commit()
    db.close()

    erasure.erase_customers(settings, [CANARY_ID], requested_by="dpo@example.com")

    assert (data_dir / "reports" / "report.html").read_text() == (
        f"<title>{html.escape(longer)}: 83</title><title>[erased]: 85</title>")
    assert (data_dir / "logs" / "run.log").read_text() == f"{longer} ({longer_id}) built; [erased] ([erased]) built\n"
    assert (data_dir / "logs" / "events.jsonl").read_text() == json.dumps({"customer": longer}) + "\n"
    db = sqlite3.connect(data_dir / "airflow" / "airflow.db")
    assert sorted(r[0] for r in db.execute("select event from log")) == sorted(["scored [erased]", f"scored {longer}"])
    db.close()
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        assert sorted(r[0] for r in con.execute("select published_by from ops.pipeline_runs").fetchall()) == sorted([
            "loyalty_pipeline", "rerun after [erased] complained", f"{longer} rebuilt", "[erased] rebuilt"])
        assert con.execute("select customer_name from published.dim_customers where customer_id = ?",
                           [longer_id]).fetchall() == [(longer,)]
    finally:
        con.close()
    assert find_everywhere(data_dir, [CANARY_ID]) == []


def test_each_erasure_record_counts_its_own_json_lines(landed):
    """Two customers erased at once, one JSON Lines file with one record of the first and two of
    the second: the register says 1 and 2 (it said 3 for each, the file's total)."""
    settings, other, data_dir = landed["settings"], landed["other"], landed["data_dir"]
    (data_dir / "inputs").mkdir()
    (data_dir / "inputs" / "touches.jsonl").write_text("".join(json.dumps({"customer_id": c}) + "\n" for c in (
        CANARY_ID, other, other, "SOMEONE-ELSE")))
    report = erasure.erase_customers(settings, [CANARY_ID, other], requested_by="dpo@example.com")
    key = erasure.subject_key(settings)
    dropped = {e["subject"]: e["removed"].get("json_lines_dropped") for e in report.erasures}
    assert dropped == {erasure.pseudonym(key, CANARY_ID): 1, erasure.pseudonym(key, other): 2}
    assert (data_dir / "inputs" / "touches.jsonl").read_text() == json.dumps({"customer_id": "SOMEONE-ELSE"}) + "\n"


def test_a_tombstone_erases_and_a_replayed_batch_is_erased_again_but_a_new_record_recreates(landed, tmp_path):
    settings, gen, other = landed["settings"], landed["gen"], landed["other"]
    tomb = tmp_path / "tombstone.jsonl"
    tomb.write_text(json.dumps({"customer_id": CANARY_ID, "tombstone": True}) + "\n")
    # the tombstone lands like any customers batch (offsets = line numbers, past the others')
    staging = _offline_settings(tmp_path / "staging")
    land_jsonl_offline(staging, None, tomb)
    for path in Path(staging.landing, "customers").rglob("*.parquet"):
        target = Path(settings.landing, path.relative_to(staging.landing)).with_name("customers-p002-tombstone.parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)

    first = erasure.apply_erasures(settings, requested_by="loyalty_pipeline 2026-02-27")
    assert _reasons(settings, first, CANARY_ID) == ["tombstone"]
    # the history's own deleted customers are erased as well
    assert len(first.erasures) == 1 + len(landed["deleted"])
    assert not set(landed["deleted"]) & set().union(*_landed_ids(settings).values())
    assert find_everywhere(landed["data_dir"]) == []
    assert CANARY_ID not in set().union(*_landed_ids(settings).values())
    assert erasure.apply_erasures(settings).erasures == []  # nothing left to do: idempotent

    # A replayed batch (the consumer re-reads old offsets) lands the same files again.
    land_jsonl_offline(settings, gen / "touchpoints.jsonl", gen / "customers.jsonl")
    assert CANARY_ID in _landed_ids(settings)["touchpoints"]
    again = erasure.apply_erasures(settings, requested_by="loyalty_pipeline 2026-02-28")
    assert _reasons(settings, again, CANARY_ID) == ["re-landed"]
    assert find_everywhere(landed["data_dir"]) == []
    assert other in _landed_ids(settings)["touchpoints"]

    # A master-data record sent after the erasure re-creates the customer: its new rows stay.
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = tmp_path / "new"
    new.mkdir()
    (new / "customers.jsonl").write_text(json.dumps({
        "schema_version": 1, "customer_id": CANARY_ID, "name": "New Owner ApS", "segment": "growth",
        "country": "DK", "account_manager": {"id": "AM01", "name": "A M", "email": "am@example.com"},
        "annual_potential": 1000, "currency": "DKK", "updated_at": later}) + "\n")
    (new / "touchpoints.jsonl").write_text(json.dumps({
        "schema_version": 1, "event_id": "after-recreation", "event_type": "email", "occurred_at": later,
        "customer_id": CANARY_ID, "department": "sales", "direction": "outbound", "payload": {}}) + "\n")
    staging = _offline_settings(tmp_path / "staging-new")
    land_jsonl_offline(staging, new / "touchpoints.jsonl", new / "customers.jsonl")
    for path in Path(staging.landing).rglob("*.parquet"):
        target = Path(settings.landing, path.relative_to(staging.landing))
        target = target.with_name(target.name.replace("-p000-", "-p005-"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
    assert erasure.apply_erasures(settings).erasures == []
    assert CANARY_ID in _landed_ids(settings)["touchpoints"] and CANARY_ID in _landed_ids(settings)["customers"]
    assert len(erasure.erasures(settings)) == len(first.erasures) + len(again.erasures)


def test_a_record_its_source_stamped_a_day_ahead_does_not_survive_the_tombstone_sent_after_it(landed, tmp_path):
    """User trial: a customer's record with updated_at 20 hours ahead (a source system's clock; within
    the contract's skew), then its tombstone: the erasure took the record for a re-creation (updated_at
    after the tombstone's send time) and kept the name and manager. What orders them is when each was
    sent. And a tombstone for an id nothing else was landed under is erased, and said."""
    settings, other = landed["settings"], landed["other"]
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = tmp_path / "record" / "customers.jsonl"
    record.parent.mkdir()
    record.write_text(json.dumps({
        "schema_version": 1, "customer_id": other, "name": "Skewed Clock GmbH", "segment": "growth",
        "country": "DE", "account_manager": {"id": "AM07", "name": "A M", "email": "am7@example.com"},
        "annual_potential": 1000, "currency": "EUR", "updated_at": ahead}) + "\n")
    assert land_jsonl_offline(settings, None, record)["customers"].landed == 1
    time.sleep(0.01)  # the tombstone is sent after the record (Kafka timestamps in milliseconds)
    tombstones = tmp_path / "tombstones" / "customers.jsonl"
    tombstones.parent.mkdir()
    tombstones.write_text(json.dumps({"customer_id": other, "tombstone": True}) + "\n"
                          + json.dumps({"customer_id": "C999999", "tombstone": True}) + "\n")
    assert land_jsonl_offline(settings, None, tombstones)["customers"].landed == 2

    report = erasure.apply_erasures(settings, requested_by="loyalty_pipeline 2026-02-27")
    assert _reasons(settings, report, other) == ["tombstone"]
    ours = next(e for e in report.erasures if e["subject"] == erasure.pseudonym(erasure.subject_key(settings), other))
    assert ours["removed"]["recreated_rows_kept"] is False
    landed_ids = _landed_ids(settings)
    assert other not in landed_ids["customers"] | landed_ids["touchpoints"]
    assert "Skewed Clock GmbH" not in json.dumps(LandingZone.from_settings(settings).read("customers").to_pylist(),
                                                  default=str)
    # the stray tombstone: erased (recorded, so that what lands under it later goes too), and said
    assert report.not_found == ["C999999"]
    stray = [n for n in report.notes if "matched no customer" in n]
    assert len(stray) == 1 and "C999999" not in stray[0], report.notes  # notes are kept: a keyed hash only


# --- the dead-letter topic --------------------------------------------------------------------------

def test_dead_letters_purge_removes_one_customers_dead_letters_and_keeps_the_others(settings, tmp_path):
    from streaming_helpers import produce

    from streaming.dead_letters import list_dead_letters, purge_dead_letters

    def letter(key: bytes | None, value: bytes, source_offset: int) -> tuple:
        return key, value, [("dlq.source.topic", settings.topic_touchpoints.encode()),
                            ("dlq.source.partition", b"0"), ("dlq.source.offset", str(source_offset).encode()),
                            ("dlq.error.code", b"not_json"), ("dlq.error.detail", b"x"),
                            ("dlq.failed_at", b"2026-02-27T10:00:00Z"), ("original", b"header")]

    letters = [letter(CANARY_ID.encode(), f'{{"note": "{CANARY_NOTE}"'.encode(), 1),
               letter(b"C0002", b'{"customer_id": "C0002", broken', 2),
               letter(None, f'{{"customer_id": "{CANARY_ID}", "name": "{CANARY_NAME}"}}'.encode(), 3),
               letter(b"C0003", b"\xff\xfe not utf-8", 4),
               letter(b"C0002", b'{"customer_id": "C0002", broken', 2)]  # a re-sent copy (at least once)
    for key, value, headers in letters:
        produce(settings, settings.topic_dead_letter, [(key, value)], headers=headers)
    assert len(list_dead_letters(settings)) == 5

    result = purge_dead_letters(settings, customer_ids={CANARY_ID})
    assert (result.purged, result.kept, result.duplicates_dropped) == (2, 2, 1)
    assert result.method in ("delete_records", "recreated")
    kept = list_dead_letters(settings)
    assert sorted(r.key for r in kept) == [b"C0002", b"C0003"]
    assert not any(CANARY_ID.encode() in (r.value or b"") or r.key == CANARY_ID.encode() for r in kept)
    by_key = {r.key: r for r in kept}
    assert by_key[b"C0003"].value == b"\xff\xfe not utf-8"  # original bytes and headers unchanged
    assert (by_key[b"C0003"].source_offset, by_key[b"C0003"].error_code) == (4, "not_json")
    assert ("original", b"header") in by_key[b"C0003"].headers
    assert purge_dead_letters(settings, customer_ids={CANARY_ID}).method == "none"


def test_dead_letters_purge_with_delete_records_writes_the_kept_ones_again_then_cuts_before_them(
        settings, monkeypatch):
    """The Apache Kafka path (Tansu cannot delete records): the kept dead letters are produced again
    with their key, bytes, headers and timestamp, then everything before them is deleted."""
    import kafka
    from streaming_helpers import produce

    from streaming import dead_letters
    from streaming.dead_letters import list_dead_letters, purge_dead_letters

    cuts = []

    class RecordingAdmin(kafka.KafkaAdminClient):
        def delete_records(self, records_to_delete, timeout_ms=None, partition_leader_id=None):
            cuts.append({tp.partition: offset for tp, offset in records_to_delete.items()})
            return {}

    monkeypatch.setattr(dead_letters, "KafkaAdminClient", RecordingAdmin)
    for n, key in enumerate([CANARY_ID.encode(), b"C0002", b"C0003"]):
        produce(settings, settings.topic_dead_letter, [(key, b"not json " + key)],
                headers=[("dlq.source.topic", b"touchpoints"), ("dlq.source.partition", b"0"),
                         ("dlq.source.offset", str(n).encode()), ("dlq.error.code", b"not_json")])
    originals = {r.key: r for r in list_dead_letters(settings)}

    result = purge_dead_letters(settings, customer_ids={CANARY_ID})

    assert (result.method, result.purged, result.kept) == ("delete_records", 1, 2)
    assert cuts == [{0: 0}, {0: 3}]  # a no-op probe at the first offset, then the cut after the last one read
    copies = [r for r in list_dead_letters(settings) if r.offset >= 3]
    assert [(r.key, r.value, r.all_headers, r.timestamp_ms) for r in copies] == [
        (k, originals[k].value, originals[k].all_headers, originals[k].timestamp_ms) for k in (b"C0002", b"C0003")]


# --- end to end -------------------------------------------------------------------------------------

END = dt.date(2026, 2, 27)


def loyalty(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    started = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).parent / "loyalty"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    print(f"loyalty {' '.join(args)}: exit {proc.returncode} in {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, f"loyalty {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two pipeline runs; the shared 2-core machine can be busy
def test_a_tombstone_through_kafka_erases_the_customer_from_every_file_and_it_never_comes_back(broker, tmp_path):
    from streaming.dead_letters import list_dead_letters
    from streaming.topics import ensure_topics

    root = tmp_path
    data_dir = root / "data"
    data_dir.mkdir()
    scoring = root / "scoring.yml"  # every alert reaches the outbox (no weekly cap in the way)
    shipped = (PROJECT_ROOT / "config" / "scoring.yml").read_text()
    assert "max_per_manager_per_week: 3" in shipped
    scoring.write_text(shipped.replace("max_per_manager_per_week: 3", "max_per_manager_per_week: 100"))
    suffix = f"{os.getpid()}-erasure"
    # Airflow's home is the production default, <data_dir>/airflow: its metadata DB and logs are searched too.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", "AIRFLOW"))}
    env.update({
        "LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "LOYALTY_TOPIC_TOUCHPOINTS": f"touchpoints-{suffix}", "LOYALTY_TOPIC_CUSTOMERS": f"customers-{suffix}",
        "LOYALTY_TOPIC_DEAD_LETTER": f"dead-letter-{suffix}", "LOYALTY_TOPIC_BATCHES": f"batches-{suffix}",
        "LOYALTY_CONSUMER_GROUP": f"landing-{suffix}", "LOYALTY_SCORING_FILE": str(scoring),
        "LOYALTY_TASK_RETRIES": "0", "LOYALTY_ALERT_CHANNELS": "file",
    })
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            if key.startswith("LOYALTY_"):
                mp.setenv(key, value)
        settings = load_settings()
        ensure_topics(settings)
        gen = root / "generated"
        facts = canary_history(gen, customers=40, start="2025-10-01", end=END.isoformat(), seed=7,
                               complaint_on=(END - dt.timedelta(days=9)).isoformat())
        with (gen / "touchpoints.jsonl").open("a") as fh:  # two dead letters: the canary's and another's
            fh.write(json.dumps({"schema_version": 1, "event_id": "canary-bad", "event_type": "call",
                                 "occurred_at": "2026-02-30T10:00:00Z", "customer_id": CANARY_ID,
                                 "department": "sales", "direction": "outbound", "payload": {"answered": True},
                                 "note": f"{CANARY_NOTE} dead letter of {CANARY_NAME}"}) + "\n")
            fh.write(json.dumps({"schema_version": 1, "event_id": "other-bad", "event_type": "call",
                                 "occurred_at": "2026-02-30T10:00:00Z", "customer_id": facts["other"],
                                 "department": "sales", "direction": "outbound", "payload": {"answered": True}}) + "\n")
        loyalty(env, "produce", str(gen / "customers.jsonl"), "--topic", "customers")
        loyalty(env, "produce", str(gen / "touchpoints.jsonl"), "--topic", "touchpoints")
        loyalty(env, "consume", "--until-idle")
        loyalty(env, "run", "--as-of", END.isoformat())

        # Before: the canary is everywhere the issue found it.
        before = find_everywhere(data_dir)
        for place in ("landing/touchpoints/", "landing/customers/", "warehouse.duckdb", "alerts/outbox/"):
            assert any(h.startswith(place) for h in before), f"the canary should be in {place}: {before[:5]}"
        con = duckdb.connect(str(settings.warehouse), read_only=True)
        try:
            canary_alerts = {r[0] for r in con.execute(
                "select alert_id from ops.alert_state join published.fct_churn_alerts using (alert_id) "
                "where customer_id = ?", [CANARY_ID]).fetchall()}
            customers_before = con.execute("select count(*) from published.dim_customers").fetchone()[0]
            states_before = con.execute("select count(*) from ops.alert_state").fetchone()[0]
        finally:
            con.close()
        assert canary_alerts, "the canary's complaint alert was dispatched"
        assert any(r.key == CANARY_ID.encode() for r in list_dead_letters(settings))

        # The tombstone, through Kafka like real input; the next run erases.
        tomb = root / "tombstone.jsonl"
        tomb.write_text(json.dumps({"customer_id": CANARY_ID, "tombstone": True}) + "\n")
        loyalty(env, "produce", str(tomb), "--topic", "customers")
        loyalty(env, "consume", "--until-idle")
        loyalty(env, "run", "--as-of", END.isoformat())
        purge = loyalty(env, "dead-letters", "purge", "--erased")
        assert " 1 purged" in purge.stdout, purge.stdout

        assert find_everywhere(data_dir) == []
        letters = list_dead_letters(settings)
        assert any(b'"other-bad"' in (r.value or b"") for r in letters)  # the others' dead letters stay
        assert not any(term.encode() in (r.value or b"") + (r.key or b"") for r in letters for term in TERMS)

        def assert_others_still_built() -> None:
            con = duckdb.connect(str(settings.warehouse), read_only=True)
            try:
                assert con.execute("select count(*) from published.dim_customers").fetchone()[0] == customers_before - 1
                assert con.execute("select count(*) from published.fct_customer_health_daily "
                                   "where as_of_date = ?", [END]).fetchone()[0] == customers_before - 1
                left = {r[0] for r in con.execute("select alert_id from ops.alert_state").fetchall()}
                assert not left & canary_alerts and len(left) == states_before - len(canary_alerts)
            finally:
                con.close()

        assert_others_still_built()
        canary = erasure.pseudonym(erasure.subject_key(settings), CANARY_ID)
        records = json.loads(loyalty(env, "erasures", "--format", "json").stdout)
        [record] = [r for r in records if r["subject"] == canary]  # the history's own deleted customers too
        assert record["reason"] == "tombstone" and record["requested_by"] == f"loyalty_pipeline {END}"
        assert record["removed"]["landing_rows"] > 20 and record["removed"]["outbox_files"] == 3
        assert record["removed"]["alert_states"] == len(canary_alerts)

        # A replayed batch (a consumer restarted from old offsets) is erased again by the next run's
        # same step, apply_erasures: test_a_tombstone_erases_and_a_replayed_batch_is_erased_again...
        # proves that on the landing zone, without a third pipeline run here.


def test_a_numeric_customer_id_is_erased_as_a_token_and_json_and_sqlite_stay_intact(tmp_path):
    """A customer number such as 4711 is a valid id. Erasing it replaces the id where it is the
    customer (a string, a word in a log) and nowhere else: not inside another id (47110), not in a
    number (an offset 4711, a ratio 0.4711, a date 20264711); a JSON state file stays valid JSON
    and SQLite (Airflow's metadata) is redacted with the same rule."""
    from streaming import samples

    gen, data_dir = tmp_path / "generated", tmp_path / "data"
    gen.mkdir()
    settings = _offline_settings(data_dir)
    gone, kept = "4711", "47110"
    (gen / "customers.jsonl").write_text("".join(
        json.dumps(samples.customer(i, customer_id=cid)) + "\n" for i, cid in enumerate((gone, kept))))
    (gen / "touchpoints.jsonl").write_text("".join(
        json.dumps(samples.touchpoint(i, customer_id=cid)) + "\n" for i, cid in enumerate((gone, kept, gone))))
    land_jsonl_offline(settings, gen / "touchpoints.jsonl", gen / "customers.jsonl")
    state = {"customer": gone, "customers": [gone, kept], "kafka_offset": 4711, "ratio": 0.4711,
             "note": f"call {gone} back", gone: "keyed by the id"}
    (data_dir / "state.json").write_text(json.dumps(state, indent=2))
    (data_dir / "run.log").write_text(f"offset 4711.5 ratio 0.4711 for {kept}; gap for {gone}.\n")
    con = sqlite3.connect(data_dir / "airflow.db")
    con.execute("create table xcom (key text, value text, raw blob)")
    con.executemany("insert into xcom values (?, ?, ?)", [
        ("a", json.dumps({"customer_id": gone, "offset": 4711}), json.dumps([gone]).encode()),
        ("b", f"run 20264711 for {kept}", b"\x00\xff binary 4711"),
        ("c", f"{gone} and {kept}", None)])
    con.commit()
    con.close()

    erasure.erase_customers(settings, [gone], requested_by="dpo@example.com")

    assert json.loads((data_dir / "state.json").read_text()) == {
        "customer": "[erased]", "customers": ["[erased]", kept], "kafka_offset": 4711, "ratio": 0.4711,
        "note": "call [erased] back", "[erased]": "keyed by the id"}
    assert (data_dir / "run.log").read_text() == f"offset 4711.5 ratio 0.4711 for {kept}; gap for [erased].\n"
    con = sqlite3.connect(data_dir / "airflow.db")
    rows = {key: (value, raw) for key, value, raw in con.execute("select key, value, raw from xcom")}
    con.close()
    assert json.loads(rows["a"][0]) == {"customer_id": "[erased]", "offset": 4711}
    assert json.loads(rows["a"][1]) == ["[erased]"]
    assert rows["b"] == (f"run 20264711 for {kept}", b"\x00\xff binary 4711")
    assert rows["c"] == (f"[erased] and {kept}", None)
    assert _landed_ids(settings)["customers"] == {kept}


def test_a_name_that_is_an_ordinary_word_is_erased_as_whole_words_only(tmp_path):
    """A customer called "Nova" is erased where the word stands ("Nova called", "Nova's", "Nova,")
    and not inside other words ("Novaform", "Casanova"; another customer's name that holds the
    word is kept whole by the test above)."""
    from streaming import samples

    gen, data_dir = tmp_path / "generated", tmp_path / "data"
    gen.mkdir()
    settings = _offline_settings(data_dir)
    (gen / "customers.jsonl").write_text("".join(json.dumps(samples.customer(i, customer_id=cid, name=name)) + "\n"
                                                 for i, (cid, name) in enumerate((("C-NOVA", "Nova"),
                                                                                  ("C-BERG", "Berg Plast AB")))))
    (gen / "touchpoints.jsonl").write_text(json.dumps(samples.touchpoint(0, customer_id="C-NOVA")) + "\n")
    land_jsonl_offline(settings, gen / "touchpoints.jsonl", gen / "customers.jsonl")
    (data_dir / "run.log").write_text("Nova called; Nova's renewal, Nova, and the Novaform launch at Casanova\n")

    erasure.erase_customers(settings, ["C-NOVA"], requested_by="dpo@example.com")

    assert (data_dir / "run.log").read_text() == (
        "[erased] called; [erased]'s renewal, [erased], and the Novaform launch at Casanova\n")
    assert _landed_ids(settings)["customers"] == {"C-BERG"}


def test_a_one_word_note_is_not_erased_from_other_records(landed, tmp_path):
    """User trial: a customer whose note was the single word "future" was erased, and every "future"
    in the quality gate's validation results became "[erased]" ("from the [erased] (beyond"),
    altering the audit trail of other data. A note that is one ordinary lowercase word: the
    customer's rows that hold it go, other texts keep it; a longer note, or one word that may point
    at a person (a surname, a phone number), is still replaced."""
    settings, other, data_dir = landed["settings"], landed["other"], landed["data_dir"]
    extra = tmp_path / "notes.jsonl"
    extra.write_text("".join(json.dumps({
        "schema_version": 1, "event_id": event_id, "event_type": "call", "occurred_at": "2026-02-20T09:00:00Z",
        "customer_id": CANARY_ID, "department": "sales", "direction": "outbound", "note": note,
        "payload": {"answered": True, "duration_s": 60}}) + "\n"
        for event_id, note in (("one-word", "future"), ("two-words", "Krogh renewal"), ("a-surname", "Kowalski"),
                               ("a-phone", "+4512345678"))))
    land_jsonl_offline(settings, extra, None)
    _small_warehouse(settings, other)
    validations = data_dir / "quality" / "gx" / "validations.json"
    validations.parent.mkdir(parents=True)
    validations.write_text(json.dumps({"observed": "an event date from the future (beyond the window)",
                                       "note": "the Krogh renewal is signed", "who": "Kowalski on +4512345678"}))

    erasure.erase_customers(settings, [CANARY_ID], requested_by="dpo@example.com")

    # one word that may point at a person (a capital, a digit) is still replaced
    assert json.loads(validations.read_text()) == {
        "observed": "an event date from the future (beyond the window)", "note": "the [erased] is signed",
        "who": "[erased] on [erased]"}
    assert CANARY_ID not in _landed_ids(settings)["touchpoints"]


@pytest.mark.faults
def test_a_landed_file_cut_short_stops_the_erasure_naming_it_and_what_to_do(landed):
    """User trial: one truncated Parquet file stopped the run in its erasure step with DuckDB's
    "No magic bytes found at end of file"; nothing said which step, or what to do."""
    settings = landed["settings"]
    victim = sorted(Path(settings.landing, "touchpoints").rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(erasure.ErasureError) as caught:
        erasure.apply_erasures(settings, requested_by="loyalty_pipeline 2026-02-27")
    message = str(caught.value)
    assert message.startswith("1 landed file(s) are not readable Parquet (cut short or damaged): ")
    assert str(victim) in message and "move them out of the landing zone" in message
    assert "What can go wrong" in message and "magic bytes" not in message


# --- the register's key and its lines ------------------------------------------------------------

def test_a_lost_erasure_key_is_refused_not_replaced_and_restoring_it_erases_the_relanded_rows(landed, tmp_path):
    """Tester: with <data_dir>/erasure/key deleted, an erased customer's re-landed rows met a new key
    made without a word: the register's keyed hashes matched no one, "nothing to erase", rows stayed.
    A key cut short gave "[Errno 17] File exists"."""
    settings, gen, data_dir = landed["settings"], landed["gen"], landed["data_dir"]
    erasure.erase_customers(settings, [CANARY_ID], requested_by="dpo@example.com")
    key_path = data_dir / "erasure" / "key"
    kept = tmp_path / "key-backup"
    shutil.copy(key_path, kept)
    land_jsonl_offline(settings, gen / "touchpoints.jsonl", gen / "customers.jsonl")  # a replay
    assert CANARY_ID in _landed_ids(settings)["touchpoints"]
    register = data_dir / "erasure" / "erasures.jsonl"
    recorded = len(register.read_text().splitlines())

    for damage, says in ((lambda: key_path.unlink(), "is missing"),
                         (lambda: key_path.write_bytes(kept.read_bytes()[:7]), "holds 7 bytes instead of 32 (cut short)"),
                         (lambda: key_path.write_bytes(b""), "holds 0 bytes instead of 32 (cut short)")):
        damage()
        before = key_path.read_bytes() if key_path.exists() else None
        with pytest.raises(erasure.RegisterError) as caught:
            erasure.apply_erasures(settings, requested_by="dpo@example.com")
        message = str(caught.value)
        assert message.startswith(f"the erasure key {key_path} {says}, but the erasure register {register} "
                                  f"records {recorded} line(s) keyed with it"), message
        assert f"Restore {key_path} from the backup" in message and "docs/operations.md" in message
        assert "Errno" not in message and "no new key is made" in message
        assert (key_path.read_bytes() if key_path.exists() else None) == before  # no key made or changed
        assert CANARY_ID in _landed_ids(settings)["touchpoints"]  # nothing erased, nothing recorded
        assert len(register.read_text().splitlines()) == recorded

    shutil.copy(kept, key_path)  # restored from the backup: the re-landed rows are recognised and erased
    again = erasure.apply_erasures(settings, requested_by="dpo@example.com")
    assert _reasons(settings, again, CANARY_ID) == ["re-landed"]
    assert CANARY_ID not in _landed_ids(settings)["touchpoints"]


def test_a_new_key_is_made_whole_only_while_the_register_is_empty(tmp_path):
    settings = _offline_settings(tmp_path / "data")
    key = erasure.subject_key(settings)  # first use: made, private
    path = tmp_path / "data" / "erasure" / "key"
    assert len(key) == 32 and path.read_bytes() == key and (path.stat().st_mode & 0o777) == 0o600
    assert erasure.subject_key(settings) == key
    path.write_bytes(key[:5])  # cut short, nothing recorded yet: restore it or delete it, said in words
    with pytest.raises(erasure.RegisterError) as caught:
        erasure.subject_key(settings)
    assert str(caught.value).startswith(f"the erasure key {path} holds 5 bytes instead of 32 (cut short), and the "
                                        "erasure register")
    assert f"delete {path} to have a new key made" in str(caught.value)
    path.unlink()
    assert len(erasure.subject_key(settings)) == 32


def test_erasures_says_how_many_register_lines_it_could_not_read_and_a_torn_line_swallows_no_entry(landed):
    """Tester: a torn line in the register showed "0 erasures" with only "skipping an unreadable
    line" in the log, while the register is what keeps erased customers erased. And an entry
    appended after a line cut short by a crash was glued to it, unreadable with it."""
    settings, data_dir = landed["settings"], landed["data_dir"]
    env = {**os.environ, "LOYALTY_DATA_DIR": str(data_dir)}
    erasure.erase_customers(settings, [CANARY_ID], requested_by="dpo@example.com")
    register = data_dir / "erasure" / "erasures.jsonl"
    lines = register.read_text().splitlines()
    register.write_text(lines[0][:40] + "\n" + "\n".join(lines[1:]) + "\n" + lines[0][:25])  # torn twice
    done = subprocess.run([str(Path(sys.executable).parent / "loyalty"), "erasures", "--format", "json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 1 and rows[0].get("subject") is None  # the request's line is the torn one
    warning = done.stderr.strip().splitlines()[-1]
    assert warning.startswith(f"WARNING: 2 line(s) of the erasure register {register} could not be read "
                              f"(line 1, {len(lines) + 1}) and are not listed"), warning
    assert "Restore the register from the backup" in warning and "`loyalty erase --pending --by WHO`" in warning
    table = subprocess.run([str(Path(sys.executable).parent / "loyalty"), "erasures"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert table.returncode == 1 and "UNREADABLE" in table.stdout and "WARNING: 2 line(s)" in table.stderr
    # the next entry goes on a line of its own: the torn last line does not take it down with it
    erasure.erase_customers(settings, [landed["other"]], requested_by="dpo@example.com")
    assert erasure.unreadable_lines(settings) == [1, len(lines) + 1]
    assert any(e.get("requested_by") == "dpo@example.com" and e.get("event") == "requested"
               for e in erasure.erasure_log(settings)[len(lines) - 1:])
