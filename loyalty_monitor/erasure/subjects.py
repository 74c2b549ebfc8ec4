"""What an erasure is about: the customers (``Subject``), the report of what was removed, its errors,
and the small helpers every step shares (quoting, the terms to look for)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


ERASED = "[erased]"


class ErasureError(RuntimeError):
    """An erasure could not be completed (it is safe to run again)."""


@dataclass
class Subject:
    """One customer to erase in this run (the clear id lives in memory only)."""

    customer_id: str
    subject: str
    erased_through: dt.datetime
    requested_by: str
    reason: str  # "tombstone" | "request" | "re-landed"
    source: dict[str, Any] = field(default_factory=dict)
    erasure_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: True when a master-data record newer than the erasure re-created the customer: its newer
    #: rows stay, and the warehouse is rebuilt from scratch so it holds exactly those.
    recreated: bool = False
    removed: dict[str, Any] = field(default_factory=lambda: defaultdict(int))
    #: Whether the id itself is searched for in other files and text columns: not for an id of
    #: which nothing was ever found (``loyalty erase AB`` must not cut "AB" out of "Berg Plast AB").
    search_id: bool = True


@dataclass
class ErasureReport:
    erasures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # ids asked for (``loyalty erase``) of which nothing was found: no landed row, no warehouse row;
    # and tombstones under whose id nothing but the tombstone had landed (``apply_erasures``).
    # A typo erases nobody, yet is recorded for good, so the command warns. Kept out of as_dict and
    # the register: it names the customer.
    not_found: list[str] = field(default_factory=list)

    @property
    def customers(self) -> int:
        return len(self.erasures)

    def summary(self) -> str:
        if not self.erasures:
            return "nothing to erase"
        parts = []
        for e in self.erasures:
            removed = e["removed"]
            parts.append(f"{e['subject'][:24]}… ({e['reason']}): {removed.get('landing_rows', 0)} landed rows, "
                         f"{removed.get('warehouse_rows', 0)} warehouse rows, {removed.get('alert_states', 0)} "
                         f"alert states, {removed.get('outbox_files', 0)} outbox files, "
                         f"{removed.get('files_scrubbed', 0)} other files scrubbed")
        return f"erased {len(self.erasures)} customer(s): " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"customers": self.customers, "erasures": self.erasures, "notes": self.notes}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def _aware(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'




#: Free texts shorter than this are not searched for in other files (too likely to be ordinary words).
MIN_TERM_CHARS = 4
#: The free-text columns (notes, survey comments): a note that is one ordinary lowercase word
#: ("future", "callback") is not searched for: replacing it everywhere would alter other
#: customers' texts and the quality gate's records (user trial). A one-word note that may point at
#: a person (a capital, a digit, an @: "Kowalski", "+4512345678", "ola@acme.pl") still is, as is
#: every longer note; the customer's rows that hold any note go anyway. Names: from MIN_TERM_CHARS.
FREE_TEXT_COLUMNS = ("note", "comment")


def personal_text(column: str, value: object) -> bool:
    """Whether ``value`` of ``column`` (a name, note or comment of an erased customer) is searched
    for and replaced in other tables and files."""
    text = value.strip() if isinstance(value, str) else ""
    if len(text) < MIN_TERM_CHARS:
        return False
    return column not in FREE_TEXT_COLUMNS or not (text.isalpha() and text.islower())


def _terms_of(customer_id: str, terms: dict[str, set[str]], with_id: bool = True) -> list[str]:
    """The customer's id (unless ``with_id`` is false), name(s) and own free texts, longest first (a
    name inside a note is replaced as part of the note)."""
    values = {customer_id if with_id else "", *terms.get(customer_id, ())}
    return sorted((v for v in values if v), key=lambda v: (-len(v), v))
