"""The event contract v1 decoding rules (``loyalty_core.contract.decode``), one rule at a time.

docs/event-contract.md is checked here too: every JSON example in it must decode as documented.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from loyalty_core.contract import ERROR_CODES, MAX_NOTE_CHARS, SCHEMA_PATH, decode, schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "event-contract.md"

CALL = {
    "schema_version": 1, "event_id": "7d0c2a8e-1f7b-4a51-9a3e-000000000001", "event_type": "call",
    "occurred_at": "2026-03-02T09:15:00+01:00", "customer_id": "C000042", "department": "reception",
    "direction": "inbound", "employee_id": "RC02", "contact_role": "user", "note": "Asked for sales",
    "source": "pbx", "payload": {"answered": True, "duration_s": 95, "transferred": True, "resolved": False},
}
PAYLOADS = {
    "call": {"answered": False},
    "email": {},
    "meeting": {"duration_s": 3600},
    "service_visit": {"resolved": True, "first_time_fix": False},
    "dunning_contact": {"stage": "collection_call", "amount_overdue": 1250.5, "days_overdue": 38,
                        "invoice_id": "INV-2026-0042"},
    "complaint": {"severity": "high", "resolved": False},
    "survey_response": {"nps_score": 4, "comment": "Hard to reach sales"},
    "order": {"amount": 18400.0, "currency": "DKK", "product_line": "pumps"},
    "opportunity": {"opportunity_id": "OPP-1", "account_manager_id": "AM03", "status": "open",
                    "pipeline_stage": "proposal", "stated_probability": 0.6, "amount": 185000.0,
                    "currency": "DKK", "expected_close_date": "2026-06-30"},
}
CUSTOMER = {
    "schema_version": 1, "customer_id": "C000042", "name": "Møller Hydraulics A/S", "segment": "key",
    "country": "DK", "account_manager": {"id": "AM03", "name": "Sofie Lindberg",
                                         "email": "sofie.lindberg@example.com"},
    "annual_potential": 2_400_000, "currency": "DKK", "updated_at": "2026-01-15T08:00:00Z",
}


def touchpoint(kind: str = "call", /, **changes: Any) -> dict:
    """A valid touchpoint of the given event type, with ``changes`` applied (DROP removes a field)."""
    record = copy.deepcopy(CALL)
    record.update(event_type=kind, payload=copy.deepcopy(PAYLOADS[kind]))
    for name, value in changes.items():
        if value is DROP:
            record.pop(name, None)
        else:
            record[name] = value
    return record


DROP = object()


def decode_touchpoint(record: Any, key: bytes | None = b"C000042"):
    return decode("touchpoint", key, json.dumps(record, ensure_ascii=False).encode())


@pytest.mark.parametrize("event_type", sorted(PAYLOADS))
def test_each_event_type_with_its_payload_is_valid(event_type: str) -> None:
    result = decode_touchpoint(touchpoint(event_type))
    assert result.ok and result.error is None
    assert result.record["event_type"] == event_type


def test_minimal_event_needs_only_the_required_fields() -> None:
    record = {"schema_version": 1, "event_id": "e-1", "event_type": "order",
              "occurred_at": "2026-03-02T09:15:00Z", "customer_id": "C000042", "department": "sales",
              "payload": PAYLOADS["order"]}
    assert decode_touchpoint(record).ok


def test_unknown_fields_are_tolerated_and_kept() -> None:
    record = touchpoint("call", pbx_queue="switchboard", crm={"version": 7})
    record["payload"]["recording_url"] = "https://pbx.example.com/r/1"
    result = decode_touchpoint(record)
    assert result.ok
    assert result.record["pbx_queue"] == "switchboard" and result.record["crm"] == {"version": 7}
    assert result.record["payload"]["recording_url"] == "https://pbx.example.com/r/1"


@pytest.mark.parametrize("event_type", ["call", "email", "meeting"])
def test_direction_is_required_for_conversations(event_type: str) -> None:
    result = decode_touchpoint(touchpoint(event_type, direction=DROP))
    assert result.error_code == "schema_violation" and "direction" in result.error_detail


@pytest.mark.parametrize("event_type", ["service_visit", "dunning_contact", "complaint", "survey_response",
                                        "order", "opportunity"])
def test_direction_is_optional_for_other_types(event_type: str) -> None:
    assert decode_touchpoint(touchpoint(event_type, direction=DROP)).ok


@pytest.mark.parametrize("field", ["schema_version", "event_id", "event_type", "occurred_at",
                                   "customer_id", "department", "payload"])
def test_each_required_field_is_required(field: str) -> None:
    result = decode_touchpoint(touchpoint("email", **{field: DROP}))
    assert not result.ok and result.error_code == "schema_violation"
    assert field in result.error_detail


@pytest.mark.parametrize("field, value", [
    ("schema_version", 2), ("schema_version", "1"), ("event_id", ""), ("event_id", 42),
    ("event_type", "fax"), ("department", "logistics"), ("direction", "sideways"),
    ("contact_role", "ceo"), ("customer_id", ""), ("payload", []), ("note", "x" * (MAX_NOTE_CHARS + 1)),
    ("occurred_at", "2026-03-02T09:15:00"), ("occurred_at", "02/03/2026 09:15"), ("occurred_at", 1772439300),
    ("employee_id", 7), ("source", ["crm"]),
])
def test_bad_field_values_are_schema_violations(field: str, value: Any) -> None:
    result = decode_touchpoint(touchpoint("email", **{field: value}))
    assert (result.ok, result.error_code) == (False, "schema_violation"), result


def test_optional_fields_may_be_null_and_note_may_use_the_full_length() -> None:
    record = touchpoint("email", employee_id=None, contact_role=None, source=None, note="n" * MAX_NOTE_CHARS)
    assert decode_touchpoint(record).ok


@pytest.mark.parametrize("event_type, payload", [
    ("call", {}),                                            # answered is required
    ("call", {"answered": "yes"}),
    ("call", {"answered": True, "duration_s": -1}),
    ("call", {"answered": True, "transferred": 1}),
    ("meeting", {"duration_s": "1h"}),
    ("service_visit", {"first_time_fix": True}),             # resolved is required
    ("service_visit", {"resolved": "true"}),
    ("dunning_contact", {"amount_overdue": 10}),             # stage is required
    ("dunning_contact", {"stage": "reminder"}),              # amount_overdue is required
    ("dunning_contact", {"stage": "lawyer", "amount_overdue": 10}),
    ("dunning_contact", {"stage": "reminder", "amount_overdue": -0.01}),
    ("dunning_contact", {"stage": "reminder", "amount_overdue": 10, "days_overdue": 2.5}),
    ("complaint", {"resolved": False}),                      # severity is required
    ("complaint", {"severity": "critical"}),
    ("survey_response", {}),                                 # nps_score is required
    ("survey_response", {"nps_score": 11}),
    ("survey_response", {"nps_score": -1}),
    ("survey_response", {"nps_score": 7.5}),
    ("order", {"currency": "DKK", "product_line": "pumps"}),  # amount is required
    ("order", {"amount": 10, "product_line": "pumps"}),       # currency is required
    ("order", {"amount": 10, "currency": "DKK"}),             # product_line is required
    ("order", {"amount": -10, "currency": "DKK", "product_line": "pumps"}),
    ("order", {"amount": 10, "currency": "dkk", "product_line": "pumps"}),
    ("order", {"amount": 10, "currency": "DKK", "product_line": ""}),
])
def test_payload_rules_per_type(event_type: str, payload: dict) -> None:
    record = touchpoint(event_type)
    record["payload"] = payload
    result = decode_touchpoint(record)
    assert (result.ok, result.error_code) == (False, "schema_violation"), (payload, result)


@pytest.mark.parametrize("stamp", ["2026-03-02T09:15:00Z", "2026-03-02T09:15:00.123456+02:00",
                                   "2026-03-02t09:15:00z", "2026-03-02 09:15:00-05:00"])
def test_rfc3339_timestamps_with_offset_are_accepted(stamp: str) -> None:
    assert decode_touchpoint(touchpoint("email", occurred_at=stamp)).ok


@pytest.mark.parametrize("stamp", ["2026-02-30T09:15:00+01:00", "2026-03-02T25:15:00Z",
                                   "2026-03-02T09:15:00+25:00"])
def test_impossible_instants_are_bad_timestamps(stamp: str) -> None:
    result = decode_touchpoint(touchpoint("email", occurred_at=stamp))
    assert result.error_code == "bad_timestamp" and "occurred_at" in result.error_detail


def test_timestamp_and_number_problems_are_said_in_words_not_in_the_parsers() -> None:
    """What a feed's owner reads in the dead letter: what to send instead, not a regular expression,
    a timedelta repr or Python's advice on its own int() limit."""
    naive = decode_touchpoint(touchpoint("email", occurred_at="2026-03-02T09:15:04"))
    assert naive.error_code == "schema_violation" and naive.error_detail.startswith(
        "occurred_at: '2026-03-02T09:15:04' is not a timestamp with its UTC offset, e.g. 2026-03-02T09:15:04Z")
    far = decode_touchpoint(touchpoint("email", occurred_at="2026-03-02T09:15:04+24:00"))
    assert far.error_detail == "occurred_at: '2026-03-02T09:15:04+24:00' has a UTC offset beyond ±23:59"
    late = decode_touchpoint(touchpoint("email", occurred_at="2099-01-01T00:00:00Z"))
    assert re.fullmatch(r"occurred_at: 2099-01-01T00:00:00Z lies outside the accepted window: from 2000-01-01 to "
                        r"24 hours after the receiver's clock \(\d{4}-\d\d-\d\dT\d\d:\d\dZ\)", late.error_detail)
    digits = json.dumps(touchpoint("email")).replace('"schema_version": 1', '"schema_version": 1, "big": ' + "9" * 5000)
    big = decode("touchpoint", b"C000042", digits.encode())
    assert (big.error_code, big.error_detail) == (
        "schema_violation", "a whole number of more than 4,300 digits: beyond the range of any field")
    twice = json.dumps(touchpoint("email")).replace('"schema_version": 1', '"schema_version": 1, "customer_id": "C9"')
    duplicated = decode("touchpoint", b"C000042", twice.encode())  # the last value used to win, silently
    assert (duplicated.error_code, duplicated.error_detail) == (
        "schema_violation", "key 'customer_id' is given twice in one object: send it once")
    tiny = decode("touchpoint", b"C000042", json.dumps(touchpoint("email")).replace(
        '"schema_version": 1', '"schema_version": 1, "tiny": 1e-400, "zero": 0.0e5').encode())
    assert (tiny.error_code, tiny.error_detail) == (
        "schema_violation", "1e-400: the number is too small for a double (at least about 5e-324 when not 0): "
                            "it would land as 0")
    assert decode("touchpoint", b"C000042", json.dumps(touchpoint("email")).replace(
        '"schema_version": 1', '"schema_version": 1, "zero": 0.0e5, "small": 5e-324').encode()).ok
    deep = decode("touchpoint", b"C000042", b"[" * 5000 + b"]" * 5000)
    assert deep.error_code == "not_json" and deep.error_detail.startswith("nested deeper than the decoder follows")


