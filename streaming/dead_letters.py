"""Read, export, replay and purge the dead-letter topic.

Every dead letter keeps the original key and bytes; its ``dlq.*`` headers say where it came from
and why it failed. ``replay`` re-publishes the original bytes to their source topic (for example
after the contract was fixed); messages that still fail land in the dead-letter topic again, with a
new failure time. Each dead letter is replayed once: the replay ledger
(``<data_dir>/dead-letters/replayed.jsonl``, no message content) remembers which were sent, so a
second replay sends only dead letters that arrived since (e.g. the ones that failed again).
``export`` writes dead letters as JSON Lines for a data engineer to correct, and ``replay_corrected``
sends the corrected messages (checked against the contract first) in their originals' place.
``purge`` removes an erased customer's dead letters: Kafka cannot delete single records, so the
dead letters to keep are written again at the end of the topic and everything before them is
deleted (DeleteRecords); on a broker without DeleteRecords (the embedded Tansu) the topic is
re-created with the dead letters to keep.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

from loyalty_core import erasure_register
from loyalty_core.contract import ERROR_CODES as CONTRACT_ERROR_CODES
from loyalty_core.contract import JsonProblem, parse_json
from loyalty_core.files import replace_text
from loyalty_core.settings import Settings
from streaming.consumer_flush import KEY_NULL_HEADER
from streaming.landing import contract_window, safe_decode  # the contract as the consumer applies it
from streaming.producer import make_producer
from streaming.topics import input_topics, topic_specs

#: How long fetches must stay empty before the dead-letter topic counts as read to its end.
QUIET_S = 0.6

#: Every ``dlq.error.code`` the consumer writes: the contract's, and the landing's own two
#: (streaming/landing.py: ``UNLANDABLE`` and the decoder's ``decode_failed``).
ERROR_CODES = (*CONTRACT_ERROR_CODES, "unlandable", "decode_failed")


def check_error_code(error_code: str | None) -> None:
    """A filter on an error code that no dead letter can have (a typo such as ``schema-violation``)
    would list or replay nothing and look like an empty topic: refused, with the codes there are."""
    if error_code is not None and error_code not in ERROR_CODES:
        raise ValueError(f"unknown error code {error_code!r}; dead letters carry one of: {', '.join(ERROR_CODES)}")


#: How :func:`shown` writes the commonest control characters.
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def shown(text: str) -> str:
    """``text`` safe to print on a terminal: every character that is not plain visible text is
    escaped as in Python (``\\x1b``, ``\\u200f``): control characters (C0, DEL, C1: an escape
    sequence could clear the screen or set the window title), line and paragraph separators
    (U+2028, U+2029) and format characters (bidi overrides such as U+202E, zero-width ones), which
    would reorder or hide what is shown. For dead letters' message data (key, value, error detail)
    in tables and summaries; JSON output escapes them itself."""
    if text.isprintable() and text.isascii():
        return text
    out = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            point = ord(char)
            out.append(_NAMED_ESCAPES.get(char) or (f"\\x{point:02x}" if point < 0x100 else
                                                     f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"))
        else:
            out.append(char)
    return "".join(out)


@dataclass
class DeadLetterRecord:
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    source_topic: str
    source_partition: int
    source_offset: int
    error_code: str
    error_detail: str
    failed_at: str
    headers: list[tuple[str, bytes]] = field(default_factory=list)  # the original message's
    partition: int = 0
    all_headers: list[tuple[str, bytes]] = field(default_factory=list)  # as stored, dlq.* included
    replayed_at: str | None = None  # when ``replay`` re-published it (from the replay ledger)

    def as_dict(self, preview_chars: int | None = 200) -> dict[str, Any]:
        value = None if self.value is None else self.value.decode("utf-8", "replace")
        if value is not None and preview_chars is not None and len(value) > preview_chars:
            value = value[:preview_chars] + f"… ({len(self.value)} bytes)"
        return {"offset": self.offset, "failed_at": self.failed_at, "source_topic": self.source_topic,
                "source_partition": self.source_partition, "source_offset": self.source_offset,
                "error_code": self.error_code, "error_detail": self.error_detail,
                "replayed_at": self.replayed_at,
                "key": None if self.key is None else self.key.decode("utf-8", "replace"),
                "value": value}


def _parse(message: Any) -> DeadLetterRecord:
    dlq: dict[str, str] = {}
    original: list[tuple[str, bytes]] = []
    for name, raw in message.headers or []:
        if name.startswith("dlq."):
            dlq[name] = (raw or b"").decode("utf-8", "replace")
        else:
            original.append((name, raw))

    def number(name: str) -> int:
        try:
            return int(dlq.get(name, "-1"))
        except ValueError:
            return -1

    # a keyless message without a value is kept under an empty key; its original key was none
    key = None if dlq.get(KEY_NULL_HEADER) == "true" else message.key
    return DeadLetterRecord(
        offset=message.offset, timestamp_ms=message.timestamp, key=key, value=message.value,
        source_topic=dlq.get("dlq.source.topic", ""), source_partition=number("dlq.source.partition"),
        source_offset=number("dlq.source.offset"), error_code=dlq.get("dlq.error.code", ""),
        error_detail=dlq.get("dlq.error.detail", ""), failed_at=dlq.get("dlq.failed_at", ""),
        headers=original, partition=message.partition, all_headers=list(message.headers or []))


def iter_dead_letters(settings: Settings, timeout_s: float = 30.0) -> Iterator[DeadLetterRecord]:
    """Every message now in the dead-letter topic, oldest first (no consumer group, no commits).

    Each of ``settings.topic_dead_letter``'s partitions is read in order; with several partitions the
    interleaving follows fetch order."""

    consumer = KafkaConsumer(client_id="loyalty-dead-letters", enable_auto_commit=False,
                             consumer_timeout_ms=1000, **settings.kafka_client_config())
    try:
        partitions = consumer.partitions_for_topic(settings.topic_dead_letter)
        if not partitions:
            return
        tps = [TopicPartition(settings.topic_dead_letter, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        # Read until the end offsets are passed AND fetches stay empty for a moment: the embedded
        # Tansu broker can report an end offset below the true end when the last produce request
        # carried several records, so the end offset alone would cut the listing short.
        deadline = time.monotonic() + timeout_s
        quiet_since = None
        while time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=300)
            for messages in polled.values():
                for message in messages:
                    yield _parse(message)
            caught_up = all(consumer.position(tp) >= ends[tp] for tp in tps)
            if polled or not caught_up:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_S:
                return
        raise TimeoutError(f"could not read the whole dead-letter topic within {timeout_s:.0f}s")
    finally:
        consumer.close()


def list_dead_letters(settings: Settings, limit: int | None = None,
                      error_code: str | None = None) -> list[DeadLetterRecord]:
    """The newest ``limit`` dead letters (optionally of one error code), oldest first, each with
    ``replayed_at`` when ``replay`` already re-published it."""
    check_error_code(error_code)
    ledger = read_replay_ledger(settings)
    records = [r for r in iter_dead_letters(settings) if error_code in (None, r.error_code)]
    for record in records:
        record.replayed_at = ledger.get(replay_key(record))
    return records[-limit:] if limit else records


# --- the replay ledger: each dead letter is replayed once ------------------------------------------

def replay_ledger_path(settings: Settings) -> Path:
    return settings.data_dir / "dead-letters" / "replayed.jsonl"


def replay_key(record: DeadLetterRecord) -> str:
    """A dead letter's identity in the replay ledger: where its message was read and when it failed
    (a message replayed and failing again is a new dead letter, from a new source offset). No
    message content: the ledger holds no personal data. The failure time keeps the key apart from a
    later message at the same coordinates (the embedded broker starts its offsets again at 0)."""
    if record.source_topic and record.source_offset >= 0:
        return (f"{record.source_topic}|{record.source_partition}|{record.source_offset}|"
                f"{record.error_code}|{record.failed_at}")
    return f"dead-letter|{record.partition}|{record.offset}|{record.timestamp_ms}"


def json_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text: split at "\n" only (a "\r" before it dropped). Not
    ``str.splitlines``: it also splits at U+2028, U+2029, U+0085 and other characters a JSON string
    may hold as they are (``ensure_ascii=False``, as the export writes), cutting a line in two."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def read_replay_ledger(settings: Settings) -> dict[str, str]:
    """replay key -> when it was replayed."""
    path = replay_ledger_path(settings)
    ledger: dict[str, str] = {}
    if not path.exists():
        return ledger
    for line in json_lines(path.read_text(encoding="utf-8")):
        try:
            entry = json.loads(line)
            ledger[entry["key"]] = entry["replayed_at"]
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash: that dead letter counts as not replayed
    return ledger


def _append_replay_ledger(settings: Settings, keys: list[str]) -> None:
    if not keys:
        return
    path = replay_ledger_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with path.open("a", encoding="utf-8") as out:
        out.writelines(json.dumps({"key": key, "replayed_at": now}) + "\n" for key in keys)


@dataclass
class ReplayResult:
    replayed: int = 0
    skipped_unknown_topic: int = 0
    skipped_already_replayed: int = 0
    skipped_copies: int = 0  # copies of one dead letter (re-sent after a consumer crash)
    skipped_erased: int = 0  # of customers in the erasure register
    by_topic: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        line = (f"replayed {self.replayed} dead letters "
                f"({', '.join(f'{t}: {n}' for t, n in self.by_topic.items()) or 'none'}); "
                f"skipped {self.skipped_unknown_topic} from unknown topics")
        if self.skipped_copies:
            line += f", {self.skipped_copies} copies of a dead letter sent once"
        if self.skipped_erased:
            line += f", {self.skipped_erased} of customers in the erasure register (purge them: --erased)"
        if self.skipped_already_replayed:
            line += (f", {self.skipped_already_replayed} already replayed, not sent again (a replayed message "
                     f"that failed again is a new dead letter; --include-replayed sends them all again)")
        return line


def replay_dead_letters(settings: Settings, error_code: str | None = None,
                        on_progress: Callable[[int], None] | None = None,
                        include_replayed: bool = False) -> ReplayResult:
    """Re-publish dead letters' original key, bytes and headers to their source topics, each dead
    letter once: those already replayed (the replay ledger) are skipped unless ``include_replayed``,
    and those of customers in the erasure register always.
    A replayed message that fails again is a new dead letter (with a ``dlq.replayed_from_offset``
    header) and is replayed by the next replay. The ledger is written after the producer flushed:
    a replay cut short sends its dead letters again next time (at least once)."""

    check_error_code(error_code)
    known = set(input_topics(settings))
    result = ReplayResult()
    ledger = read_replay_ledger(settings)
    erased = _erased_filter(settings)
    sent: set[tuple] = set()
    done: list[str] = []
    producer = make_producer(settings, client_id="loyalty-dead-letter-replay")
    try:
        for record in iter_dead_letters(settings):
            if error_code not in (None, record.error_code):
                continue
            if record.source_topic not in known:
                result.skipped_unknown_topic += 1
                continue
            if erased(_customer_ids_of(record)):
                result.skipped_erased += 1
                continue
            key = replay_key(record)
            if key in ledger and not include_replayed:
                result.skipped_already_replayed += 1
                continue
            done.append(key)
            identity = _identity(record)
            if identity in sent:
                result.skipped_copies += 1
                continue
            sent.add(identity)
            producer.send(record.source_topic, key=record.key, value=record.value,
                          headers=record.headers + [("dlq.replayed_from_offset", str(record.offset).encode())])
            result.replayed += 1
            result.by_topic[record.source_topic] = result.by_topic.get(record.source_topic, 0) + 1
            if on_progress and result.replayed % 1000 == 0:
                on_progress(result.replayed)
        producer.flush()
    finally:
        producer.close()
    _append_replay_ledger(settings, done)
    return result


# --- correcting dead letters: export, edit, replay the corrected messages -------------------------

#: What an export line names its dead letter by: its identity in the replay ledger (where its
#: message was read and when it failed; no content), so that a line never reaches another dead
#: letter that took its place in the topic (a purge re-creates it, a restarted broker starts again at 0).
EXPORT_ID = "dead_letter"
#: The ways an export line carries the message; exactly one per line.
_VALUE_FIELDS = ("value", "value_text", "value_base64", "tombstone")


def _erased_filter(settings: Settings) -> Callable[[set[str]], bool]:
    """Whether any of some customer ids is in the erasure register (by keyed hash). A customer
    erased once stays out of exports and replays: a relationship that really started again comes
    back through its source system, not through an old dead letter."""
    subjects = erasure_register.erased_subjects(settings)
    if not subjects:
        return lambda ids: False
    key = erasure_register.subject_key(settings)
    return lambda ids: any(erasure_register.pseudonym(key, c) in subjects for c in ids)


def _text(raw: bytes | None) -> tuple[str, str] | None:
    """("text", str) for UTF-8 bytes, ("base64", str) otherwise; None for None."""
    if raw is None:
        return None
    try:
        return "text", raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(raw).decode("ascii")


def _json_as_sent(text: str) -> Any:
    """The message parsed, when writing it back as JSON sends the same thing; else None (exported
    as text). Not so: what the contract's parser refuses (NaN and Infinity, which written back made
    the replay refuse a token the producer never sent; 1e-400, which came back as 0.0; a key given
    twice, of which only the last came back) and a number beyond a double (1e400: Infinity)."""
    try:
        parsed, overflowed = parse_json(text)
    except JsonProblem:
        return None
    return None if overflowed else parsed


def _exported(record: DeadLetterRecord) -> dict[str, Any]:
    """One dead letter as a line a data engineer edits: the message as JSON when it is a JSON
    object or array (``value``), as text (``value_text``: anything else, ``null`` included), as
    base64 when not UTF-8 (``value_base64``); a Kafka null value (a delete) as ``tombstone: true``."""
    line: dict[str, Any] = {EXPORT_ID: {"id": replay_key(record), "partition": record.partition,
                                        "offset": record.offset},
                            "source_topic": record.source_topic, "error_code": record.error_code,
                            "error_detail": record.error_detail}
    key = _text(record.key)
    line["key" if key is None or key[0] == "text" else "key_base64"] = None if key is None else key[1]
    value = _text(record.value)
    if value is None:
        line["tombstone"] = True
    elif value[0] == "base64":
        line["value_base64"] = value[1]
    else:
        parsed = _json_as_sent(value[1])
        if isinstance(parsed, (dict, list)):
            line["value"] = parsed
        else:
            line["value_text"] = value[1]
    return line


def _json_line(entry: dict[str, Any]) -> str:
    """Readable UTF-8 where it can be; escaped where the text holds what UTF-8 cannot (a lone
    surrogate, as in an ``unlandable`` dead letter)."""
    text = json.dumps(entry, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(entry)
    return text + "\n"


@dataclass
class ExportResult:
    exported: int = 0
    skipped_erased: int = 0
    skipped_copies: int = 0

    def summary(self, out: Path) -> str:
        line = f"exported {self.exported} dead letters to {out} (readable by you only: it holds customer data)"
        if self.skipped_erased:
            line += f"; left out {self.skipped_erased} of customers in the erasure register"
        if self.skipped_copies:
            line += f"; {self.skipped_copies} copies of a dead letter exported once"
        return line


def export_dead_letters(settings: Settings, out: Path, error_code: str | None = None,
                        include_replayed: bool = False) -> ExportResult:
    """Write the dead letters not replayed yet (all with ``include_replayed``), optionally of one
    error code, one copy each, as JSON Lines to correct by hand and send with
    :func:`replay_corrected`. Dead letters of erased customers are left out. The file holds customer
    data: it is written whole (a temporary file renamed) and readable by its owner only, also when
    it replaces an earlier export."""
    check_error_code(error_code)
    ledger = read_replay_ledger(settings)
    erased = _erased_filter(settings)
    result = ExportResult()
    lines: list[str] = []
    seen: set[tuple] = set()
    for record in iter_dead_letters(settings):
        if error_code not in (None, record.error_code) or (replay_key(record) in ledger and not include_replayed):
            continue
        if erased(_customer_ids_of(record)):
            result.skipped_erased += 1
            continue
        if _identity(record) in seen:
            result.skipped_copies += 1
            continue
        seen.add(_identity(record))
        lines.append(_json_line(_exported(record)))
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_text(out, lines, mode=0o600)
    result.exported = len(lines)
    return result


@dataclass
class CorrectedReplay:
    replayed: int = 0
    #: (line number, what is wrong): lines not sent (still breaking the contract, naming no dead
    #: letter there is, of an erased customer)
    refused: list[tuple[int, str]] = field(default_factory=list)
    skipped_already_replayed: int = 0

    def summary(self) -> str:
        line = f"replayed {self.replayed} corrected dead letters"
        if self.skipped_already_replayed:
            line += f"; skipped {self.skipped_already_replayed} already replayed (--include-replayed sends them)"
        if self.refused:
            line += f"; {len(self.refused)} lines not sent:" + "".join(  # why may quote the message: shown()
                f"\n  line {number}: {shown(why)}" for number, why in self.refused)
        return line


def _decoded_field(number: int, name: str, raw: Any) -> bytes:
    if not isinstance(raw, str):
        raise ValueError(f"line {number}: {name} must be a string")
    if name.endswith("_base64"):
        try:
            return base64.b64decode(raw, validate=True)
        except ValueError as exc:
            raise ValueError(f"line {number}: {name} is not base64: {exc}") from None
    try:
        return raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"line {number}: {name} holds text UTF-8 cannot carry ({exc.reason}); "
                         f"give the bytes as base64 instead") from None


def _corrected_message(number: int, entry: Any) -> tuple[str, bytes | None, bytes | None]:
    """(the dead letter's id, key, value) of one export line, or ValueError naming the line."""
    if not isinstance(entry, dict) or not isinstance(entry.get(EXPORT_ID), dict) \
            or not isinstance(entry[EXPORT_ID].get("id"), str):
        raise ValueError(f"line {number}: not a line of `loyalty dead-letters export` (no {EXPORT_ID}.id)")
    keys = [k for k in ("key", "key_base64") if k in entry]
    if len(keys) > 1:
        raise ValueError(f"line {number}: give key or key_base64, not both")
    key = None if not keys or entry[keys[0]] is None else _decoded_field(number, keys[0], entry[keys[0]])
    given = [k for k in _VALUE_FIELDS if k in entry]
    if len(given) != 1:
        raise ValueError(f"line {number}: give exactly one of {', '.join(_VALUE_FIELDS)} (found {given or 'none'})")
    name, raw = given[0], entry[given[0]]
    if name == "tombstone":
        if raw is not True:
            raise ValueError(f"line {number}: tombstone can only be true (a delete of the customer)")
        return entry[EXPORT_ID]["id"], key, None
    if name == "value":
        if raw is None:
            raise ValueError(f'line {number}: "value": null is ambiguous: "tombstone": true deletes the customer, '
                             f'"value_text": "null" sends the text null')
        text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        return entry[EXPORT_ID]["id"], key, _decoded_field(number, "value", text)
    return entry[EXPORT_ID]["id"], key, _decoded_field(number, name, raw)


def replay_corrected(settings: Settings, corrected: Path, include_replayed: bool = False) -> CorrectedReplay:
    """Send the corrected messages of an edited export (:func:`export_dead_letters`) to the source
    topics of their dead letters, with the original headers and a ``dlq.corrected`` header.

    The whole file is read first (a malformed line stops everything, naming the line). A line is
    not sent, and is reported with why, when its corrected message still breaks the event
    contract as the consumer will check it, when its dead letter is no longer in the topic (purged),
    or when the original or the corrected message is about a customer in the erasure register.
    The dead letters sent are written to the replay ledger: a plain ``replay`` then does not send
    their broken originals again; copies of one dead letter are sent once."""
    entries = []
    for number, text in enumerate(json_lines(corrected.read_text(encoding="utf-8")), start=1):
        if not text.strip():
            continue
        try:
            entry = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{corrected}, line {number}: not JSON ({exc})") from None
        entries.append((number, *_corrected_message(number, entry)))
    kinds = input_topics(settings)
    letters: dict[str, DeadLetterRecord] = {}
    for record in iter_dead_letters(settings):
        letters.setdefault(replay_key(record), record)
    ledger = read_replay_ledger(settings)
    erased = _erased_filter(settings)
    window = contract_window(settings)
    result = CorrectedReplay()
    done: list[str] = []
    sent: set[tuple] = set()
    producer = make_producer(settings, client_id="loyalty-dead-letter-replay")
    try:
        for number, letter_id, key, value in entries:
            record = letters.get(letter_id)
            if record is None:
                result.refused.append((number, ("its dead letter is no longer in the topic (purged, or the broker "
                                                "started again since the export)")))
                continue
            if record.source_topic not in kinds:
                result.refused.append((number, (f"its source topic {record.source_topic!r} is not one this "
                                                "installation reads")))
                continue
            if letter_id in ledger and not include_replayed:
                result.skipped_already_replayed += 1
                continue
            if erased(_customer_ids_of(record) | _customer_ids_of(replace(record, key=key, value=value))):
                result.refused.append((number, "a customer in the erasure register: not sent"))
                continue
            decoded = safe_decode(kinds[record.source_topic], key, value, settings.max_message_bytes, window)
            if not decoded.ok:
                result.refused.append((number, (f"still breaks the contract: {decoded.error_code}: "
                                                f"{decoded.error_detail}")))
                continue
            if _identity(record) in sent:
                continue  # an export holds one copy; a hand-made file may hold two lines of one
            sent.add(_identity(record))
            producer.send(record.source_topic, key=key, value=value,
                          headers=record.headers + [("dlq.replayed_from_offset", str(record.offset).encode()),
                                                    ("dlq.corrected", b"true")])
            done.append(letter_id)
            result.replayed += 1
        producer.flush()
    finally:
        producer.close()
    # every copy of a sent dead letter counts as replayed: a plain replay must not send the broken one
    done += [k for k, r in letters.items() if _identity(r) in sent and k not in done]
    _append_replay_ledger(settings, done)
    return result


# --- purging an erased customer's dead letters ----------------------------------------------------

@dataclass
class PurgeResult:
    scanned: int = 0
    purged: int = 0
    kept: int = 0
    duplicates_dropped: int = 0
    #: "none" (nothing matched), "delete_records" (kept ones re-written, the rest deleted) or
    #: "recreated" (a broker without DeleteRecords: the topic re-created with the kept ones)
    method: str = "none"

    def summary(self, topic: str) -> str:
        how = {"none": "nothing to purge", "delete_records": "kept ones re-written, older records deleted",
               "recreated": "topic re-created with the kept ones (broker without DeleteRecords)"}[self.method]
        return (f"{topic}: {self.scanned} dead letters read, {self.purged} purged, {self.kept} kept "
                f"({self.duplicates_dropped} duplicate copies dropped); {how}")


def _customer_ids_of(record: DeadLetterRecord) -> set[str]:
    """Every customer a dead letter may be about: its key and, when the bytes are a JSON object,
    their customer_id."""

    ids: set[str] = set()
    if record.key:
        ids.add(record.key.decode("utf-8", "replace"))
    if record.value:
        try:
            parsed = json.loads(record.value)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("customer_id"), str):
            ids.add(parsed["customer_id"])
    return ids


