"""Random (seeded) mutations of valid contract messages, for the fuzz tests: values of the wrong type or
shape, deleted and extra keys, broken text, mangled bytes and odd message keys."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

WEIRD_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 2**200, 1e308, -1e-308, 0.5, "", " ", "x" * 5000,
    "\u0000", "\ud800", "\udfff\ud800", "é", "😀", "\u202e", "null", "NaN", "1e999", "2026-02-30T10:00:00Z",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2026-03-01", "2026-03-01T09:00:00",
    "2026-03-01T09:00:00+25:00", "P1D", [], [1, "a", None], {}, {"nested": {"deeper": [{}]}},
]


def paths(record: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of nested dicts and lists (where a mutation can land)."""
    out = []
    if isinstance(record, dict):
        for key, value in record.items():
            out.append(prefix + (key,))
            out.extend(paths(value, prefix + (key,)))
    elif isinstance(record, list):
        for index, value in enumerate(record):
            out.append(prefix + (index,))
            out.extend(paths(value, prefix + (index,)))
    return out


def parent_of(record: Any, path: tuple) -> Any:
    for step in path[:-1]:
        record = record[step]
    return record


def mutate_record(rng: random.Random, record: dict[str, Any]) -> Any:
    record = copy.deepcopy(record)
    for _ in range(rng.randint(1, 3)):
        where = paths(record)
        choice = rng.random()
        if not where or choice < 0.1:
            record = rng.choice([[record], "text", 42, None, [], {"customer_id": record.get("customer_id")}
                                 if isinstance(record, dict) else {}])
            break
        path = rng.choice(where)
        parent = parent_of(record, path)
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


def encode(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")


def mutate_bytes(rng: random.Random, value: bytes) -> bytes | None:
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


def message_key(rng: random.Random, record: Any) -> bytes | None:
    customer = record.get("customer_id") if isinstance(record, dict) else None
    choice = rng.random()
    if choice < 0.6 and isinstance(customer, str):
        return customer.encode("utf-8", "surrogatepass")
    return rng.choice([None, b"", b"\x00", b"C99999", b"\xff\xfe", b"x" * 500, b"C00001\n"])