def test_raw_byte_errors_each_have_their_code() -> None:
    good = json.dumps(touchpoint("email")).encode()
    assert decode("touchpoint", b"C000042", good).ok
    cases = {
        "oversized": decode("touchpoint", b"C000042", good, max_bytes=len(good) - 1),
        "not_utf8": decode("touchpoint", b"C000042", b'{"event_id": "\xff\xfe"}'),
        "not_json": decode("touchpoint", b"C000042", good[:-1]),
        "not_object": decode("touchpoint", b"C000042", b'[{"event_id": "e-1"}]'),
        "null_value": decode("touchpoint", b"C000042", None),
        "key_mismatch": decode("touchpoint", b"C000043", good),
        "bad_key": decode("customer", b"C0\r\n42", None),
    }
    for code, result in cases.items():
        assert (result.ok, result.record, result.error_code) == (False, None, code), result
        assert result.error == {"code": code, "detail": result.error_detail} and result.error_detail
    exactly_at_limit = decode("touchpoint", b"C000042", good, max_bytes=len(good))
    assert exactly_at_limit.ok
    assert set(cases) | {"schema_violation", "bad_timestamp"} == set(ERROR_CODES)


def test_a_missing_key_is_not_checked_against_customer_id() -> None:
    assert decode_touchpoint(touchpoint("email"), key=None).ok