def _mentions(record: DeadLetterRecord, customer_ids: set[str]) -> bool:
    """Is the dead letter about one of these customers (key, customer_id, or the id as a JSON
    string anywhere in bytes that are not valid JSON)?"""
    if _customer_ids_of(record) & customer_ids:
        return True
    value = record.value or b""
    return any(b'"' + c.encode() + b'"' in value for c in customer_ids)


def _identity(record: DeadLetterRecord) -> tuple:
    """A dead letter's identity: where it was read (re-sends after a crash are copies of it)."""
    if record.source_offset >= 0 and record.source_topic:
        return ("source", record.source_topic, record.source_partition, record.source_offset, record.error_code)
    return ("bytes", record.key, record.value, tuple(record.all_headers))


def _delete_records_supported(admin: Any, topic: str, low: dict[int, int]) -> bool:
    """Probe DeleteRecords with a no-op (delete before the current first offset). Tansu advertises
    the API but drops the connection on it; a real Kafka broker answers."""

    # The client logs the dropped connection at level error; here it is the expected answer of the
    # embedded broker, not a failure, so the kafka loggers are quiet for the probe.
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        admin.delete_records({TopicPartition(topic, p): offset for p, offset in low.items()}, timeout_ms=10_000)
        return True
    except Exception:  # noqa: BLE001 - any failure: fall back to re-creating the topic
        return False
    finally:
        kafka_log.setLevel(level)


