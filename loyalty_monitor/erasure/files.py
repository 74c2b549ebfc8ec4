"""The alert outbox and every other file under the data directory: messages about the customer are
removed; JSON Lines records that mention it dropped; other text has its terms replaced by ``[erased]``."""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
import re
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from loyalty_core.files import replace_text, replace_with
from loyalty_core.settings import Settings
from loyalty_monitor.erasure.subjects import ERASED, Subject, _quote, _terms_of

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


#: Text files larger than this are reported, not rewritten in memory.
MAX_TEXT_BYTES = 512 * 1024 * 1024


JSON_LINES_SUFFIXES = {".jsonl", ".ndjson"}


#: Logs may be open for appending by a running process: rewritten in place (same inode), not renamed.
APPENDED_SUFFIXES = {".log", ".out", ".err"}


def _outbox(settings: Settings) -> Path:
    return Path(settings.data_dir) / "alerts" / "outbox"


def _erase_outbox(settings: Settings, targets: dict[str, Subject], alert_ids: dict[str, set[str]]) -> None:
    """Delete every outbox message (all its files) that is about an erased customer."""
    outbox = _outbox(settings)
    if not outbox.is_dir():
        return
    by_alert = {alert: cid for cid, alerts in alert_ids.items() for alert in alerts}
    for path in sorted(outbox.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        owners = set()
        for alert in record.get("alerts") or []:
            if isinstance(alert, dict):
                if alert.get("customer_id") in targets:
                    owners.add(alert["customer_id"])
                elif alert.get("alert_id") in by_alert:
                    owners.add(by_alert[alert["alert_id"]])
        key = record.get("idempotency_key")
        if key in by_alert:
            owners.add(by_alert[key])
        if not owners:
            continue
        base = path.name[: -len(".json")]
        # the message's files, and what a writer cut short left of them (loyalty_core.files)
        for sibling in [*outbox.glob(glob_escape(base) + ".*"), *outbox.glob("." + glob_escape(base) + ".*.tmp")]:
            if sibling.name[len(base):] in (".json", ".eml", ".html") or sibling.name.endswith(".tmp"):
                sibling.unlink(missing_ok=True)
                for owner in owners:
                    targets[owner].removed["outbox_files"] += 1


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _forms(term: str) -> list[str]:
    """How a text may be written into a file: as is, JSON-escaped (both ASCII modes), HTML-escaped."""
    forms = {term, json.dumps(term)[1:-1], json.dumps(term, ensure_ascii=False)[1:-1],
             html.escape(term), html.escape(term, quote=False)}
    return sorted((f for f in forms if f), key=lambda f: (-len(f), f))


def _id_pattern(form: str) -> str:
    """An id as a whole token: C0001 must not match inside C00012, nor a numeric id 4711 inside
    the numbers 0.4711 or 4711.5 (a digit, a point, a digit is one number, not a token boundary)."""
    before = r"(?<![\w-])" + (r"(?<!\d\.)" if form[:1].isdigit() else "")
    after = r"(?![\w])" + (r"(?!\.\d)" if form[-1:].isdigit() else "")
    return before + re.escape(form) + after


def _word_pattern(form: str) -> str:
    """A name or text as whole words: "Nova" erased leaves "Novatech" and "Casanova" alone (other
    words that contain it) but matches "Nova's" and "Nova," (an edge that is not a letter or digit
    needs no boundary)."""
    before = r"(?<!\w)" if re.match(r"\w", form) else ""
    after = r"(?!\w)" if re.search(r"\w$", form) else ""
    return before + re.escape(form) + after


class _Terms:
    """The erased customers' terms as one pattern, with ``search`` and ``sub`` as a compiled
    pattern has them, except that the texts of other customers that contain a term (``keep``:
    "Ek & Lindqvist Packaging AB" when "Lindqvist Packaging AB" is erased) match first and are
    left as they are: an erasure must not cut a piece out of another customer's name."""

    def __init__(self, regex: re.Pattern[str], literals: Iterable[str]):
        self.regex = regex
        # Every match contains one of these as it is: a substring test (C speed) rules out the
        # lines that mention none, which are nearly all, before the large alternation runs.
        self.literals = tuple(literals)

    def _may_match(self, text: str) -> bool:
        return any(literal in text for literal in self.literals)

    def search(self, text: str) -> re.Match[str] | None:
        if not self._may_match(text):
            return None
        return next((m for m in self.regex.finditer(text) if m.lastgroup != "keep"), None)

    def sub(self, repl: str, text: str) -> str:
        if not self._may_match(text):
            return text
        return self.regex.sub(lambda m: m.group(0) if m.lastgroup == "keep" else repl, text)


def _pattern(terms: list[str], ids: set[str], keep: Iterable[str] = ()) -> _Terms | None:
    forms = sorted({(f, t in ids) for t in terms for f in _forms(t)}, key=lambda f: (-len(f[0]), f))
    if not forms:
        return None
    # An id is a whole token; names and texts whole words anywhere, except inside a kept text.
    matched = "|".join(_id_pattern(f) if is_id else _word_pattern(f) for f, is_id in forms)
    kept = sorted({f for text in keep for f in _forms(text)
                   if any(not is_id and form in f and form != f for form, is_id in forms)},
                  key=lambda f: (-len(f), f))
    if kept:
        matched = "(?P<keep>" + "|".join(re.escape(f) for f in kept) + ")|" + matched
    return _Terms(re.compile(matched), (f for f, _ in forms))


def _redact_json(value: Any, pattern: _Terms) -> Any:
    """The strings (values and keys) of a parsed JSON document with the terms replaced; numbers,
    booleans and the structure stay, so the document still parses (a numeric id 4711 is a string
    in every record the project writes; an offset 4711 is not the customer)."""
    if isinstance(value, str):
        return pattern.sub(ERASED, value)
    if isinstance(value, list):
        return [_redact_json(v, pattern) for v in value]
    if isinstance(value, dict):
        return {pattern.sub(ERASED, k): _redact_json(v, pattern) for k, v in value.items()}
    return value


def _parsed_container(text: str) -> dict | list | None:
    """The JSON object or array a text holds, or None for any other text."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, (dict, list)) else None


def _redact_text(text: str, pattern: _Terms) -> str:
    """Replace the terms in a text; a JSON document stays a valid one (only its strings change)."""
    if not pattern.search(text):
        return text  # most cells and files: no parse (a term in a JSON string shows in its raw text)
    document = _parsed_container(text)
    if document is None:
        return pattern.sub(ERASED, text)
    redacted = _redact_json(document, pattern)
    if redacted == document:
        return text
    return json.dumps(redacted, ensure_ascii=False, indent=2 if "\n" in text.strip() else None)


def _mentions(line: str, pattern: _Terms) -> bool:
    """Whether a text mentions a term; in a JSON document, only in its strings."""
    if not pattern.search(line):
        return False
    document = _parsed_container(line)
    if document is None:
        return pattern.search(line) is not None
    return _redact_json(document, pattern) != document


def _is_sqlite(head: bytes) -> bool:
    return head.startswith(b"SQLite format 3\x00")


def _is_duckdb(head: bytes) -> bool:
    return head[8:12] == b"DUCK"


def _scrub_sqlite(path: Path, pattern: _Terms) -> int:
    """Redact the terms in every text value of a SQLite database (Airflow's metadata: XComs,
    rendered fields, logs), then VACUUM so no freed page keeps them. The same matching as in
    text files (ids as whole tokens, JSON kept valid), through a Python function: SQLite's
    replace() would cut C0001 out of C00012."""

    def redact(value: Any) -> Any:
        if isinstance(value, str):
            return _redact_text(value, pattern)
        if isinstance(value, bytes):
            try:
                return _redact_text(value.decode("utf-8"), pattern).encode("utf-8")
            except UnicodeDecodeError:
                return value  # binary (e.g. a compressed serialized DAG): nothing readable to redact
        return value

    changed = 0
    con = sqlite3.connect(path, timeout=30)
    try:
        con.create_function("loyalty_redact", 1, redact, deterministic=True)
        tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table' "
                                            "and name not like 'sqlite_%'")]
        for table in tables:
            columns = [r[1] for r in con.execute(f"pragma table_info({_quote(table)})")]
            for column in columns:
                quoted = _quote(column)
                cursor = con.execute(
                    f"update {_quote(table)} set {quoted} = loyalty_redact({quoted}) "
                    f"where typeof({quoted}) in ('text', 'blob') and loyalty_redact({quoted}) is not {quoted}")
                changed += cursor.rowcount
        con.commit()
        con.execute("vacuum")
    finally:
        con.close()
    return changed


def _rewrite_parquet(path: Path, targets: dict[str, Subject], pattern: _Terms) -> None:
    """A Parquet file outside the landing zone (e.g. the quality gate's quarantine): the targets'
    rows go, and their terms are redacted in the text cells of the rows that stay."""

    table = pq.read_table(path)
    dropped: dict[str, int] = defaultdict(int)
    if "customer_id" in table.column_names:
        ids = table.column("customer_id").to_pylist()
        mask = [c in targets for c in ids]
        for customer_id, gone in zip(ids, mask):
            if gone:
                dropped[customer_id] += 1
        if any(mask):
            table = table.filter(pa.array([not m for m in mask]))
    redacted = False
    columns = []
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            values = column.to_pylist()
            new = [pattern.sub(ERASED, v) if isinstance(v, str) else v for v in values]
            if new != values:
                redacted = True
                column = pa.chunked_array([pa.array(new, type=column.type)])
        columns.append(column)
    if not dropped and not redacted:
        return
    table = pa.Table.from_arrays(columns, schema=table.schema)
    replace_with(path, lambda fh: pq.write_table(table, fh, compression="zstd"), durable=True)
    for customer_id, rows in dropped.items():
        targets[customer_id].removed["other_parquet_rows"] += rows
    for customer_id in targets if redacted else ():
        targets[customer_id].removed["files_scrubbed"] += 1


def _rewrite_in_place(path: Path, text: str) -> None:
    with open(path, "r+b") as fh:
        fh.write(text.encode("utf-8"))
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())


def _scrub_files(settings: Settings, roots: list[Path], skip: set[Path], targets: dict[str, Subject],
                 terms: dict[str, set[str]], notes: list[str], landing_root: Path | None,
                 keep: Iterable[str] = ()) -> None:
    """Every other file under the data directory: JSON Lines records mentioning a target are
    dropped, text has the targets' terms replaced, SQLite databases are redacted and vacuumed.
    ``keep``: other customers' texts that contain a term, left whole (``_pattern``)."""
    per_customer = {cid: _terms_of(cid, terms, targets[cid].search_id) for cid in targets}
    everything = sorted({t for values in per_customer.values() for t in values}, key=lambda v: (-len(v), v))
    pattern = _pattern(everything, set(targets), keep)
    if pattern is None:
        return
    forms_of = {cid: [f for v in values for f in _forms(v)] for cid, values in per_customer.items()}
    raw_forms = sorted({f.encode("utf-8") for forms in forms_of.values() for f in forms}, key=len, reverse=True)

    def owners(text: str) -> set[str]:
        return {cid for cid, forms in forms_of.items() if any(f in text for f in forms)}

    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink() or path in seen:
                continue
            seen.add(path)
            resolved = path.resolve()
            if any(resolved == s or s in resolved.parents for s in skip):
                continue
            in_landing = landing_root is not None and resolved.is_relative_to(landing_root)
            if path.name.endswith(".lock") or (in_landing and path.name.endswith(".tmp")):
                continue  # locks hold a pid; a landing temp file is a batch being written right now
            if path.suffix == ".parquet":
                if not in_landing:
                    _rewrite_parquet(path, targets, pattern)  # e.g. the quality gate's quarantine
                continue
            try:
                size = path.stat().st_size
                with path.open("rb") as fh:
                    head = fh.read(16)
            except OSError:
                continue
            if _is_duckdb(head):
                notes.append(f"another DuckDB database was not searched: {path}")
                continue  # the warehouse itself is erased table by table
            if size > MAX_TEXT_BYTES:
                notes.append(f"not scanned (larger than {MAX_TEXT_BYTES} bytes): {path}")
                continue
            data = path.read_bytes()
            if not any(f in data for f in raw_forms):
                continue
            if _is_sqlite(head):
                who = owners(data.decode("utf-8", "replace"))
                try:
                    _scrub_sqlite(path, pattern)
                except sqlite3.Error as exc:
                    notes.append(f"could not redact the SQLite database {path}: {exc}; run the erasure again")
                    log.warning("erasure: could not redact %s: %s", path, exc)
                    continue
                for cid in who:
                    targets[cid].removed["files_scrubbed"] += 1
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                notes.append(f"a binary file mentions an erased customer (its id, name or one of its notes) "
                             f"and was left as is: {path}. Check it (`grep -c`), and delete it if it is a "
                             f"cache or a copy the pipeline writes again (dbt's target/ is rebuilt)")
                log.warning("erasure: binary file %s mentions an erased customer; not rewritten", path)
                continue
            who = owners(text)
            if path.suffix in JSON_LINES_SUFFIXES:
                kept = []
                # lines end at "\n" only: splitlines() also cut a record at a U+2028 or U+0085 in
                # one of its strings (written as is, ensure_ascii=False) and kept the half that did not
                # name the customer, a broken line with the rest of their note
                for line in filter(None, re.split(r"(?<=\n)", text)):  # each with its "\n"
                    if not _mentions(line, pattern):
                        kept.append(line)
                        continue
                    # each customer's record counts the lines about it, not the file's total
                    for cid in owners(line) or who:
                        targets[cid].removed["json_lines_dropped"] += 1
                new_text = "".join(kept)
            else:
                new_text = _redact_text(text, pattern)
            if new_text != text:
                if path.suffix in APPENDED_SUFFIXES:
                    _rewrite_in_place(path, new_text)  # a running process may still append to it
                else:
                    replace_text(path, new_text, durable=True)
                for cid in who:
                    targets[cid].removed["files_scrubbed"] += 1