def test_customer_record_and_tombstone() -> None:
    value = json.dumps(CUSTOMER, ensure_ascii=False).encode()
    result = decode("customer", b"C000042", value)
    assert result.ok and result.record["name"] == "Møller Hydraulics A/S"
    tombstone = decode("customer", b"C000042", None)
    assert (tombstone.ok, tombstone.record) == (True, None)
    gdpr = decode("customer", b"C000042", b'{"customer_id": "C000042", "tombstone": true, "reason": "gdpr"}')
    assert (gdpr.error_code, gdpr.error_detail) == ("schema_violation", 'a tombstone line is exactly {"customer_id": ..., '
                                                    '"tombstone": true}; this one also has reason: it was sent as a '
                                                    "customer record, and nothing was erased")
    keyless = decode("customer", None, None)
    assert keyless.error_code == "null_value" and "a tombstone's key is the id of the customer" in keyless.error_detail
    assert decode("customer", b"C000099", value).error_code == "key_mismatch"
    kept = decode("customer", b"C000042", json.dumps({**CUSTOMER, "vat_id": "DK12345678"}).encode())
    assert kept.ok and kept.record["vat_id"] == "DK12345678"


@pytest.mark.parametrize("change", [
    {"segment": "platinum"}, {"country": "Denmark"}, {"currency": "kr"}, {"annual_potential": -1},
    {"account_manager": {"id": "AM03", "name": "Sofie"}},
    {"account_manager": {"id": "AM03", "name": "Sofie", "email": "not-an-email"}},
    {"name": ""}, {"updated_at": "yesterday"}, {"schema_version": 2},
])
def test_customer_violations(change: dict) -> None:
    result = decode("customer", b"C000042", json.dumps({**CUSTOMER, **change}).encode())
    assert (result.ok, result.error_code) == (False, "schema_violation"), (change, result)


