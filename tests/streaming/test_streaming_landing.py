"""The landing zone without Kafka: the design.md schema, file naming, atomic replay, offline landing."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from loyalty_core.landing_zone import CUSTOMER_SCHEMA, TOUCHPOINT_SCHEMA, LandingZone
from loyalty_core.settings import load_settings
from streaming import samples
from streaming.landing import BatchBuilder, decode_chunk, land_jsonl_offline, offline_source, prepare, safe_decode

# The column list of docs/design.md, "Landing zone", in order: a change here is an interface change.
DESIGN_TOUCHPOINT_COLUMNS = (
    "event_id:string schema_version:int32 event_type:string occurred_at:timestamp[us,tz=UTC] "
    "occurred_at_raw:string event_date:date32[day] customer_id:string department:string "
    "direction:string employee_id:string contact_role:string note:string source:string "
    "answered:bool duration_s:double transferred:bool resolved:bool first_time_fix:bool stage:string "
    "amount_overdue:double days_overdue:int64 invoice_id:string severity:string nps_score:int32 "
    "comment:string amount:double currency:string product_line:string payload_json:string "
    "extra_json:string kafka_topic:string kafka_partition:int32 kafka_offset:int64 "
    "kafka_timestamp:timestamp[ms,tz=UTC] landed_at:timestamp[us,tz=UTC]").split()
DESIGN_CUSTOMER_COLUMNS = (
    "customer_id:string is_deleted:bool schema_version:int32 name:string segment:string "
    "country:string account_manager_id:string account_manager_name:string "
    "account_manager_email:string annual_potential:double currency:string "
    "updated_at:timestamp[us,tz=UTC] event_date:date32[day] extra_json:string kafka_topic:string "
    "kafka_partition:int32 kafka_offset:int64 kafka_timestamp:timestamp[ms,tz=UTC] "
    "landed_at:timestamp[us,tz=UTC]").split()


def _columns(schema: pa.Schema) -> list[str]:
    return [f"{f.name}:{f.type}".replace(", ", ",") for f in schema]


LANDED_AT = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def _batch(kind, messages, topic=None) -> tuple[BatchBuilder, list]:
    """A batch of raw (partition, offset, timestamp_ms, key, value) messages; returns it and the rejects."""
    dataset = {"touchpoint": "touchpoints", "customer": "customers"}[kind]
    batch = BatchBuilder(dataset, topic or dataset)
    chunk = decode_chunk(kind, batch.topic, messages, 20_000, LANDED_AT)
    for partition, offset, *_ in messages:
        batch.note_offset(partition, offset)
    batch.add_table(chunk.table)
    return batch, chunk.rejects


def _touchpoint_batch(records, partition=2, first_offset=100) -> BatchBuilder:
    messages = [(partition, first_offset + i, 1_772_000_000_000, r["customer_id"].encode(), samples.encode(r))
                for i, r in enumerate(records)]
    batch, rejects = _batch("touchpoint", messages)
    assert rejects == []
    return batch


def test_schemas_are_exactly_the_design_doc_columns():
    assert _columns(TOUCHPOINT_SCHEMA) == DESIGN_TOUCHPOINT_COLUMNS
    assert _columns(CUSTOMER_SCHEMA) == DESIGN_CUSTOMER_COLUMNS


def test_touchpoint_flattening_keeps_raw_time_payload_and_unknown_fields(tmp_path):
    record = samples.touchpoint(4, occurred_at="2026-03-01T00:30:00+02:00", crm_case="K-17")
    record["payload"]["unplanned"] = {"nested": [1, 2]}
    batch = _touchpoint_batch([record])
    zone = LandingZone(str(tmp_path / "landing"))
    zone.write_prepared(prepare(batch))
    [row] = zone.read("touchpoints").to_pylist()
    # 00:30 at +02:00 is the previous day in UTC: event_date follows UTC, the raw text is kept.
    assert row["occurred_at"] == datetime(2026, 2, 28, 22, 30, tzinfo=timezone.utc)
    assert row["event_date"] == date(2026, 2, 28)
    assert row["occurred_at_raw"] == "2026-03-01T00:30:00+02:00"
    assert (row["stage"], row["amount_overdue"], row["days_overdue"], row["invoice_id"]) == \
        ("reminder", 1200.0, 14, "INV-1")
    assert row["answered"] is None and row["nps_score"] is None
    assert json.loads(row["payload_json"])["unplanned"] == {"nested": [1, 2]}
    assert json.loads(row["extra_json"]) == {"crm_case": "K-17"}
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == ("touchpoints", 2, 100)
    assert row["kafka_timestamp"] == datetime(2026, 2, 25, 6, 13, 20, tzinfo=timezone.utc)
    assert row["landed_at"].tzinfo is not None


def test_payload_values_of_the_wrong_type_become_null_not_a_crash(tmp_path):
    # `email` payloads are free-form in the contract, so anything can arrive in a known field name;
    # an email defines no payload field, so every typed column stays null and payload_json keeps it all.
    record = samples.touchpoint(1, payload={"answered": "yes", "duration_s": True, "days_overdue": 10**30,
                                            "nps_score": 7.0, "amount": 12})
    batch = _touchpoint_batch([record])
    [row] = prepare(batch).tables.popitem()[1].to_pylist()
    assert row["answered"] is None and row["duration_s"] is None and row["days_overdue"] is None
    assert row["nps_score"] is None and row["amount"] is None
    assert json.loads(row["payload_json"]) == record["payload"]


def test_one_file_per_partition_and_event_date_named_by_the_batch_offset_range(tmp_path):
    # samples spread over 3 dates; two partitions
    batch, _ = _batch("touchpoint", [(i % 2, 1000 + i, None, None, samples.encode(samples.touchpoint(i)))
                                     for i in range(12)])
    batch.note_offset(1, 1050)  # a dead-lettered message widens the partition's range
    prepared = prepare(batch)
    assert sorted(prepared.tables) == sorted(
        f"touchpoints/event_date=2026-03-0{d}/touchpoints-p00{p}-{first:012d}-{last:012d}.parquet"
        for d in (1, 2, 3) for p, (first, last) in ((0, (1000, 1010)), (1, (1001, 1050))))
    assert prepared.event_dates == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert sum(t.num_rows for t in prepared.tables.values()) == 12
    assert sorted(prepared.by_partition) == [0, 1]
    zone = LandingZone(str(tmp_path / "landing"))
    written = zone.write_prepared(prepared)
    assert len(written) == 6 and all(w.startswith(str(tmp_path)) for w in written)
    assert not list((tmp_path / "landing").rglob("*.tmp"))  # temp names never stay behind


def test_a_replayed_batch_rewrites_the_same_files_instead_of_adding_rows(tmp_path):
    zone = LandingZone(str(tmp_path / "landing"))
    records = [samples.touchpoint(i, days=1) for i in range(50)]
    first = zone.write_prepared(prepare(_touchpoint_batch(records)), token="writer-1")
    assert zone.file_token(first[0]) == "writer-1"
    again = zone.write_prepared(prepare(_touchpoint_batch(records)), token="writer-2")
    assert first == again and len(first) == 1
    assert zone.file_token(first[0]) == "writer-2"  # the consumer deletes only files still carrying its token
    assert zone.files("touchpoints") == first
    table = zone.read("touchpoints")
    assert table.num_rows == 50 and len(set(table.column("event_id").to_pylist())) == 50


def test_customers_and_tombstones(tmp_path):
    batch, rejects = _batch("customer", [
        (0, 5, 1_772_000_000_000, b"C00001", samples.encode(samples.customer(1, extra_flag=True))),
        (0, 6, 1_772_000_000_000, b"C00002", None),  # tombstone: event date from the Kafka timestamp
        (0, 7, None, b"\xff", None),                 # a tombstone whose key is not UTF-8 names no customer
    ])
    assert [(i, code) for i, code, _ in rejects] == [(2, "bad_key")]
    zone = LandingZone(str(tmp_path / "landing"))
    zone.write_prepared(prepare(batch))
    rows = {r["customer_id"]: r for r in zone.read("customers").to_pylist()}
    assert rows["C00001"]["is_deleted"] is False and rows["C00001"]["account_manager_email"] == "am1@example.com"
    assert json.loads(rows["C00001"]["extra_json"]) == {"extra_flag": True}
    tomb = rows["C00002"]
    assert tomb["is_deleted"] is True and tomb["name"] is None and tomb["event_date"] == date(2026, 2, 25)
    assert [p.rsplit("/", 1)[1] for p in zone.files("customers")] == [
        "customers-p000-000000000005-000000000007.parquet"] * 2  # two dates, one offset range


def test_unstorable_values_are_rejected_without_failing_the_batch():
    messages = [(2, 100 + i, None, None, samples.encode(samples.touchpoint(i, days=1))) for i in range(5)]
    messages.insert(3, (2, 99, None, b"C00007", b'{"schema_version":1,"event_id":"E-sur","event_type":"email",'
                        b'"direction":"inbound","occurred_at":"2026-03-01T09:00:00Z","customer_id":"C00007",'
                        b'"department":"sales","payload":{},"note":"\\ud800"}'))
    messages.append((2, 200, None, b"C00001", b"{not json"))
    batch, rejects = _batch("touchpoint", messages)
    assert batch.records == 5
    assert [(i, code) for i, code, _ in rejects] == [(3, "unlandable"), (6, "not_json")]
    assert "surrogate" in rejects[0][2]


def test_decoder_never_raises_on_out_of_range_timestamps():
    decoded = safe_decode("touchpoint", None, samples.encode(samples.touchpoint(0, occurred_at="0001-01-01T00:00:00+01:00")), 10_000)
    assert not decoded.ok and decoded.error_code == "bad_timestamp"


def test_any_fsspec_url_works(tmp_path):
    zone = LandingZone("memory://landing-test")
    written = zone.write_prepared(prepare(_touchpoint_batch([samples.touchpoint(0)])))
    assert written == ["/landing-test/touchpoints/event_date=2026-03-01/"
                       "touchpoints-p002-000000000100-000000000100.parquet"]
    with zone.fs.open(written[0], "rb") as fh:
        assert pq.read_table(fh).column("event_id").to_pylist() == ["E000000000"]
    zone.write_pending("touchpoints", 2, {"files": written})
    assert zone.read_pending("touchpoints", 2) == {"files": written}
    zone.clear_pending("touchpoints", 2)
    assert zone.read_pending("touchpoints", 2) is None
    zone.fs.rm("/landing-test", recursive=True)


def test_offline_landing_of_jsonl_rejects_bad_lines_visibly(data_dir, tmp_path):
    settings = load_settings(data_dir=data_dir)
    touchpoints = tmp_path / "touchpoints.jsonl"
    customers = tmp_path / "customers.jsonl"
    good = [samples.encode(samples.touchpoint(i)) for i in range(30)]
    bad = [b"{not json", samples.encode(samples.touchpoint(99, event_type="fax")), b"\xff\xfe"]
    touchpoints.write_bytes(b"\n".join(good[:10] + bad + good[10:]) + b"\n\n")
    customers.write_bytes(samples.encode(samples.customer(1)) + b"\n"
                          + b'{"customer_id": "C00001", "tombstone": true}\n')
    results = land_jsonl_offline(settings, touchpoints, customers)
    tp = results["touchpoints"]
    assert (tp.lines, tp.landed, tp.rejected) == (33, 30, 3)
    rejects = [json.loads(line) for line in open(tp.rejects_file)]
    assert [(r["line"], r["error_code"]) for r in rejects] == [
        (10, "not_json"), (11, "schema_violation"), (12, "not_utf8")]
    assert rejects[2]["raw_base64"] == "//4="  # exact bytes kept for repair and replay
    zone = LandingZone.from_settings(settings)
    offsets = sorted(zone.read("touchpoints").column("kafka_offset").to_pylist())
    assert offsets == list(range(10)) + list(range(13, 33))  # offsets = 0-based line numbers
    customers_rows = zone.read("customers").to_pylist()
    assert [(r["customer_id"], r["is_deleted"]) for r in customers_rows] == [("C00001", False), ("C00001", True)]
    again = land_jsonl_offline(settings, touchpoints, None)["touchpoints"]
    assert again.files == tp.files and zone.read("touchpoints").num_rows == 30


def test_two_files_landed_offline_never_overwrite_each_other_or_a_consumers_batch(data_dir, tmp_path):
    """User trial: a second file landed offline, its lines on the same day and line numbers as the
    first's, reported "31 landed" and replaced the first file's Parquet files (same name): 30
    events gone without a word, and the first file's rejects list with them."""
    settings = load_settings(data_dir=data_dir)
    zone = LandingZone.from_settings(settings)
    # a consumer's batch of partition 0, offsets 0-9, on the same day
    batch = BatchBuilder("touchpoints", "touchpoints")
    messages = [(0, i, None, None, samples.encode(samples.touchpoint(100 + i, days=1))) for i in range(10)]
    for partition, offset, *_ in messages:
        batch.note_offset(partition, offset)
    batch.add_table(decode_chunk("touchpoint", "touchpoints", messages, 1 << 20, datetime.now(timezone.utc)).table)
    zone.write_prepared(prepare(batch))
    first, second = tmp_path / "a" / "touchpoints.jsonl", tmp_path / "b" / "touchpoints.jsonl"
    for n, path in enumerate((first, second)):
        path.parent.mkdir()
        lines = [samples.encode(samples.touchpoint(200 * (n + 1) + i, days=1)) for i in range(10)]
        path.write_bytes(b"\n".join([*lines, b"{broken"]) + b"\n")
    a = land_jsonl_offline(settings, first, None)["touchpoints"]
    b = land_jsonl_offline(settings, second, None)["touchpoints"]
    assert (a.landed, b.landed, a.rejected, b.rejected) == (10, 10, 1, 1)
    assert not set(a.files) & set(b.files)
    rows = zone.read("touchpoints").to_pylist()
    assert len(rows) == 30 and len({r["event_id"] for r in rows}) == 30, "every landing kept"
    keys = {(r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in rows}
    assert len(keys) == 30, "a row is still one (topic, partition, offset)"
    assert {r["kafka_topic"] for r in rows} == {"touchpoints", f"{offline_source(first)}:touchpoints.jsonl",
                                                f"{offline_source(second)}:touchpoints.jsonl"}
    assert a.rejects_file != b.rejects_file
    assert [json.loads(line)["file"] for line in open(a.rejects_file)] == [str(first)]
    assert [json.loads(line)["file"] for line in open(b.rejects_file)] == [str(second)]


def test_payload_values_land_only_in_columns_of_their_type():
    """Typed payload columns take a value only when it fits; payload_json keeps everything."""
    from loyalty_core.landing_zone import PAYLOAD_FIELDS
    from streaming.landing import _payload_columns

    names = [name for name, _ in PAYLOAD_FIELDS]
    columns = dict(zip(names, _payload_columns({
        "answered": 1,                 # an int is not a bool
        "duration_s": 95,              # int into a double column
        "days_overdue": 38.0,          # a whole float into an int column
        "nps_score": 2**40,            # beyond int32
        "amount": True,                # a bool is not an amount
        "currency": "DKK",
        "stage": 3,                    # not a string
        "unknown_field": "kept in payload_json only",
    })))
    assert columns["answered"] is None
    assert columns["duration_s"] == 95.0 and isinstance(columns["duration_s"], float)
    assert columns["days_overdue"] == 38 and isinstance(columns["days_overdue"], int)
    assert columns["nps_score"] is None and columns["amount"] is None and columns["stage"] is None
    assert columns["currency"] == "DKK"
    assert sum(v is not None for v in columns.values()) == 3


def test_an_exported_dead_letter_is_text_where_json_would_not_send_it_back_the_same():
    """`dead-letters export` gives a message as editable JSON only when writing it back sends the same
    thing; else as text, exactly as it came (NaN and 1e400 came back as the non-JSON NaN/Infinity
    that the replay then refused, 1e-400 as 0.0, and of a key given twice only the last)."""
    # the export's own line format: a unit of the dead-letter module, no broker needed
    from streaming.dead_letters import DeadLetterRecord, _exported

    def exported(value: bytes) -> dict:
        return _exported(DeadLetterRecord(offset=0, timestamp_ms=0, key=b"C1", value=value, source_topic="t",
                                          source_partition=0, source_offset=0, error_code="x", error_detail="",
                                          failed_at=""))
    for raw in (b'{"customer_id": "C1", "duration_s": 1e400}', b'{"customer_id": "C1", "v": NaN}',
                b'{"customer_id": "C1", "tiny": 1e-400}', b'{"customer_id": "C1", "customer_id": "C9"}'):
        line = exported(raw)
        assert "value" not in line and line["value_text"] == raw.decode(), line
        assert json.loads(json.dumps(line, allow_nan=False))  # the file itself is standard JSON
    assert exported(b'{"customer_id": "C1", "amount": 12.5, "n": [1, 2]}')["value"] == {
        "customer_id": "C1", "amount": 12.5, "n": [1, 2]}


def test_a_dead_letter_of_a_keyless_empty_message_is_replayed_without_a_key():
    """Kept under an empty key (a dead-letter topic may be compacted), it was replayed with that key
    and came back as bad_key instead of its null_value; a header says the key was none."""
    # the dead-letter module's own record and headers: a unit, no broker needed
    from types import SimpleNamespace

    from streaming.consumer_batch import Record
    from streaming.consumer_flush import dead_letter_headers
    from streaming.dead_letters import _parse

    def stored(key, value):
        headers = dead_letter_headers(Record("customers", 0, 7, key, value, None), "null_value", "why", "2026-12-07")
        message = SimpleNamespace(offset=1, timestamp=0, partition=0, headers=headers,
                                  key=b"" if key is None and value is None else key, value=value)
        return _parse(message)

    assert stored(None, None).key is None and stored(None, None).error_code == "null_value"
    assert stored(b"", None).key == b""  # an empty key as sent stays one (bad_key on replay, as before)
    assert stored(b"C1", b"{}").key == b"C1"


def test_a_replay_keeps_its_file_name_and_other_messages_at_the_same_offsets_get_their_own(tmp_path):
    """Review: a replay is the same messages even when the landed file has fewer rows (an erasure
    rewrote it); messages of a topic created anew are other ones even without Kafka timestamps."""
    zone = LandingZone(str(tmp_path / "landing"))

    def batch(start: int, timestamp_ms: int | None) -> object:
        builder = BatchBuilder("touchpoints", "touchpoints")
        messages = [(0, i, timestamp_ms, None, samples.encode(samples.touchpoint(start + i, customers=1, days=1)))
                    for i in range(5)]
        for partition, offset, *_ in messages:
            builder.note_offset(partition, offset)
        builder.add_table(decode_chunk("touchpoint", "touchpoints", messages, 1 << 20, datetime.now(timezone.utc)).table)
        return prepare(builder)

    first = batch(0, 1_772_000_000_000)
    (path,) = zone.write_prepared(first)
    assert zone.beside_other_messages(batch(0, 1_772_000_000_000))[1] == []  # a replay: no new name
    kept = pq.read_table(path).slice(1)  # an erasure took one row out of the landed file
    pq.write_table(kept, path)
    assert zone.beside_other_messages(batch(0, 1_772_000_000_000))[1] == []
    for other in (batch(100, 1_772_000_000_000), batch(100, None)):  # other events; without timestamps too
        renamed = zone.beside_other_messages(other)[1]
        assert len(renamed) == 1 and re.search(r"-000000000004-r[0-9a-f]{10}\.parquet$", renamed[0]), renamed
    zone.write_prepared(batch(200, None))  # a file of a broker without timestamps ...
    assert zone.beside_other_messages(batch(300, None))[1]  # ... and another generation of it