def purge_dead_letters(settings: Settings, customer_ids: set[str] | None = None, erased: bool = False) -> PurgeResult:
    """Remove the dead letters of ``customer_ids`` (and, with ``erased``, of every customer in the
    erasure register, matched by keyed hash) from the dead-letter topic.

    With DeleteRecords (Apache Kafka): the dead letters to keep (one copy each) are produced again
    to their partition with their original key, bytes, headers and timestamp, then every record
    before them is deleted; dead letters that arrive meanwhile are after the cut and stay. A crash
    in between leaves copies, which the next purge folds into one. Without DeleteRecords (the
    embedded broker, memory only): the topic is deleted, created again and the kept ones produced;
    stop the consumer first there, or dead letters written meanwhile are lost.
    """
    wanted = set(customer_ids or ())
    in_register = _erased_filter(settings) if erased else None
    topic = settings.topic_dead_letter
    result = PurgeResult()
    records = list(iter_dead_letters(settings))
    result.scanned = len(records)

    def doomed(record: DeadLetterRecord) -> bool:
        if wanted and _mentions(record, wanted):
            return True
        return bool(in_register and in_register(_customer_ids_of(record)))

    keep: dict[tuple, DeadLetterRecord] = {}
    for record in records:
        if doomed(record):
            result.purged += 1
        else:
            identity = _identity(record)
            if identity in keep:
                result.duplicates_dropped += 1
            keep[identity] = record  # the newest copy
    result.kept = len(keep)
    if not result.purged:
        return result

    admin = KafkaAdminClient(client_id="loyalty-dead-letter-purge", **settings.kafka_client_config())
    try:
        consumer = KafkaConsumer(client_id="loyalty-dead-letter-purge", enable_auto_commit=False,
                                 **settings.kafka_client_config())
        try:
            partitions = sorted(consumer.partitions_for_topic(topic) or {0})
            low = {tp.partition: o for tp, o in consumer.beginning_offsets(
                [TopicPartition(topic, p) for p in partitions]).items()}
        finally:
            consumer.close()
        cut = {p: max([r.offset for r in records if r.partition == p], default=low[p] - 1) + 1
               for p in partitions}
        supported = _delete_records_supported(admin, topic, low)
        if not supported:
            admin.close()
            admin = KafkaAdminClient(client_id="loyalty-dead-letter-purge", **settings.kafka_client_config())
            admin.delete_topics([topic])
            deadline = time.monotonic() + 30
            while topic in set(admin.list_topics()) and time.monotonic() < deadline:
                time.sleep(0.2)
            spec = next((t for t in topic_specs(settings) if t["name"] == topic), {"config": {}})
            while True:
                try:
                    admin.create_topics([NewTopic(topic, len(partitions), 1, topic_configs=spec["config"])])
                    break
                except Exception:  # noqa: BLE001 - the deletion may still be under way
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        producer = make_producer(settings, client_id="loyalty-dead-letter-purge")
        try:
            for record in sorted(keep.values(), key=lambda r: (r.partition, r.offset)):
                producer.send(topic, key=record.key, value=record.value, headers=record.all_headers,
                              partition=record.partition if supported else min(record.partition, len(partitions) - 1),
                              timestamp_ms=record.timestamp_ms if record.timestamp_ms and record.timestamp_ms > 0 else None)
            producer.flush()
        finally:
            producer.close()
        if supported:
            admin.delete_records({TopicPartition(topic, p): offset for p, offset in cut.items()}, timeout_ms=30_000)
            result.method = "delete_records"
        else:
            result.method = "recreated"
    finally:
        admin.close()
    return result