@pytest.mark.parametrize("field", ["customer_id", "name", "segment", "country", "account_manager",
                                   "annual_potential", "currency", "updated_at"])
def test_customer_required_fields(field: str) -> None:
    record = {k: v for k, v in CUSTOMER.items() if k != field}
    assert decode("customer", None, json.dumps(record).encode()).error_code == "schema_violation"


def test_customer_impossible_updated_at_is_a_bad_timestamp() -> None:
    record = {**CUSTOMER, "updated_at": "2026-04-31T08:00:00Z"}
    assert decode("customer", b"C000042", json.dumps(record).encode()).error_code == "bad_timestamp"


def test_schema_file_is_the_one_documented() -> None:
    assert SCHEMA_PATH.name == "events.v1.schema.json"
    assert set(schema()["$defs"]) >= {"touchpoint", "customer"}
    assert "docs/event-contract.md" in schema()["description"]


def _doc_examples() -> list[tuple[str, str, dict]]:
    """(heading, kind, record) for every ```json block in the doc, in order."""
    text = DOC.read_text(encoding="utf-8")
    examples = []
    heading = ""
    for block in re.split(r"(^#+ .*$)", text, flags=re.M):
        if block.startswith("#"):
            heading = block.strip("# \n")
            continue
        for body in re.findall(r"```json\n(.*?)```", block, flags=re.S):
            record = json.loads(body)
            kind = ("customer" if "account_manager" in record or "tombstone" in record
                    else "case_event" if "case_id" in record else "touchpoint")
            examples.append((heading, kind, record))
    return examples


def test_every_example_in_the_integrator_doc_decodes() -> None:
    examples = _doc_examples()
    touchpoint_types = {r["event_type"] for _, kind, r in examples if kind == "touchpoint"}
    assert touchpoint_types == set(PAYLOADS), "the doc shows an example of every event type"
    from loyalty_core.contract import CASE_EVENT_TYPES

    case_types = {r["event_type"] for _, kind, r in examples if kind == "case_event"}
    assert case_types == set(CASE_EVENT_TYPES), "the doc shows an example of every case event type"
    for heading, kind, record in examples:
        if record.get("tombstone") is True:  # generator notation for a null value
            result = decode("customer", record["customer_id"].encode(), None)
        else:
            result = decode(kind, record["customer_id"].encode(), json.dumps(record).encode())
        assert result.ok, (heading, result.error)


