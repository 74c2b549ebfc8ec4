"""The whole erasure, step by step and under the pipeline's lock: ``apply_erasures`` (tombstones the
consumer landed) and ``erase_customers`` (``loyalty erase``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, Iterable

from loyalty_core import locks
from loyalty_core.erasure_register import (
    _append,
    erased_subjects,
    erasure_log,
    pseudonym,
    register_dir,
    subject_key,
    write_churn_counts,
)
from loyalty_core.settings import Settings
from loyalty_monitor.erasure.churn import _churn_records
from loyalty_monitor.erasure.files import _erase_outbox, _scrub_files
from loyalty_monitor.erasure.in_warehouse import (
    _compact_if_pending,
    _erase_postgres,
    _erase_spark,
    _erase_warehouse,
    _present_ids,
)
from loyalty_monitor.erasure.landing import (
    _dataset_of,
    _erase_mask,
    _landed_ids,
    _landing_terms,
    _parquet_files,
    _read,
    _recreated_after,
    _rewrite_landing,
    _shared_texts,
    _texts_containing,
    _tombstones,
    _zone,
)
from loyalty_monitor.erasure.subjects import ErasureReport, Subject, _aware, _utcnow

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


def _lock(settings: Settings):
    """Hold the quality gate's lock: its results and Data Docs are rewritten too."""

    return locks.exclusive(Path(settings.data_dir) / "quality" / ".lock", "the quality gate",
                           settings.lock_timeout_s)


def _run(settings: Settings, targets: dict[str, Subject], ids_to_files: dict[str, set[str]],
         files: list[str], zone: Any, report: ErasureReport) -> None:
    now = _utcnow()
    # What the churn figures keep of them, read before anything is deleted (module doc).
    churn = _churn_records(settings, targets, zone, files, erased_subjects(settings))
    _append(settings, [{
        "event": "requested", "erasure_id": s.erasure_id, "subject": s.subject, "reason": s.reason,
        "requested_by": s.requested_by, "requested_at": now.isoformat(timespec="seconds"),
        "erased_through": s.erased_through.isoformat(), "source": s.source,
        **({"churn": churn[s.customer_id]} if s.customer_id in churn else {}),
    } for s in targets.values()])
    if churn:
        write_churn_counts(settings)

    ids = set(targets)
    # An id of which nothing is found (no landed row, no warehouse row, no earlier erasure that
    # removed any) may be an ordinary word ("AB"): it is recorded, but not searched for elsewhere.
    known = ids_to_files.keys() | _present_ids(settings, ids) | _found_before(settings)
    for customer_id, target in targets.items():
        target.search_id = customer_id in known or target.subject in known
    terms = _landing_terms(zone, ids_to_files, ids)
    # a text that other customers' rows use as well is not this customer's (e.g. a template note)
    shared = _shared_texts(zone, files, {t for v in terms.values() for t in v}, ids)
    for customer_id in list(terms):
        terms[customer_id] -= shared
    # other customers' names that contain one of these ("Ek & Lindqvist Packaging AB") stay whole
    keep = _texts_containing(zone, files, {t for v in terms.values() for t in v}, ids)
    alert_ids = _erase_warehouse(settings, targets, terms, keep)
    if settings.dbt_target == "postgres":
        for customer_id, values in _erase_postgres(settings, targets).items():
            alert_ids.setdefault(customer_id, set()).update(values)
    elif settings.dbt_target == "spark":
        for customer_id, values in _erase_spark(settings, targets).items():
            alert_ids.setdefault(customer_id, set()).update(values)
    elif settings.dbt_target != "duckdb":
        # An engine this module cannot reach: say so in the record, loudly.
        note = (f"the {settings.dbt_target} warehouse was NOT erased: delete the customer's rows there "
                "and rewrite the tables")
        report.notes.append(note)
        log.warning("erasure: %s", note)
        for s in targets.values():
            s.removed["warehouse_engine_not_erased"] = settings.dbt_target
    _erase_outbox(settings, targets, alert_ids)
    data_dir = Path(settings.data_dir).resolve()
    roots = [data_dir]
    if zone.local and not Path(zone.root).resolve().is_relative_to(data_dir):
        roots.append(Path(zone.root))
    skip = {register_dir(settings).resolve(), settings.warehouse.resolve()}
    landing_root = Path(zone.root).resolve() if zone.local else None
    _scrub_files(settings, roots, skip, targets, terms, report.notes, landing_root, keep)
    # Last: the landing zone, tombstones included. Until here a crash leaves the tombstone in
    # place and the next run erases again from the start.
    _rewrite_landing(zone, ids_to_files, targets)

    done = _utcnow()
    completed = []
    for s in targets.values():
        removed = dict(s.removed)
        if "warehouse_tables" in removed:
            removed["warehouse_tables"] = sorted(set(removed["warehouse_tables"]))
        removed["recreated_rows_kept"] = s.recreated
        completed.append({"event": "completed", "erasure_id": s.erasure_id, "subject": s.subject,
                          "completed_at": done.isoformat(timespec="seconds"), "removed": removed})
        report.erasures.append({"erasure_id": s.erasure_id, "subject": s.subject, "reason": s.reason,
                                "requested_by": s.requested_by, "removed": removed})
    _append(settings, completed)
    for entry in report.erasures:
        log.info("erasure %s of %s (%s) by %s: %s", entry["erasure_id"], entry["subject"][:24], entry["reason"],
                 entry["requested_by"], json.dumps(entry["removed"], sort_keys=True))


