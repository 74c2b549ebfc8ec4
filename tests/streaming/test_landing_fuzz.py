"""Messages nobody wrote a test for: valid events of every kind, mutated at random (seeded), go through
the consumer's decoding (``decode_chunk``, what its worker processes run). Whatever a message holds,
decoding never raises, every message comes out either as a landed row or as a dead letter with one
of the contract's error codes (never the catch-all ``decode_failed``, which would be a decoder bug,
nor a row builder's KeyError or TypeError),
the untouched messages beside them all land, and the landed table is storable as Parquet.
"""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
import pytest
from fuzz import encode, message_key, mutate_bytes, mutate_record

from loyalty_core.contract import ERROR_CODES
from streaming import samples
from streaming.landing import UNLANDABLE, decode_chunk

MAX_BYTES = 64 * 1024
LANDED_AT = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
KNOWN_CODES = set(ERROR_CODES) | {UNLANDABLE}


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


@pytest.mark.parametrize("kind", sorted(VALID))
def test_random_mutations_of_valid_messages_land_or_dead_letter_with_a_contract_code(kind):
    rng = random.Random(f"fuzz-{kind}")  # seeded: a failure reproduces
    messages, untouched = [], set()
    for i in range(1500):
        record = VALID[kind](i)
        roll = rng.random()
        if roll < 0.2:
            key, value = record["customer_id"].encode(), encode(record)
            untouched.add(i)
        elif roll < 0.75:
            mutated = mutate_record(rng, record)
            key, value = message_key(rng, mutated), encode(mutated)
        else:
            key, value = record["customer_id"].encode(), mutate_bytes(rng, encode(record))
        messages.append((i % 3, i, 1_772_000_000_000 + i, key, value))

    chunk = decode_chunk(kind, f"fuzz-{kind}", messages, MAX_BYTES, LANDED_AT)

    rejected = [index for index, _, _ in chunk.rejects]
    assert len(rejected) == len(set(rejected)), "a message was dead-lettered twice"
    assert chunk.table.num_rows + len(rejected) == len(messages), "a message was neither landed nor dead-lettered"
    codes = {code for _, code, _ in chunk.rejects}
    assert codes <= KNOWN_CODES, f"codes outside the contract: {codes - KNOWN_CODES}: " + "; ".join(
        detail for _, code, detail in chunk.rejects if code not in KNOWN_CODES)[:2000]
    assert all(detail for _, _, detail in chunk.rejects), "a dead letter without a reason"
    slips = [detail for _, code, detail in chunk.rejects  # unlandable: a value the store refuses,
             if code == UNLANDABLE and detail.startswith(("KeyError", "TypeError", "AttributeError"))]
    assert not slips, f"a row builder tripped over a valid record: {slips[:3]}"  # not a builder bug
    assert not untouched & set(rejected), "a valid message beside the bad ones was dead-lettered"
    # the mutations hit: most messages are rejected, for many different reasons
    assert len(rejected) > len(messages) // 2 and len(codes) >= 5, codes

    buffer = io.BytesIO()
    pq.write_table(chunk.table, buffer)
    assert pq.read_table(io.BytesIO(buffer.getvalue())).num_rows == chunk.table.num_rows