@pytest.mark.parametrize("raw, code", [
    (json.dumps(touchpoint("order")).replace("18400.0", "NaN").encode(), "not_json"),
    (json.dumps(touchpoint("order")).replace("18400.0", "Infinity").encode(), "not_json"),
    (b"[" * 200_000 + b"]" * 200_000, "not_json"),
    (json.dumps(touchpoint("call", occurred_at="0001-01-01T00:00:00+01:00")).encode(), "bad_timestamp"),
])
def test_hostile_values_are_errors_not_exceptions(raw: bytes, code: str) -> None:
    result = decode("touchpoint", b"C000042", raw)
    assert not result.ok and result.error_code == code


def _equivalence_corpus() -> list[Any]:
    """Valid and invalid touchpoints: every payload rule broken and kept, every type, odd shapes."""
    from streaming import samples

    corpus: list[Any] = [touchpoint(kind) for kind in PAYLOADS]
    corpus += [samples.touchpoint(i) for i in range(64)]
    for _, _, _, raw in samples.bad_touchpoints(DEFAULT_MAX):
        try:
            corpus.append(json.loads(raw))
        except (TypeError, ValueError, RecursionError):
            pass
    for kind, payload in PAYLOADS.items():
        for name in payload:
            corpus.append(touchpoint(kind, payload={k: v for k, v in payload.items() if k != name}))
            corpus.append(touchpoint(kind, payload={**payload, name: -1}))
            corpus.append(touchpoint(kind, payload={**payload, name: "text"}))
        corpus.append(touchpoint(kind, direction=DROP))
        corpus.append(touchpoint(kind, payload=[]))
        corpus.append(touchpoint(kind, event_type="visit"))
    return corpus


DEFAULT_MAX = 1_048_576


def test_fast_per_type_validation_agrees_with_the_whole_schema() -> None:
    """decode() picks the payload rule by event_type instead of running every if/then: same verdicts."""
    import fastjsonschema

    from loyalty_core.contract import _validate_touchpoint, _validator

    def verdict(check, record) -> bool:
        try:
            check(record)
            return True
        except (fastjsonschema.JsonSchemaValueException, KeyError, TypeError):
            return False

    corpus = _equivalence_corpus()
    assert len(corpus) > 100
    verdicts = [(verdict(_validator("touchpoint"), r), verdict(_validate_touchpoint, r)) for r in corpus]
    assert {whole for whole, _ in verdicts} == {True, False}
    assert all(whole == fast for whole, fast in verdicts), [r for r, v in zip(corpus, verdicts) if v[0] != v[1]]


def test_enumerations_are_the_schemas_in_python_and_in_dbt(tmp_path: Path) -> None:
    """The contract's enums are read from the schema in Python (``enumeration``) and passed to dbt as
    var ``contract``, which dbt's pivot macros read: all agree, and no macro restates a list."""
    from loyalty_core import contract
    from loyalty_core.settings import load_settings
    from loyalty_monitor import warehouse

    defs = schema()["$defs"]
    touchpoint_props = defs["touchpoint"]["properties"]
    expected = {
        "departments": touchpoint_props["department"]["enum"],
        "contact_roles": [r for r in touchpoint_props["contact_role"]["enum"] if r is not None],
        "dunning_stages": defs["dunningPayload"]["properties"]["stage"]["enum"],
        "segments": defs["customer"]["properties"]["segment"]["enum"],
    }
    assert list(contract.DEPARTMENTS) == expected["departments"]
    assert list(contract.CONTACT_ROLES) == expected["contact_roles"]
    assert list(contract.DUNNING_STAGES) == expected["dunning_stages"]
    assert list(contract.SEGMENTS) == expected["segments"]
    assert list(contract.EVENT_TYPES) == touchpoint_props["event_type"]["enum"]
    settings = load_settings(data_dir=tmp_path, landing_url="", warehouse_path="")
    passed = warehouse.dbt_vars(settings, "2026-01-01")["contract"]
    macros = (Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "contract.sql").read_text()
    for name, values in expected.items():
        assert passed[name] == values, f"dbt var contract.{name} differs from the schema"
        found = re.search(r"macro contract_" + name + r"\(\).*?return\((.*?)\) \}\}", macros, re.S)
        assert found, f"dbt macro contract_{name}() missing"
        assert found.group(1) == f"contract_enumeration('{name}')", f"dbt contract_{name}() restates a list"


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "9999-12-31T23:59:59Z",
                                   "2100-01-01T00:00:00+01:00"])