def _found_before(settings: Settings) -> set[str]:
    """The keyed hashes of customers an earlier erasure removed landed or warehouse rows of."""
    return {e["subject"] for e in erasure_log(settings) if e.get("event") == "completed"
            and ((e.get("removed") or {}).get("landing_rows") or (e.get("removed") or {}).get("warehouse_rows"))}


def apply_erasures(settings: Settings, requested_by: str = "loyalty_pipeline") -> ErasureReport:
    """The pipeline step: erase every customer with a tombstone in the landing zone, and erase again
    whatever of an already erased customer has landed since (a replay, a late event).

    Idempotent: a run with nothing to erase reads the landing zone's customer ids and stops.
    """
    report = ErasureReport()
    with _lock(settings):
        if _compact_if_pending(settings):
            report.notes.append("finished compacting the warehouse after an interrupted erasure")
        zone = _zone(settings)
        files = _parquet_files(zone)
        ids_to_files = _landed_ids(zone, files)
        key = subject_key(settings)
        register = erased_subjects(settings)
        tombstones = _tombstones(zone, files)
        targets: dict[str, Subject] = {}
        for customer_id, tomb in tombstones.items():
            subject = pseudonym(key, customer_id)
            known = register.get(subject)
            through = max(tomb["at"], known) if known else tomb["at"]
            replayed = known is not None and tomb["at"] <= known
            targets[customer_id] = Subject(
                customer_id, subject, through, requested_by, "re-landed" if replayed else "tombstone",
                source={"kind": "tombstone", "topic": tomb["topic"], "partition": tomb["partition"],
                        "offset": tomb["offset"], "sent_at": tomb["at"].isoformat()})
        for customer_id in ids_to_files:
            if customer_id in targets:
                continue
            subject = pseudonym(key, customer_id)
            if subject in register:
                targets[customer_id] = Subject(customer_id, subject, register[subject], requested_by,
                                            "re-landed", source={"kind": "re-landed"})
        for customer_id, target in list(targets.items()):
            target.recreated = _recreated_after(zone, ids_to_files.get(customer_id, ()), customer_id,
                                             target.erased_through)
            if target.reason == "re-landed" and target.recreated:
                # only the new incarnation's rows may be left: anything sent before the erasure goes
                probe = {customer_id: target}
                if not any(any(_erase_mask(zone, p, _read(zone, p), probe))
                           for p in ids_to_files.get(customer_id, ())):
                    del targets[customer_id]
        # a tombstone whose id names nothing else landed (no event, no record) may have been meant
        # for another customer ("C000046 " for C000046): erased all the same, but said
        alone = [c for c, t in targets.items() if t.reason == "tombstone" and t.subject not in register
                 and all(_dataset_of(zone, p) == "customers" for p in ids_to_files.get(c, ()))
                 and not _recreated_after(zone, ids_to_files.get(c, ()), c, dt.datetime.min.replace(tzinfo=UTC))]
        if targets:
            _run(settings, targets, ids_to_files, files, zone, report)
        report.not_found = [c for c in alone if not targets[c].removed.get("warehouse_rows")]
        for customer_id in report.not_found:
            report.notes.append(
                f"the tombstone of {targets[customer_id].subject[:24]}… matched no customer: nothing but the tombstone "
                "was landed or built under its id; if it was meant for another customer (a typo, a stray space), "
                "send the tombstone again with the right id (the id is in the log)")
    return report


def erase_customers(settings: Settings, customer_ids: Iterable[str], requested_by: str,
                    erased_through: dt.datetime | None = None) -> ErasureReport:
    """Erase these customers now, on request (``loyalty erase``): everything landed or built about
    them up to ``erased_through`` (default now). A later master-data record re-creates the customer."""
    if not requested_by or not requested_by.strip():
        raise ValueError("say who requested the erasure (--by): it is recorded")
    ids = [c for c in dict.fromkeys(str(c) for c in customer_ids) if c]
    if not ids:
        raise ValueError("no customer id given")
    report = ErasureReport()
    through = _aware(erased_through) or _utcnow()
    with _lock(settings):
        _compact_if_pending(settings)
        zone = _zone(settings)
        files = _parquet_files(zone)
        ids_to_files = _landed_ids(zone, files)
        key = subject_key(settings)
        register = erased_subjects(settings)
        targets = {}
        for customer_id in ids:
            subject = pseudonym(key, customer_id)
            known = register.get(subject)
            targets[customer_id] = Subject(customer_id, subject, max(through, known) if known else through,
                                           requested_by.strip(), "request", source={"kind": "request"})
        for customer_id, target in targets.items():
            target.recreated = _recreated_after(zone, ids_to_files.get(customer_id, ()), customer_id,
                                             target.erased_through)
        _run(settings, targets, ids_to_files, files, zone, report)
    # (an id erased before has nothing left to find: no warning for it)
    report.not_found = [c for c, t in targets.items() if t.subject not in register
                        and not t.removed.get("landing_rows") and not t.removed.get("warehouse_rows")]
    return report


def is_erased(settings: Settings, customer_id: str) -> bool:
    """Was this customer erased (by a tombstone or on request)?"""
    return pseudonym(subject_key(settings), customer_id) in erased_subjects(settings)
