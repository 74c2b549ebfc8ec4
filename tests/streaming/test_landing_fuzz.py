"""Messages nobody wrote a test for: valid events of every kind, mutated at random (seeded), go through
the consumer's decoding (``decode_chunk``, what its worker processes run). Whatever a message holds,
decoding never raises, every message comes out either as a landed row or as a dead letter with one
of the contract's error codes (never the catch-all ``decode_failed``, which would be a decoder bug),
the untouched messages beside them all land, and the landed table is storable as Parquet.
"""

from __future__ import annotations

import copy
import io
import json
import random
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
import pytest

from loyalty_core.contract import ERROR_CODES
from streaming import samples
from streaming.landing import UNLANDABLE, decode_chunk

MAX_BYTES = 64 * 1024
LANDED_AT = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
KNOWN_CODES = set(ERROR_CODES) | {UNLANDABLE}

WEIRD_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 2**200, 1e308, -1e-308, 0.5, "", " ", "x" * 5000,
    "\u0000", "\ud800", "\udfff\ud800", "é", "😀", "\u202e", "null", "NaN", "1e999", "2026-02-30T10:00:00Z",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2026-03-01", "2026-03-01T09:00:00",
    "2026-03-01T09:00:00+25:00", "P1D", [], [1, "a", None], {}, {"nested": {"deeper": [{}]}},
]


def _case_event(i: int) -> dict[str, Any]:
    return {"schema_version": 1, "event_id": f"CE{i:06d}", "event_type": "close",
            "occurred_at": "2026-03-02T09:00:00+00:00", "case_id": f"case-{i}", "customer_id": f"C{i:05d}",
            "actor": "am@example.com", "source": "web",
            "payload": {"outcome": "saved", "closed_on": "2026-03-02"}}


VALID = {
    "touchpoint": lambda i: samples.touchpoint(i),
    "customer": lambda i: samples.customer(i),
    "case_event": _case_event,
}


def _paths(record: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of nested dicts and lists (where a mutation can land)."""
    out = []
    if isinstance(record, dict):
        for key, value in record.items():
            out.append(prefix + (key,))
            out.extend(_paths(value, prefix + (key,)))
    elif isinstance(record, list):
        for index, value in enumerate(record):
            out.append(prefix + (index,))
            out.extend(_paths(value, prefix + (index,)))
    return out


def _parent(record: Any, path: tuple) -> Any:
    for step in path[:-1]:
        record = record[step]
    return record


def _mutate_record(rng: random.Random, record: dict[str, Any]) -> Any:
    record = copy.deepcopy(record)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(record)
        choice = rng.random()
        if not paths or choice < 0.1:
            record = rng.choice([[record], "text", 42, None, [], {"customer_id": record.get("customer_id")}
                                 if isinstance(record, dict) else {}])
            break
        path = rng.choice(paths)
        parent = _parent(record, path)
        if choice < 0.35:
            parent[path[-1]] = copy.deepcopy(rng.choice(WEIRD_VALUES))
        elif choice < 0.55 and isinstance(parent, dict):
            del parent[path[-1]]
        elif choice < 0.7 and isinstance(parent, dict):
            parent[rng.choice(["extra", "", "payload", "customer_id", "\u0000", "x" * 300])] = rng.choice(WEIRD_VALUES)
        elif choice < 0.85 and isinstance(parent[path[-1]], str):
            text = parent[path[-1]]
            cut = rng.randint(0, len(text))
            parent[path[-1]] = text[:cut] + rng.choice(["", "\n", "\ud83d", "'", '"', "\\", "Z", "+99:99"]) + text[cut:]
        elif isinstance(parent[path[-1]], (int, float)) and not isinstance(parent[path[-1]], bool):
            parent[path[-1]] = rng.choice([-parent[path[-1]], parent[path[-1]] * 10**rng.randint(3, 30), str(parent[path[-1]])])
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(WEIRD_VALUES))
    return record


def _encode(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _mutate_bytes(rng: random.Random, value: bytes) -> bytes | None:
    choice = rng.random()
    if choice < 0.15:
        return value[: rng.randint(0, len(value))]
    if choice < 0.3:
        at = rng.randint(0, len(value))
        return value[:at] + bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 4))) + value[at:]
    if choice < 0.4:
        return b"\xef\xbb\xbf" + value  # a byte-order mark
    if choice < 0.5:
        return value.decode("utf-8", "replace").encode("utf-16")
    if choice < 0.6:
        return b"[" * 5000 + b"]" * 5000
    if choice < 0.7:
        return value + b" " + value  # two documents
    if choice < 0.8:
        return value.replace(b"2026", b"NaN", 1)
    if choice < 0.9:
        return b""
    return None


def _key(rng: random.Random, record: Any) -> bytes | None:
    customer = record.get("customer_id") if isinstance(record, dict) else None
    choice = rng.random()
    if choice < 0.6 and isinstance(customer, str):
        return customer.encode("utf-8", "surrogatepass")
    return rng.choice([None, b"", b"\x00", b"C99999", b"\xff\xfe", b"x" * 500, b"C00001\n"])


@pytest.mark.parametrize("kind", sorted(VALID))
def test_random_mutations_of_valid_messages_land_or_dead_letter_with_a_contract_code(kind):
    rng = random.Random(f"fuzz-{kind}")  # seeded: a failure reproduces
    messages, untouched = [], set()
    for i in range(1500):
        record = VALID[kind](i)
        roll = rng.random()
        if roll < 0.2:
            key, value = record["customer_id"].encode(), _encode(record)
            untouched.add(i)
        elif roll < 0.75:
            mutated = _mutate_record(rng, record)
            key, value = _key(rng, mutated), _encode(mutated)
        else:
            key, value = record["customer_id"].encode(), _mutate_bytes(rng, _encode(record))
        messages.append((i % 3, i, 1_772_000_000_000 + i, key, value))

    chunk = decode_chunk(kind, f"fuzz-{kind}", messages, MAX_BYTES, LANDED_AT)

    rejected = [index for index, _, _ in chunk.rejects]
    assert len(rejected) == len(set(rejected)), "a message was dead-lettered twice"
    assert chunk.table.num_rows + len(rejected) == len(messages), "a message was neither landed nor dead-lettered"
    codes = {code for _, code, _ in chunk.rejects}
    assert codes <= KNOWN_CODES, f"codes outside the contract: {codes - KNOWN_CODES}: " + "; ".join(
        detail for _, code, detail in chunk.rejects if code not in KNOWN_CODES)[:2000]
    assert all(detail for _, _, detail in chunk.rejects), "a dead letter without a reason"
    assert not untouched & set(rejected), "a valid message beside the bad ones was dead-lettered"
    # the mutations hit: most messages are rejected, for many different reasons
    assert len(rejected) > len(messages) // 2 and len(codes) >= 5, codes

    buffer = io.BytesIO()
    pq.write_table(chunk.table, buffer)
    assert pq.read_table(io.BytesIO(buffer.getvalue())).num_rows == chunk.table.num_rows