def test_instants_outside_the_accepted_window_are_bad_timestamps(stamp: str) -> None:
    """Not before 2000 and not after the receiver's clock plus a day of skew: a year-0001 event
    would otherwise make the warehouse build a daily series from year 1 for its customer."""
    result = decode_touchpoint(touchpoint("email", occurred_at=stamp))
    assert result.error_code == "bad_timestamp" and "outside the accepted window" in result.error_detail


def test_the_window_ends_a_day_after_the_receivers_clock() -> None:
    import datetime as dt

    from loyalty_core.contract import validate

    now = dt.datetime(2026, 3, 2, 12, tzinfo=dt.timezone.utc)
    assert validate("touchpoint", touchpoint("email", occurred_at="2026-03-03T11:00:00Z"), now=now) is None
    assert validate("touchpoint", touchpoint("email", occurred_at="2026-03-03T13:00:00Z"), now=now)[0] == "bad_timestamp"
    assert validate("touchpoint", touchpoint("email", occurred_at="2000-01-01T00:00:00Z"), now=now) is None


@pytest.mark.parametrize("raw, where", [
    (b'"amount": 1e23', "amount"), (b'"amount": 1e999', "amount"), (b'"amount": 1000000000000.5', "amount"),
])
def test_amounts_are_finite_and_bounded(raw: bytes, where: str) -> None:
    good = json.dumps(touchpoint("order")).encode()
    bad = good.replace(b'"amount": 18400.0', raw)
    assert bad != good
    result = decode("touchpoint", b"C000042", bad)
    assert result.error_code == "schema_violation" and where in result.error_detail


def test_the_largest_valid_values_are_accepted() -> None:
    record = touchpoint("order")
    record["payload"]["amount"] = 1_000_000_000_000
    assert decode_touchpoint(record).ok
    customer = dict(CUSTOMER, annual_potential=1e12)
    assert decode("customer", b"C000042", json.dumps(customer).encode()).ok
    customer["annual_potential"] = 1e999
    assert decode("customer", b"C000042", json.dumps(customer).encode().replace(b"Infinity", b"1e999")
                  ).error_code == "schema_violation"


@pytest.mark.parametrize("field, value", [("customer_id", "C00\n42"), ("event_id", "e-1\r"), ("event_id", "e\u00001")])
def test_identifiers_carry_no_control_characters(field: str, value: str) -> None:
    record = touchpoint("email", **{field: value})
    result = decode("touchpoint", record["customer_id"].encode(), json.dumps(record).encode())
    assert result.error_code == "schema_violation" and field in result.error_detail


def test_an_installation_sets_its_own_window() -> None:
    """The window is configuration (``earliest_event_date``, ``max_clock_skew_hours``): a company
    whose history starts in 2015 rejects a 2010 event, and a zero skew rejects the next hour."""
    import datetime as dt

    from loyalty_core.contract import validate
    from loyalty_core.settings import Settings
    from streaming.landing import contract_window

    window = contract_window(Settings(earliest_event_date="2015-01-01", max_clock_skew_hours=0))
    now = dt.datetime(2026, 3, 2, 12, tzinfo=dt.timezone.utc)
    assert validate("touchpoint", touchpoint("email", occurred_at="2010-06-01T00:00:00Z"), now=now,
                    window=window)[0] == "bad_timestamp"
    assert validate("touchpoint", touchpoint("email", occurred_at="2015-01-01T00:00:00Z"), now=now,
                    window=window) is None
    assert validate("touchpoint", touchpoint("email", occurred_at="2026-03-02T13:00:00Z"), now=now,
                    window=window)[0] == "bad_timestamp"
    with pytest.raises(ValueError, match="earliest_event_date"):
        contract_window(Settings(earliest_event_date="yesterday"))


# --- contract 1.1: opportunities -------------------------------------------------------------------

OPEN = PAYLOADS["opportunity"]
WON = {"opportunity_id": "OPP-1", "account_manager_id": "AM03", "status": "won", "amount": 185000.0,
       "currency": "DKK", "final_amount": 166500.0, "closed_on": "2026-03-02"}
LOST = {"opportunity_id": "OPP-1", "account_manager_id": "AM03", "status": "lost", "amount": 185000.0,
        "currency": "DKK", "closed_on": "2026-03-01"}


