"""The touchpoint history generator: determinism, contract, exact noise counts, realism of the drift."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from loyalty_monitor.contract import (CONTACT_ROLES, DEPARTMENTS, DUNNING_STAGES, EVENT_TYPES,
                                      SEVERITIES, decode, parse_timestamp)
from loyalty_monitor.generator import (CUSTOMERS_FILE, GROUND_TRUTH_FILE, MALFORMED_KINDS,
                                       ORDERS_STOP_AT_DRIFT, TOUCHPOINTS_FILE, generate)

START, END = date(2025, 1, 1), date(2025, 12, 31)
DIALOGUE_TYPES = {"call", "email", "meeting"}
DIALOGUE_DEPARTMENTS = {"sales", "management"}


class History:
    """One generated history, decoded once with the real contract."""

    def __init__(self, out: Path, summary) -> None:
        self.out = out
        self.summary = summary
        self.truth = json.loads((out / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
        self.customers = {c["customer_id"]: c for c in self.truth["customers"]}
        self.raw_lines = (out / TOUCHPOINTS_FILE).read_bytes().splitlines()
        self.valid: list[dict] = []           # in file order, duplicates included
        self.valid_raw: list[bytes] = []
        self.errors: Counter[str] = Counter()
        for raw in self.raw_lines:
            try:
                key = json.loads(raw).get("customer_id")
            except ValueError:
                key = None
            result = decode("touchpoint", key.encode() if isinstance(key, str) else None, raw)
            if result.ok:
                self.valid.append(result.record)
                self.valid_raw.append(raw)
            else:
                self.errors[result.error_code] += 1
        unique: dict[str, dict] = {}
        for record in self.valid:
            unique.setdefault(record["event_id"], record)
        self.events = list(unique.values())
        self.by_customer: dict[str, list[tuple[datetime, dict]]] = defaultdict(list)
        for record in self.events:
            self.by_customer[record["customer_id"]].append((parse_timestamp(record["occurred_at"]), record))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    out = tmp_path_factory.mktemp("generated")
    return History(out, generate(out, customers=400, start=START, end=END, seed=11))


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    kwargs = dict(customers=60, start="2025-03-01", end="2025-08-31")
    generate(tmp_path / "a", seed=5, **kwargs)
    generate(tmp_path / "b", seed=5, **kwargs)
    generate(tmp_path / "c", seed=6, **kwargs)
    for name in (CUSTOMERS_FILE, TOUCHPOINTS_FILE, GROUND_TRUTH_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / TOUCHPOINTS_FILE).read_bytes() != (tmp_path / "c" / TOUCHPOINTS_FILE).read_bytes()


def test_every_line_is_valid_or_counted_as_malformed(history: History) -> None:
    counts = history.truth["counts"]
    assert len(history.raw_lines) == counts["touchpoint_lines"] == history.summary.touchpoint_lines
    assert len(history.events) == counts["valid_events"] > 10_000
    assert len(history.valid) - len(history.events) == counts["duplicates"] > 0
    assert sum(history.errors.values()) == counts["malformed"] > 0
    expected_errors: Counter[str] = Counter()
    for kind, n in counts["malformed_by_kind"].items():
        assert n > 0, f"no malformed line of kind {kind}"
        expected_errors[MALFORMED_KINDS[kind]] += n
    assert history.errors == expected_errors
    assert counts["events_by_type"] == dict(sorted(Counter(e["event_type"] for e in history.events).items()))


def test_duplicates_are_identical_resends(history: History) -> None:
    first_seen: dict[str, bytes] = {}
    resent = 0
    for record, raw in zip(history.valid, history.valid_raw):
        event_id = record["event_id"]
        if event_id in first_seen:
            assert first_seen[event_id] == raw, "a re-sent event must be byte-identical"
            resent += 1
        else:
            first_seen[event_id] = raw
    assert resent == history.truth["counts"]["duplicates"]


def test_late_events_arrive_out_of_order(history: History) -> None:
    newest = datetime.min.replace(tzinfo=timezone.utc)
    behind_by_a_day = 0
    for record in history.valid:
        occurred = parse_timestamp(record["occurred_at"])
        if newest - occurred >= timedelta(days=1):
            behind_by_a_day += 1
        newest = max(newest, occurred)
    late = history.truth["counts"]["late_events"]
    assert late > 100
    # every late event (and its re-sends) follows events of at least a day later, bar the last few
    assert 0.9 * late <= behind_by_a_day <= late + history.truth["counts"]["duplicates"]


def test_customers_file_follows_the_contract_with_tombstones(history: History) -> None:
    seen: set[str] = set()
    tombstones = []
    for raw in (history.out / CUSTOMERS_FILE).read_bytes().splitlines():
        record = json.loads(raw)
        if record.get("tombstone") is True:
            assert set(record) == {"customer_id", "tombstone"}
            assert record["customer_id"] in seen, "a tombstone follows the customer's record"
            assert decode("customer", record["customer_id"].encode(), None).ok
            tombstones.append(record["customer_id"])
            continue
        result = decode("customer", record["customer_id"].encode(), raw)
        assert result.ok, result.error
        seen.add(record["customer_id"])
    assert seen == set(history.customers)
    deleted = [c["customer_id"] for c in history.truth["customers"] if c["deleted"]]
    assert sorted(tombstones) == sorted(deleted) and deleted
    assert history.truth["counts"]["tombstones"] == len(deleted)
    emails = {json.loads(raw)["account_manager"]["email"]
              for raw in (history.out / CUSTOMERS_FILE).read_bytes().splitlines() if b"tombstone" not in raw}
    assert 10 <= len(emails) <= 15 and all(e.endswith("@example.com") for e in emails)


def _is_dialogue(record: dict) -> bool:
    return record["event_type"] in DIALOGUE_TYPES and record["department"] in DIALOGUE_DEPARTMENTS


def _is_friction(record: dict) -> bool:
    return (record["event_type"] in ("dunning_contact", "complaint")
            or (record["event_type"] == "call" and record["payload"]["answered"] is False))


def test_churners_fade_before_churn_date_and_are_gone_after(history: History) -> None:
    churners = [c for c in history.truth["customers"]
                if c["churns"] and date.fromisoformat(c["churn_date"]) <= END]
    assert 0.08 * len(history.customers) <= len(churners) <= 0.25 * len(history.customers)
    dialogue_before = dialogue_late = friction_before = friction_late = total_before = total_late = 0
    orders_late = orders_before = orders_after_stop = 0
    for c in churners:
        drift_start = date.fromisoformat(c["drift_start"])
        churn = date.fromisoformat(c["churn_date"])
        half = (churn - drift_start) / 2
        for occurred, record in history.by_customer[c["customer_id"]]:
            day = occurred.date()
            if record["event_type"] == "order":
                orders_after_stop += (day - drift_start) / (churn - drift_start) > ORDERS_STOP_AT_DRIFT
            assert day < churn, f"{c['customer_id']} has an event on {day}, after churning on {churn}"
            if drift_start - half <= day < drift_start:      # the baseline just before the drift
                dialogue_before += _is_dialogue(record)
                friction_before += _is_friction(record)
                orders_before += record["event_type"] == "order"
                total_before += 1
            elif churn - half <= day < churn:                 # the second half of the drift
                dialogue_late += _is_dialogue(record)
                friction_late += _is_friction(record)
                orders_late += record["event_type"] == "order"
                total_late += 1
    assert dialogue_before > 100
    assert dialogue_late < 0.6 * dialogue_before, (dialogue_before, dialogue_late)
    assert friction_late / total_late > 1.5 * friction_before / total_before
    assert orders_late < 0.5 * orders_before
    assert orders_after_stop == 0, "orders stop well before the churn date"


def test_healthy_customers_keep_their_rhythm_by_segment(history: History) -> None:
    gaps: dict[str, list[int]] = defaultdict(list)
    for c in history.truth["customers"]:
        if c["churns"] or c["deleted"]:
            continue
        days = sorted({o.date() for o, r in history.by_customer[c["customer_id"]] if _is_dialogue(r)})
        gaps[c["segment"]] += [(b - a).days for a, b in zip(days, days[1:])]
    median = {segment: statistics.median(g) for segment, g in gaps.items()}
    assert 4 <= median["key"] <= 14, median
    assert median["key"] < median["growth"] < median["standard"], median
    assert median["standard"] >= 21, median


def test_added_and_deleted_customers_only_act_while_they_exist(history: History) -> None:
    added = [c for c in history.truth["customers"] if c["added_at"]]
    deleted = [c for c in history.truth["customers"] if c["deleted"]]
    assert added and deleted
    created = {}
    for raw in (history.out / CUSTOMERS_FILE).read_bytes().splitlines():
        record = json.loads(raw)
        if "updated_at" in record:
            created.setdefault(record["customer_id"], parse_timestamp(record["updated_at"]))
    for c in added:
        first = min(o for o, _ in history.by_customer[c["customer_id"]])
        assert created[c["customer_id"]].date().isoformat() == c["added_at"]
        assert first >= created[c["customer_id"]], "a new customer's record comes before its first touch"
    for c in deleted:
        last = max(o for o, _ in history.by_customer[c["customer_id"]])
        assert last.date() <= date.fromisoformat(c["deleted_at"])


def test_every_department_event_type_and_outcome_is_present(history: History) -> None:
    events = history.events
    assert {e["event_type"] for e in events} == set(EVENT_TYPES)
    assert {e["department"] for e in events} == set(DEPARTMENTS)
    assert {e["contact_role"] for e in events} == set(CONTACT_ROLES)
    payloads = defaultdict(list)
    for e in events:
        payloads[(e["event_type"], e["department"])].append(e["payload"])
    reception = payloads[("call", "reception")]
    assert any(not p["answered"] for p in reception) and any(p.get("transferred") for p in reception)
    visits = payloads[("service_visit", "service")]
    assert {p["resolved"] for p in visits} == {True, False}
    assert {p["first_time_fix"] for p in visits} == {True, False}
    assert {p["stage"] for p in payloads[("dunning_contact", "finance")]} == set(DUNNING_STAGES)
    complaints = [p for e in events if e["event_type"] == "complaint" for p in [e["payload"]]]
    assert {p["severity"] for p in complaints} == set(SEVERITIES)
    scores = {p["nps_score"] for e in events if e["event_type"] == "survey_response" for p in [e["payload"]]}
    assert min(scores) <= 3 and max(scores) == 10
    orders = [e["payload"] for e in events if e["event_type"] == "order"]
    assert len({o["currency"] for o in orders}) >= 4 and len({o["product_line"] for o in orders}) >= 5
    assert all(o["amount"] > 0 for o in orders)
    for event_type in ("call", "email", "meeting"):
        assert {e["direction"] for e in events if e["event_type"] == event_type} == {"inbound", "outbound"}
    offsets = Counter(e["occurred_at"][-6:] if not e["occurred_at"].endswith("Z") else "Z" for e in events)
    assert {"+01:00", "+02:00", "Z"} <= set(offsets)
    assert any("pbx_queue" in e for e in events), "some producers send fields the contract does not know"


def test_seasonal_dips_in_summer_and_at_christmas(history: History) -> None:
    per_day = Counter(parse_timestamp(e["occurred_at"]).date() for e in history.events)

    def weekday_mean(first: date, last: date) -> float:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        days = [d for d in days if d.weekday() < 5]
        return sum(per_day[d] for d in days) / len(days)

    normal = weekday_mean(date(2025, 9, 1), date(2025, 11, 30))
    assert weekday_mean(date(2025, 7, 8), date(2025, 7, 31)) < 0.7 * normal
    assert weekday_mean(date(2025, 12, 20), date(2025, 12, 31)) < 0.5 * normal


def test_volume_knobs(tmp_path: Path) -> None:
    base = generate(tmp_path / "base", customers=80, start="2025-01-01", end="2025-06-30", seed=3)
    double = generate(tmp_path / "double", customers=80, start="2025-01-01", end="2025-06-30", seed=3,
                      events_per_customer_month=9.4)
    assert 1.6 < double.valid_events / base.valid_events < 2.4
    target = generate(tmp_path / "target", start="2025-01-01", end="2025-06-30", seed=3, target_events=15_000)
    assert 0.8 * 15_000 <= target.valid_events <= 1.2 * 15_000


def test_loyal_customers_rough_patches_bring_friction_but_not_silence(history: History) -> None:
    patched = [c for c in history.truth["customers"] if c["rough_patch_start"]]
    assert patched and not any(c["churns"] for c in patched)
    assert history.truth["counts"]["rough_patches"] == len(patched)
    inside = {"days": 0, "dialogue": 0, "friction": 0, "events": 0}
    outside = dict(inside)
    for c in patched:
        first, end = date.fromisoformat(c["rough_patch_start"]), date.fromisoformat(c["rough_patch_end"])
        active_from = date.fromisoformat(c["added_at"]) if c["added_at"] else START
        active_to = date.fromisoformat(c["deleted_at"]) if c["deleted"] else END + timedelta(days=1)
        inside["days"] += (end - first).days
        outside["days"] += (active_to - active_from).days - (end - first).days
        for occurred, record in history.by_customer[c["customer_id"]]:
            side = inside if first <= occurred.date() < end else outside
            side["dialogue"] += _is_dialogue(record)
            side["friction"] += _is_friction(record)
            side["events"] += 1
    assert inside["friction"] / inside["events"] > 1.3 * outside["friction"] / outside["events"], (inside, outside)
    assert inside["dialogue"] / inside["days"] > 0.7 * outside["dialogue"] / outside["days"], (inside, outside)


def test_default_history_is_the_18_months_up_to_today(tmp_path: Path) -> None:
    before = datetime.now(timezone.utc).date()
    summary = generate(tmp_path, customers=3)
    after = datetime.now(timezone.utc).date()
    assert summary.end in (before, after)
    months_back = (summary.end.year * 12 + summary.end.month) - (summary.start.year * 12 + summary.start.month)
    assert months_back == 18 and summary.start.day <= summary.end.day
    truth = json.loads(summary.ground_truth_file.read_text(encoding="utf-8"))["generator"]
    assert (truth["start"], truth["end"], truth["seed"]) == (summary.start.isoformat(), summary.end.isoformat(), 42)


def _loyalty(*args: str) -> subprocess.CompletedProcess:
    loyalty = Path(sys.executable).with_name("loyalty")
    return subprocess.run([str(loyalty), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": f"{loyalty.parent}:{os.environ.get('PATH', '')}"})


def test_cli_writes_to_the_data_dir_and_reports(data_dir: Path) -> None:
    done = _loyalty("generate", "--customers", "40", "--start", "2025-01-01", "--end", "2025-03-31",
                    "--seed", "9")
    assert done.returncode == 0, done.stderr
    out = data_dir / "generated"
    truth = json.loads((out / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
    assert truth["generator"]["seed"] == 9 and len(truth["customers"]) == 40
    assert f"{truth['counts']['valid_events']:,} valid events" in done.stdout
    assert "generate: 100.0% of the history" in done.stderr

    bad_date = _loyalty("generate", "--start", "2025-13-01")
    assert bad_date.returncode == 2 and "is not a date" in bad_date.stderr
    reversed_range = _loyalty("generate", "--start", "2025-02-01", "--end", "2025-01-01", "--out",
                              str(data_dir / "never"))
    assert reversed_range.returncode == 1
    assert reversed_range.stderr.strip().splitlines() == [
        "loyalty generate: error: end 2025-01-01 is before start 2025-02-01"]
