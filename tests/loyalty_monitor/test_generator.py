"""The touchpoint history generator: determinism, contract, exact noise counts, realism of the drift."""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from loyalty_core.contract import (
    CONTACT_ROLES,
    DEPARTMENTS,
    DUNNING_STAGES,
    EVENT_TYPES,
    SEVERITIES,
    decode,
    parse_timestamp,
)
from loyalty_monitor.generator import (
    CUSTOMERS_FILE,
    DRIFT_RATE_AT_CHURN,
    GENERATOR_VERSION,
    GROUND_TRUTH_FILE,
    MALFORMED_KINDS,
    MEAN_GAP_DAYS,
    ORDERS_STOP_AT_DRIFT,
    PROCESS_NAMES,
    TOUCHPOINTS_FILE,
    easter_sunday,
    generate,
    seasonal_thinning,
)

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


# --- histories of other shapes ---------------------------------------------------------------------

# sha256 of the files the generator wrote for DEFAULT_CASE before churn_shape, seasonality and
# segment_mix existed (computed with the original generator.py): the defaults must not change them.
# One deliberate change since: repeated customer names made unique (2026-12-06), which changed
# names only (customers file), no random draw and no touchpoint.
DEFAULT_CASE = dict(customers=40, start="2025-01-01", end="2025-06-30", seed=3)
DEFAULT_CASE_SHA256 = {
    TOUCHPOINTS_FILE: "f094d1fa7fc3c012c3bf1255f462a0f06b6aeb73f5ddd4a9f0cd1b41f6dc77d0",
    CUSTOMERS_FILE: "b8b4a7e9daf30cd11b5885311784f851cba93cab2fd246853aae24312108c0c4",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _without_opportunities(path: Path) -> str:
    """sha256 of the file without its opportunity lines (contract 1.1, their own random stream)."""
    lines = [line for line in path.read_bytes().splitlines(keepends=True)
             if b'"event_type":"opportunity"' not in line]
    return hashlib.sha256(b"".join(lines)).hexdigest()


def test_default_options_leave_the_history_unchanged(tmp_path: Path) -> None:
    generate(tmp_path / "implicit", **DEFAULT_CASE)
    generate(tmp_path / "explicit", **DEFAULT_CASE, churn_shape="fade", seasonality=1.0, segment_mix=None)
    generate(tmp_path / "no_opportunities", **DEFAULT_CASE, opportunity_rate=0)
    for name, digest in DEFAULT_CASE_SHA256.items():
        assert _without_opportunities(tmp_path / "implicit" / name) == digest, name
        assert _without_opportunities(tmp_path / "explicit" / name) == digest, name
        assert _sha256(tmp_path / "no_opportunities" / name) == digest, name
    assert b'"event_type":"opportunity"' in (tmp_path / "implicit" / TOUCHPOINTS_FILE).read_bytes()


SHAPE_START, SHAPE_END = date(2024, 1, 1), date(2025, 12, 31)
# no malformed lines: a malformed copy (e.g. turned into an order) would count as a touch here
SHAPE_CASE = dict(customers=300, start=SHAPE_START, end=SHAPE_END, seed=21, churn_share=0.4,
                  malformed_rate=0.0)


class ShapedHistory:
    """A history generated without malformed lines, read with plain JSON for speed."""

    def __init__(self, out: Path) -> None:
        self.truth = json.loads((out / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
        assert self.truth["counts"]["malformed"] == 0
        events: dict[str, dict[str, tuple[date, dict]]] = defaultdict(dict)
        for raw in (out / TOUCHPOINTS_FILE).read_bytes().splitlines():
            record = json.loads(raw)
            day = parse_timestamp(record["occurred_at"]).date()  # the local day (orders: UTC)
            events[record["customer_id"]][record["event_id"]] = (day, record)  # re-sent once
        self.events = {customer: list(by_id.values()) for customer, by_id in events.items()}

    def events_list(self) -> list[dict]:
        return [record for events in self.events.values() for _, record in events]

    def churners(self) -> list[dict]:
        """Churners whose whole drift and a 90-day baseline before it lie in the history."""
        return [c for c in self.truth["customers"]
                if c["churns"] and date.fromisoformat(c["churn_date"]) <= SHAPE_END
                and date.fromisoformat(c["drift_start"]) >= SHAPE_START + timedelta(days=120)]


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[str, ShapedHistory] = {}

    def get(shape: str) -> ShapedHistory:
        if shape not in cache:
            out = tmp_path_factory.mktemp(f"shape_{shape}")
            generate(out, **SHAPE_CASE, churn_shape=shape)
            cache[shape] = ShapedHistory(out)
        return cache[shape]
    return get


def _is_sales_dialogue(record: dict) -> bool:
    return record["department"] == "sales" and record["event_type"] in DIALOGUE_TYPES


def _is_top(record: dict) -> bool:
    return record["contact_role"] in ("executive", "decision_maker")


def _drift_profile(history: ShapedHistory, first_days: int = 14) -> dict:
    """Rates per churner-day before the drift (90 days) and in it, over all churners."""
    p = Counter()
    for c in history.churners():
        drift_start = date.fromisoformat(c["drift_start"])
        churn = date.fromisoformat(c["churn_date"])
        length = (churn - drift_start).days
        early = min(first_days, length)
        p["days_before"] += 90
        p["days_drift"] += length
        p["days_early"] += early
        for day, record in history.events.get(c["customer_id"], []):
            assert day < churn, f"{c['customer_id']} acts on {day}, after churning on {churn}"
            if drift_start - timedelta(days=90) <= day < drift_start:
                side = "before"
            elif drift_start <= day:
                side = "drift"
                p["early_sales"] += (day - drift_start).days < early and _is_sales_dialogue(record)
                if record["event_type"] == "order":
                    p["order_late"] += (day - drift_start).days / length > ORDERS_STOP_AT_DRIFT
                    p["order_after_80"] += (day - drift_start).days / length > 0.8
                    p["order_first_day_on"] += 1
                if (day - drift_start).days >= 2 * length / 3:
                    p["late_third_sales"] += _is_sales_dialogue(record)
            else:
                continue
            p[f"{side}_events"] += 1
            p[f"{side}_sales"] += _is_sales_dialogue(record)
            p[f"{side}_sales_top"] += _is_sales_dialogue(record) and _is_top(record)
            p[f"{side}_management"] += record["department"] == "management"
            p[f"{side}_friction"] += _is_friction(record)
    p["healthy_sales_rate"] = p["before_sales"] / p["days_before"]
    return p


def test_sudden_churners_stop_at_once(shaped) -> None:
    history = shaped("sudden")
    churners = history.churners()
    assert len(churners) >= 40
    lengths = [(date.fromisoformat(c["churn_date"]) - date.fromisoformat(c["drift_start"])).days
               for c in history.truth["customers"] if c["churns"]]
    assert min(lengths) >= 7 and max(lengths) <= 21
    p = _drift_profile(history)
    assert p["before_sales"] > 300
    early_rate = p["early_sales"] / p["days_early"]
    # the rates jump to their full-drift level (sales dialogue 0.2) on the first drift day
    assert early_rate < 0.5 * p["healthy_sales_rate"], (early_rate, p["healthy_sales_rate"])
    assert p["order_first_day_on"] == 0, "orders stop at once"
    assert p["drift_friction"] / p["drift_events"] > 2 * p["before_friction"] / p["before_events"]
    assert history.truth["generator"]["drift_progress"] == "step"
    assert history.truth["generator"]["orders_stop_at_drift"] == 0.0


def test_fade_and_slow_churners_drift_gradually(shaped) -> None:
    slow = shaped("slow")
    lengths = Counter()
    for c in slow.truth["customers"]:
        if c["churns"]:
            length = (date.fromisoformat(c["churn_date"]) - date.fromisoformat(c["drift_start"])).days
            assert 150 <= length <= 210, c
            lengths[c["segment"]] += 1
    assert set(lengths) == {"key", "growth", "standard"}, "every segment fades slowly"
    for shape in ("fade", "slow"):
        p = _drift_profile(shaped(shape))
        healthy = p["healthy_sales_rate"]
        # linear: the first two weeks barely differ, the last third of the drift is far quieter
        assert p["early_sales"] / p["days_early"] > 0.7 * healthy, shape
        late_third_days = p["days_drift"] / 3
        assert p["late_third_sales"] / late_third_days < 0.6 * healthy, shape
        assert p["order_late"] == 0, f"{shape}: orders stop at {ORDERS_STOP_AT_DRIFT} of the drift"


def test_champion_leaving_narrows_the_contacts_but_the_dialogue_goes_on(shaped) -> None:
    history = shaped("champion")
    assert len(history.churners()) >= 40
    for c in history.truth["customers"]:
        if c["churns"]:
            length = (date.fromisoformat(c["churn_date"]) - date.fromisoformat(c["drift_start"])).days
            assert 90 <= length <= 180, c
    p = _drift_profile(history)
    top_before = p["before_sales_top"] / p["before_sales"]
    top_drift = p["drift_sales_top"] / p["drift_sales"]
    assert top_before > 0.35 and top_drift < 0.2 * top_before, (top_before, top_drift)
    # at once, not gradually: already in the first two weeks nobody from the top is reached
    early_top = sum(1 for c in history.churners() for day, r in history.events.get(c["customer_id"], [])
                    if 0 <= (day - date.fromisoformat(c["drift_start"])).days < 14
                    and _is_sales_dialogue(r) and _is_top(r))
    assert early_top <= 0.1 * p["early_sales"], (early_top, p["early_sales"])
    assert p["before_management"] > 0 and p["drift_management"] == 0, "executive meetings stop"
    drift_rate = p["drift_sales"] / p["days_drift"]
    assert drift_rate > 0.4 * p["healthy_sales_rate"], (drift_rate, p["healthy_sales_rate"])
    # orders go on past the default stop (60 %) and end at 80 % of the drift
    assert p["order_late"] > 0 and p["order_after_80"] == 0
    # friction rises, but only mildly
    before = p["before_friction"] / p["before_events"]
    assert before < p["drift_friction"] / p["drift_events"] < 2.5 * before
    generator = history.truth["generator"]
    assert generator["drift_rate_at_churn"]["management"] == 0.0
    assert generator["drift_rate_at_churn"]["sales"] == 0.6
    assert generator["orders_stop_at_drift"] == 0.8


def test_seasonal_thinning_keeps_its_default_and_deepens_with_seasonality() -> None:
    # the default dips, as before the option existed
    expected = {date(2025, 12, 24): 0.75, date(2026, 1, 2): 0.75, date(2025, 7, 15): 0.6,
                date(2025, 7, 3): 0.3, date(2025, 8, 10): 0.3, date(2025, 8, 11): 0.0,
                date(2025, 4, 23): 0.0, date(2025, 10, 1): 0.0}
    for day, thinning in expected.items():
        assert seasonal_thinning(day) == thinning, day
        assert seasonal_thinning(day, 1.0) == thinning, day
        assert seasonal_thinning(day, 0.0) == 0.0, day
    assert [easter_sunday(y) for y in (2000, 2019, 2024, 2025, 2026)] == [
        date(2000, 4, 23), date(2019, 4, 21), date(2024, 3, 31), date(2025, 4, 20), date(2026, 4, 5)]
    # seasonality 2: deeper dips, plus all of August and the seven days after Easter Monday (base 0.5)
    assert seasonal_thinning(date(2025, 7, 15), 2.0) == pytest.approx(1 - 0.4 ** 2)
    assert seasonal_thinning(date(2025, 8, 20), 2.0) == pytest.approx(0.75)
    assert seasonal_thinning(date(2025, 4, 21), 2.0) == 0.0            # Easter Monday itself
    assert seasonal_thinning(date(2025, 4, 22), 2.0) == pytest.approx(0.75)
    assert seasonal_thinning(date(2025, 4, 28), 2.0) == pytest.approx(0.75)
    assert seasonal_thinning(date(2025, 4, 29), 2.0) == 0.0
    assert seasonal_thinning(date(2024, 4, 5), 2.0) == pytest.approx(0.75)   # Easter 2024: 31 March
    assert seasonal_thinning(date(2025, 12, 24), 0.5) == pytest.approx(0.5)


def test_stronger_seasonality_deepens_the_august_dip(tmp_path: Path) -> None:
    ratios = {}
    for seasonality in (1.0, 2.0):
        out = tmp_path / str(seasonality)
        generate(out, customers=200, start="2025-01-01", end="2025-12-31", seed=4, seasonality=seasonality,
                 malformed_rate=0.0)
        per_day = Counter(parse_timestamp(r["occurred_at"]).date() for r in ShapedHistory(out).events_list())
        def weekday_mean(first: date, last: date) -> float:
            days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
            days = [d for d in days if d.weekday() < 5]
            return sum(per_day[d] for d in days) / len(days)
        ratios[seasonality] = (weekday_mean(date(2025, 8, 1), date(2025, 8, 31))
                               / weekday_mean(date(2025, 9, 1), date(2025, 11, 30)))
        assert json.loads((out / GROUND_TRUTH_FILE).read_text())["generator"]["seasonality"] == seasonality
    assert ratios[2.0] < 0.7 * ratios[1.0], ratios


def test_segment_mix_is_respected(tmp_path: Path) -> None:
    mix = {"key": 0.6, "growth": 0.3, "standard": 0.1}
    generate(tmp_path / "mix", customers=400, start="2025-01-01", end="2025-03-31", seed=8, segment_mix=mix)
    truth = json.loads((tmp_path / "mix" / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
    counts = Counter(c["segment"] for c in truth["customers"])
    for segment, share in mix.items():
        assert abs(counts[segment] / 400 - share) < 0.07, (segment, counts)
    assert truth["generator"]["segment_mix"] == pytest.approx(mix)
    # weights are normalised; segments left out get none
    generate(tmp_path / "key", customers=30, start="2025-01-01", end="2025-01-31", seed=8,
             segment_mix={"key": 2})
    truth = json.loads((tmp_path / "key" / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
    assert {c["segment"] for c in truth["customers"]} == {"key"}
    assert truth["generator"]["segment_mix"] == {"key": 1.0}
    for bad in ({"premium": 1.0}, {"key": -1.0, "growth": 2.0}, {"key": 0.0}):
        with pytest.raises(ValueError, match="segment_mix"):
            generate(tmp_path / "bad", customers=5, start="2025-01-01", end="2025-01-31", segment_mix=bad)
    with pytest.raises(ValueError, match="churn_shape"):
        generate(tmp_path / "bad", customers=5, start="2025-01-01", end="2025-01-31", churn_shape="abrupt")
    with pytest.raises(ValueError, match="seasonality"):
        generate(tmp_path / "bad", customers=5, start="2025-01-01", end="2025-01-31", seasonality=-1)


@pytest.mark.parametrize("shape", ["fade", "sudden", "slow", "champion"])
def test_ground_truth_carries_the_hidden_model(tmp_path: Path, shape: str) -> None:
    generate(tmp_path, customers=40, start="2025-01-01", end="2025-12-31", seed=5, churn_shape=shape,
             events_per_customer_month=9.4, seasonality=1.5)
    truth = json.loads((tmp_path / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
    generator = truth["generator"]
    assert generator["version"] == GENERATOR_VERSION
    assert (generator["churn_shape"], generator["seasonality"]) == (shape, 1.5)
    assert generator["segment_mix"] == pytest.approx({"key": 0.15, "growth": 0.30, "standard": 0.55})
    names = list(PROCESS_NAMES.values())
    assert names == ["sales", "reception", "service", "order", "dunning", "complaint", "survey",
                     "management", "other"]
    assert generator["mean_gap_days"] == {segment: {PROCESS_NAMES[p]: gap for p, gap in gaps.items()}
                                          for segment, gaps in MEAN_GAP_DAYS.items()}
    assert set(generator["drift_rate_at_churn"]) == set(names)
    if shape != "champion":
        assert generator["drift_rate_at_churn"] == {PROCESS_NAMES[p]: r for p, r in DRIFT_RATE_AT_CHURN.items()}
    assert generator["orders_stop_at_drift"] == {"fade": 0.6, "slow": 0.6, "sudden": 0.0, "champion": 0.8}[shape]
    assert generator["rough_patch_rate"] == 6.0
    assert generator["meeting_share"] == {"key": 0.2, "growth": 0.13, "standard": 0.07}
    assert generator["role_model"]["healthy_top_share"] == 0.5 and generator["role_model"]["top_share_in_drift"]
    intensity = generator["intensity"]
    assert intensity == pytest.approx(2.0)
    for c in truth["customers"]:
        assert c["rhythm"] > 0
        gaps = c["healthy_mean_gap_days"]
        assert list(gaps) == names
        for p, name in PROCESS_NAMES.items():
            assert gaps[name] == pytest.approx(MEAN_GAP_DAYS[c["segment"]][p] * c["rhythm"] / intensity,
                                               rel=1e-6, abs=1e-6), (c["customer_id"], name)


def test_cli_exposes_the_shape_options(data_dir: Path) -> None:
    done = _loyalty("generate", "--customers", "30", "--start", "2025-01-01", "--end", "2025-12-31",
                    "--seed", "4", "--churn-shape", "champion", "--seasonality", "2",
                    "--segment-mix", "key=0.6,growth=0.3,standard=0.1", "--churn-share", "0.3")
    assert done.returncode == 0, done.stderr
    generator = json.loads((data_dir / "generated" / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))["generator"]
    assert (generator["churn_shape"], generator["seasonality"]) == ("champion", 2.0)
    assert generator["segment_mix"] == pytest.approx({"key": 0.6, "growth": 0.3, "standard": 0.1})
    assert generator["rates"]["churn_share"] == 0.3
    for bad in (["--churn-shape", "abrupt"], ["--segment-mix", "premium=1"], ["--seasonality", "-1"]):
        failed = _loyalty("generate", "--customers", "3", *bad)
        assert failed.returncode == 2, (bad, failed.stderr)


def test_no_two_customers_share_a_name(tmp_path: Path) -> None:
    """An account manager must tell two alerts apart by the name: 500 customers drawn from a few
    surnames, trades and legal forms per country repeat names; a repeat takes a partner's surname."""
    generate(tmp_path, customers=500, start="2025-06-01", end="2025-12-31", seed=42)
    names: dict[str, set[str]] = {}
    for line in (tmp_path / CUSTOMERS_FILE).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("name"):
            names.setdefault(record["name"], set()).add(record["customer_id"])
    assert len(names) >= 500 and all(len(ids) == 1 for ids in names.values())
    assert any(" & " in name for name in names), "repeats were renamed, not left out"