def test_the_contract_revision_is_1_2_and_messages_stay_version_1() -> None:
    from loyalty_core.contract import CONTRACT_VERSION, OPPORTUNITY_STATUSES

    assert schema()["x-contract-version"] == CONTRACT_VERSION == "1.2"
    assert list(OPPORTUNITY_STATUSES) == schema()["$defs"]["opportunityPayload"]["properties"]["status"]["enum"]
    assert "contract **1.2**" in DOC.read_text(encoding="utf-8")
    assert decode_touchpoint(touchpoint("opportunity", schema_version=1)).ok
    assert decode_touchpoint(touchpoint("opportunity", schema_version=2)).error_code == "schema_violation"


@pytest.mark.parametrize("payload", [OPEN, WON, LOST, {**OPEN, "stated_probability": 0},
                                     {**OPEN, "stated_probability": 1}, {**WON, "pipeline_stage": "closed"},
                                     {**OPEN, "crm_owner_team": "nordics"}])
def test_opportunity_states_are_valid(payload: dict) -> None:
    result = decode_touchpoint(touchpoint("opportunity", payload=payload))
    assert result.ok, result.error
    assert result.record["payload"] == payload


@pytest.mark.parametrize("payload", [
    {k: v for k, v in OPEN.items() if k != "stated_probability"},   # open needs a probability
    {k: v for k, v in OPEN.items() if k != "expected_close_date"},  # ... an expected close date
    {k: v for k, v in OPEN.items() if k != "pipeline_stage"},       # ... and a stage
    {k: v for k, v in WON.items() if k != "final_amount"},          # won needs what was won
    {k: v for k, v in WON.items() if k != "closed_on"},
    {k: v for k, v in LOST.items() if k != "closed_on"},
    {k: v for k, v in OPEN.items() if k != "opportunity_id"},
    {k: v for k, v in OPEN.items() if k != "account_manager_id"},
    {k: v for k, v in OPEN.items() if k != "amount"},
    {**OPEN, "stated_probability": 60}, {**OPEN, "stated_probability": -0.1},
    {**OPEN, "stated_probability": "0.6"}, {**OPEN, "status": "pending"}, {**OPEN, "amount": -1},
    {**OPEN, "amount": 1e13}, {**OPEN, "currency": "kr"}, {**OPEN, "expected_close_date": "30.06.2026"},
    {**OPEN, "expected_close_date": "1999-12-31"}, {**OPEN, "expected_close_date": "2026-06-30T00:00:00Z"},
    {**OPEN, "opportunity_id": "OPP\n1"}, {**OPEN, "pipeline_stage": ""}, {**OPEN, "pipeline_stage": "x" * 65},
])
def test_opportunity_payload_rules(payload: dict) -> None:
    result = decode_touchpoint(touchpoint("opportunity", payload=payload))
    assert (result.ok, result.error_code) == (False, "schema_violation"), (payload, result)


@pytest.mark.parametrize("payload, field", [
    ({**OPEN, "expected_close_date": "2026-02-30"}, "expected_close_date"),
    ({**LOST, "closed_on": "2026-04-31"}, "closed_on"),
    ({**WON, "closed_on": "2026-03-04"}, "closed_on"),   # after the event (2026-03-02) that reports it
])
def test_opportunity_dates_must_exist_and_closing_not_lie_ahead(payload: dict, field: str) -> None:
    result = decode_touchpoint(touchpoint("opportunity", payload=payload))
    assert result.error_code == "bad_timestamp" and field in result.error_detail, result
    # the day after the event is still accepted (time zones)
    assert decode_touchpoint(touchpoint("opportunity", payload={**WON, "closed_on": "2026-03-03"})).ok


@pytest.mark.parametrize("where, value", [("extra", b'{"score": 1e999}'), ("payload", b'{"rating": -2e400}'),
                                          ("payload", b'{"values": [1.5, 1e999]}')])
def test_a_number_beyond_a_double_in_an_open_field_is_a_schema_violation(where: str, value: bytes) -> None:
    """Unknown fields and free-form payloads are kept as JSON text; 1e999 would come back as the
    non-JSON `Infinity`, which PostgreSQL's json type refuses: it is rejected where it sits."""
    record = touchpoint("email")
    if where == "extra":
        raw = json.dumps({**record, "crm": "__X__"}).encode().replace(b'"__X__"', value)
    else:
        raw = json.dumps({**record, "payload": "__X__"}).encode().replace(b'"__X__"', value)
    result = decode("touchpoint", b"C000042", raw)
    assert result.error_code == "schema_violation", result
    assert "beyond the range of a double" in result.error_detail
    assert ("crm.score" if where == "extra" else "payload.") in result.error_detail


