"""Erasure of a customer's personal data from everything Loyalty Monitor stores (issue 12).

A tombstone on the customers topic (or ``loyalty erase CUSTOMER_ID --by WHO``) erases the
customer everywhere the project keeps data on disk:

* the landing zone: every Parquet file with rows of the customer is rewritten without them
  (temporary file, fsync, rename; the file keeps its name, metadata and modification time), the
  tombstone row itself included, so no landed file names the customer afterwards;
* the warehouse: the customer's rows leave every table of every schema that has a ``customer_id``
  column (build, published, ops, quarantine tables, ...), its alerts leave ``ops.alert_state``, and
  the DuckDB file is then copied into a fresh file that replaces it (DELETE and CHECKPOINT leave
  the deleted values in free blocks of the file; the copy holds live rows only);
* the alert outbox: every message about the customer (its ``.json``, ``.eml`` and ``.html``);
* every other file under the data directory (logs, quality-gate results and Data Docs, reports,
  dbt artifacts, JSON Lines inputs, Airflow's SQLite metadata): JSON Lines records that mention
  the customer are dropped, other text has the customer's id, name and its own free texts
  (notes, survey comments) replaced by ``[erased]``.

What was erased is recorded in ``<data_dir>/erasure/erasures.jsonl`` (append-only): who asked,
when, what was removed where, and the customer only as a keyed hash (HMAC-SHA256 with the
installation's secret ``<data_dir>/erasure/key``), never its id, name or texts. For the figures
that must still count an erased customer (customers who churned, with or without a case: the
leadership report's precision section), the record keeps its ``churn``: the month it churned, its
account manager's id, why (``tombstoned``, or the ``orders_stopped`` / ``closed_lost`` churn it
already had) and whether it had a case, and nothing else about it. Those are counted per month,
manager and reason in ``<data_dir>/erasure/erased_churn.parquet``, which dbt reads
(``stg_erasure__churn`` -> ``fct_case_feedback_monthly``). Every pipeline run
applies new tombstones first and erases again whatever of an erased customer reaches the landing
zone later (a replayed batch, an offset reset, a late event): the register of keyed hashes makes
erasure permanent without keeping the id. Rows sent after the erasure for a customer that a new
master-data record re-created (a record newer than the tombstone) are the new customer's and stay.

Kafka itself is not rewritten here: see docs/operations.md (retention and compaction of the
topics) and ``loyalty dead-letters purge``.

The package, step by step: ``subjects`` (who and what), ``churn`` (what the figures keep),
``landing``, ``in_warehouse``, ``files`` (outbox and everything else), ``run`` (the whole erasure).
The register itself is ``loyalty_core.erasure_register``.
"""

from loyalty_core.erasure_register import (
                                          RegisterError,
                                          erased_churn_counts,
                                          erased_subjects,
                                          erasure_log,
                                          erasures,
                                          pseudonym,
                                          register_dir,
                                          register_path,
                                          subject_key,
                                          unreadable_lines,
)
from loyalty_monitor.erasure.run import apply_erasures, erase_customers, is_erased
from loyalty_monitor.erasure.subjects import ERASED, ErasureError, ErasureReport, Subject

__all__ = ["ERASED", "ErasureError", "ErasureReport", "RegisterError", "Subject", "apply_erasures",
           "erase_customers", "erased_churn_counts", "erased_subjects", "erasure_log", "erasures", "is_erased",
           "pseudonym", "register_dir", "register_path", "subject_key", "unreadable_lines"]