def test_an_empty_tombstone_key_is_a_bad_key() -> None:
    assert decode("customer", b"", None).error_code == "bad_key"
    assert decode("customer", None, None).error_code == "null_value"


# --- ids that look alike, and other inputs a user trial sent ----------------------------------------

def test_an_id_is_printable_no_control_format_or_separator_character_anywhere_in_unicode() -> None:
    """User trial: "C000006 ", "C000007\\u200f" (a right-to-left mark) and "C\\u0085000001" (a C1
    control) landed as customers of their own, each taking touches from the customer it looks like.
    The contract's identifier was "printable, no control characters" but checked C0 and DEL only."""
    import unicodedata

    from loyalty_core.contract import is_identifier

    rejected = {cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and not is_identifier(f"C{chr(cp)}1")}
    expected = {cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF
                and unicodedata.category(chr(cp)) in ("Cc", "Cf", "Zl", "Zp")}
    assert expected <= rejected
    # beyond them only code points this Python's Unicode has not assigned yet (Unicode 15's Cf U+13439-1343F)
    assert all(unicodedata.category(chr(cp)) == "Cn" for cp in rejected - expected), sorted(rejected - expected)
    assert is_identifier("C000042") and is_identifier("Møller A/S 42") and is_identifier("x" * 256)
    assert not is_identifier("x" * 257) and not is_identifier("") and not is_identifier(b"\xff")
    assert not is_identifier("C000007\n") and not is_identifier(b"C000007\n")  # "$" matches before a final newline
    # the schema file itself: the astral ones are characters (JSON surrogate pairs), which ECMA-262's
    # "u" mode (JSON Schema validators) reads as Python does, not Python-only \U escapes
    assert "\\U" not in SCHEMA_PATH.read_text()


def test_a_lookalike_id_is_refused_in_words_and_a_lookalike_key_is_a_bad_key() -> None:
    result = decode("touchpoint", None, json.dumps(touchpoint(customer_id="C000007\u200f")).encode())
    assert result.error_code == "schema_violation"
    assert result.error_detail.startswith("customer_id: 'C000007\\u200f' has a control, format or line-separator "
                                          "character (U+200F): an id must be printable"), result.error_detail
    assert "\\u0000" not in result.error_detail  # not the regular expression
    tomb = decode("customer", "C\u0085000001".encode(), None)
    assert tomb.error_code == "bad_key" and tomb.error_detail.endswith("b'C\\xc2\\x85000001'")
    # a key that is not UTF-8 is no id: the replacement character must not make it equal to one
    assert decode("touchpoint", b"\xff", json.dumps(touchpoint(customer_id="\ufffd")).encode()).error_code == (
        "key_mismatch")


def test_other_inputs_of_the_user_trial_get_errors_that_say_what_to_fix() -> None:
    minutes = decode("touchpoint", None, json.dumps(touchpoint(occurred_at="2026-03-02T09:15:00+00:60")).encode())
    assert (minutes.error_code, minutes.error_detail) == (
        "bad_timestamp", "occurred_at: '2026-03-02T09:15:00+00:60': its UTC offset has 60 minutes (at most 59)")
    day = decode("touchpoint", None, json.dumps(touchpoint(occurred_at="2026-02-30T09:15:00Z")).encode())
    assert day.error_code == "bad_timestamp" and day.error_detail.startswith("occurred_at: '2026-02-30T09:15:00Z': ")
    # "tombstone": false on an ordinary record is an unknown field like any other: kept, not refused
    ordinary = decode("customer", b"C000042", json.dumps({**CUSTOMER, "tombstone": False}).encode())
    assert ordinary.ok, ordinary
    string_true = decode("customer", b"C000048", b'{"customer_id": "C000048", "tombstone": "true"}')
    assert string_true.error_code == "schema_violation"
    assert string_true.error_detail.startswith("tombstone: 'true' is not the JSON literal true; a tombstone line is "
                                               'exactly {"customer_id": ..., "tombstone": true}')
    for empty in (b"", b"  \n"):
        result = decode("touchpoint", b"C000042", empty)
        assert result.error_code == "not_json" and result.error_detail.startswith("empty message"), result
