"""Sales opportunities in the generated history (contract 1.1), with a planted optimism per salesperson.

Article 004 (DOMAIN.md, "Forecast honesty"): 80 % of salespeople base their forecast probabilities
on gut feeling, and salespeople are optimistic by nature. This module gives the generator a sales
pipeline whose truth is known, so the forecast audit can be checked against it:

- **Deals.** Each customer opens deals at its segment's pace (``DEALS_PER_YEAR`` x ``rate``; fewer
  while it drifts toward churn). A deal has a hidden **true win probability** ``p``: Beta(2, 4) when it
  is created (a third of deals are won), and at every later update ``p`` moves to a draw from
  Beta(c p, c (1 - p)) with c = ``CONCENTRATION``. That is a martingale (the expected next ``p`` is
  today's), and the outcome is drawn from the last ``p``; so whatever was known at any update,
  P(won | p then) = p. A stated probability can therefore be judged against the outcome, forecast by
  forecast, without any bias from when the deal closed.
- **Stages** follow the true probability (``STAGES``: qualification below 0.2, proposal below 0.45,
  negotiation below 0.7, commit): the stage is honest, so a manager's own win rate per stage is a
  fair yardstick for the pipeline.
- **The salesperson's probability** is ``clip(p + optimism + N(0, STATED_NOISE))`` rounded to 5 %
  and kept within 5-95 %, with ``optimism`` planted per account manager (``MANAGER_OPTIMISM``: some
  near zero, some +0.15 to +0.25, one slightly pessimistic).
- **Slipped close dates.** Each deal has an expected close date 30-120 days out; when it comes near,
  the deal slips (a new expected date 14-60 days later) with the manager's ``MANAGER_SLIP_SHARE``,
  at most three times; otherwise it closes within days of it. Slipping does not change the odds.
- **Events**: one ``opportunity`` event when a deal is created, at every update (every 14-42 days)
  and slip, and when it closes (won with its final amount, or lost). Business days, business hours in
  the customer's time zone, off holidays; the same share of re-sends and late events as the other
  touches. Nothing happens after a customer churned or was deleted: its deals stay open (stale).

It draws from its own random stream (seeded from the generator's seed), so the other touches of a
history are exactly those of a history without opportunities; ``rate = 0`` writes none.
The truth (per manager: planted optimism, slip share, and the optimism realised on the deals that
closed) goes to ground_truth.json under ``opportunities``.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from typing import Any, Callable

#: Stages by the deal's true win probability: (name, lowest probability).
STAGES = (("qualification", 0.0), ("proposal", 0.2), ("negotiation", 0.45), ("commit", 0.7))
#: Planted optimism (stated minus true probability, before rounding and clipping), per account
#: manager in generator.ACCOUNT_MANAGERS order (AM01 .. AM12).
MANAGER_OPTIMISM = (0.0, 0.20, 0.05, 0.15, -0.05, 0.25, 0.10, 0.02, 0.18, 0.0, 0.22, 0.08)
#: Share of a manager's deals whose expected close date slips when it comes near (each time).
MANAGER_SLIP_SHARE = (0.2, 0.45, 0.25, 0.35, 0.15, 0.5, 0.3, 0.2, 0.4, 0.25, 0.45, 0.3)
DEALS_PER_YEAR = {"key": 3.0, "growth": 1.5, "standard": 0.6}
START_PROBABILITY = (2.0, 4.0)   # Beta(a, b) of a new deal's true win probability
CONCENTRATION = 8.0              # an update draws p from Beta(c p, c (1 - p))
STATED_NOISE = 0.06              # gut feeling: the stated probability's noise (standard deviation)
PROBABILITY_STEP = 0.05          # stated probabilities are round numbers
STATED_RANGE = (0.05, 0.95)
CLOSE_IN_DAYS = (30, 120)        # expected close date at creation: days ahead
UPDATE_GAP_DAYS = (14.0, 42.0)
SLIP_DAYS = (14, 60)
MAX_SLIPS = 3
DEAL_ORDERS = 4.0                # a deal's median value in orders of the customer
WARM_UP_DAYS = 120               # deals are simulated from this long before the history starts
#: Opportunity events per customer-month at rate 1 on the default segment mix (measured), for
#: picking a number of customers from ``--target-events``.
EVENTS_PER_CUSTOMER_MONTH = 0.44
_SEED_SALT = 0x0B0E7A1E


def stage_of(p: float) -> str:
    name = STAGES[0][0]
    for stage, low in STAGES:
        if p >= low:
            name = stage
    return name


class OpportunityStream:
    """The history's opportunity events as one stream of lines in send order, made lazily.

    ``next_send()`` is the send time of the next line (seconds from the history's first day, 00:00
    UTC, like the generator's other touches), ``pop()`` returns it. Memory follows the deals in
    flight, not the history. ``counts`` and ``truth()`` describe what was written.
    """

    def __init__(self, portfolio: list, cal: Any, managers: tuple, manager_of: Callable[[Any, int], int],
                 *, seed: int, rate: float, late_rate: float, duplicate_rate: float,
                 churn_shape: str) -> None:
        self.portfolio = portfolio
        self.cal = cal
        self.managers = managers
        self.manager_of = manager_of
        self.rate = rate
        self.late_rate = late_rate
        self.duplicate_rate = duplicate_rate
        self.sudden = churn_shape == "sudden"
        self.rng = random.Random(seed ^ _SEED_SALT)
        prefix = f"{random.Random(seed ^ _SEED_SALT ^ 0x5EED).getrandbits(64):016x}"
        self.id_prefix = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[13:16]}-9{prefix[1:4]}-"
        self.counter = 0
        self.deal_counter = 0
        self.seq = 0
        self.heap: list[tuple] = []   # (send or start time, seq, kind, data)
        self.horizon = cal.days
        self.counts = {"valid_events": 0, "duplicates": 0, "late_events": 0, "deals": 0}
        self.by_manager: dict[str, dict[str, float]] = {
            m[0]: {"deals": 0, "closed_deals": 0, "won": 0, "forecasts": 0, "sum_stated": 0.0,
                   "sum_true": 0.0, "slipped_closed_deals": 0} for m in managers}
        self.by_stage: dict[str, dict[str, float]] = {
            s: {"forecasts": 0, "sum_true": 0.0, "won": 0} for s, _ in STAGES}
        if rate > 0:
            for c in portfolio:
                start = c.added_day if c.added_day else -WARM_UP_DAYS
                first = start + self._gap(c)
                self._push(first * 86400, "create", (c.idx, first))

    # --- the stream ---------------------------------------------------------------------------
    def next_send(self) -> float:
        heap = self.heap
        while heap and heap[0][2] != "line":
            _, _, kind, data = heapq.heappop(heap)
            idx, day = data
            self._create(self.portfolio[idx], day)
        return heap[0][0] if heap else math.inf

    def pop(self) -> str:
        return heapq.heappop(self.heap)[3]

    def drain_until(self, until: float, pending: list, out: list[str]) -> None:
        """Move the lines sent up to ``until`` (inclusive) from this stream and from the generator's
        ``pending`` heap (late and re-sent lines: (send, seq, line)) to ``out``, in send order."""
        while True:
            mine = self.next_send()
            theirs = pending[0][0] if pending else math.inf
            if min(mine, theirs) > until or (mine == theirs == math.inf):
                return
            if mine < theirs:
                out.append(self.pop())
            else:
                out.append(heapq.heappop(pending)[2])

    # --- simulation ---------------------------------------------------------------------------
    def _push(self, key: float, kind: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (key, self.seq, kind, data))

    def _gap(self, c: Any) -> float:
        mean = 365.0 / (DEALS_PER_YEAR[c.segment] * self.rate)
        return -mean * math.log(1.0 - self.rng.random())

    def _drift(self, c: Any, day: int) -> float:
        if c.drift_start is None or day < c.drift_start:
            return 0.0
        if self.sudden:
            return 1.0
        return min(1.0, (day - c.drift_start) / max(1, c.churn_day - c.drift_start))

    def _business_day(self, day: float, c: Any) -> int | None:
        """The first business day at or after ``day`` that is no holiday for the salesperson."""
        cal, rand = self.cal, self.rng.random
        d = int(math.floor(day))
        while True:
            if d >= min(self.horizon, c.end_day):
                return None
            if d >= -1 and cal.weekday[d + 1] >= 5:
                d += 7 - cal.weekday[d + 1]
                continue
            thin = cal.thinning[d + 1] if d >= -1 else 0.0
            if thin and rand() < thin:
                d += 1
                continue
            return d

    def _create(self, c: Any, day: float) -> None:
        rng = self.rng
        nxt = day + self._gap(c)
        if nxt < min(self.horizon, c.end_day):
            self._push(nxt * 86400, "create", (c.idx, nxt))
        if rng.random() < self._drift(c, int(day)):
            return  # a drifting customer asks for fewer offers
        d = self._business_day(day, c)
        if d is None:
            return
        self.deal_counter += 1
        manager = self.manager_of(c, d)
        manager_id = self.managers[manager][0]
        optimism = MANAGER_OPTIMISM[manager % len(MANAGER_OPTIMISM)]
        slip_share = MANAGER_SLIP_SHARE[manager % len(MANAGER_SLIP_SHARE)]
        deal = {"opportunity_id": f"OPP-{self.deal_counter:07d}", "account_manager_id": manager_id,
                "amount": round(max(100.0, c.order_amount * DEAL_ORDERS * math.exp(rng.gauss(0, 0.5))), 2)}
        p = rng.betavariate(*START_PROBABILITY)
        expected = d + rng.randint(*CLOSE_IN_DAYS)
        events: list[tuple[int, dict, float | None]] = []   # (day, payload, true p of an open state)

        def state(when: int) -> None:
            stated = round((p + optimism + rng.gauss(0, STATED_NOISE)) / PROBABILITY_STEP) * PROBABILITY_STEP
            stated = round(min(STATED_RANGE[1], max(STATED_RANGE[0], stated)), 2)
            events.append((when, {"status": "open", "pipeline_stage": stage_of(p), "stated_probability": stated,
                                  "expected_close_date": self.cal.date_of(expected).isoformat()}, p))

        def evolve(q: float) -> float:
            q = min(max(q, 1e-6), 1 - 1e-6)
            return rng.betavariate(CONCENTRATION * q, CONCENTRATION * (1 - q))

        state(d)
        slips = 0
        when: int | None = d
        closed = None
        while True:
            step = when + rng.uniform(*UPDATE_GAP_DAYS)
            if step < expected - 5:
                when = self._business_day(step, c)
                if when is None:
                    break
                p = evolve(p)
                state(when)
                continue
            if slips < MAX_SLIPS and rng.random() < slip_share:
                slips += 1
                when = self._business_day(max(when + 1, expected - rng.randint(0, 10)), c)
                if when is None:
                    break
                p = evolve(p)
                expected += rng.randint(*SLIP_DAYS)
                state(when)
                continue
            when = self._business_day(max(when + 1, expected + rng.randint(-7, 3)), c)
            if when is None:
                break
            won = rng.random() < p
            closed = (when, won)
            payload = {"status": "won" if won else "lost", "pipeline_stage": "closed",
                       "closed_on": None}
            if won:
                payload["final_amount"] = round(deal["amount"] * rng.uniform(0.85, 1.05), 2)
            events.append((when, payload, None))
            break

        self._account(manager_id, events, closed, slips)
        for when, payload, _ in events:
            if when >= 0:
                self._emit(c, when, deal, payload)

    def _account(self, manager_id: str, events: list, closed: tuple | None, slips: int) -> None:
        """The truth: forecasts (open states inside the history) of deals that closed inside it."""
        visible = [e for e in events if e[0] >= 0]
        if not visible:
            return
        self.counts["deals"] += 1
        stats = self.by_manager[manager_id]
        stats["deals"] += 1
        if closed is None:
            return
        won = closed[1]
        stats["closed_deals"] += 1
        stats["won"] += won
        stats["slipped_closed_deals"] += slips > 0
        for _, payload, p in visible:
            if p is None:
                continue
            stats["forecasts"] += 1
            stats["sum_stated"] += payload["stated_probability"]
            stats["sum_true"] += p
            stage = self.by_stage[payload["pipeline_stage"]]
            stage["forecasts"] += 1
            stage["sum_true"] += p
            stage["won"] += won

    def _emit(self, c: Any, day: int, deal: dict, payload: dict) -> None:
        rng, cal = self.rng, self.cal
        second = 27000 + int(rng.random() * 36000)  # 07:30-17:30 local
        dst = cal.dst[day + 1]
        utc = day * 86400 + second - cal.offset_s[c.tz][dst]
        body = {"opportunity_id": deal["opportunity_id"], "account_manager_id": deal["account_manager_id"],
                "status": payload["status"], "pipeline_stage": payload["pipeline_stage"]}
        if payload["status"] == "open":
            body["stated_probability"] = payload["stated_probability"]
        body["amount"] = deal["amount"]
        body["currency"] = c.currency
        if payload["status"] == "open":
            body["expected_close_date"] = payload["expected_close_date"]
        else:
            if "final_amount" in payload:
                body["final_amount"] = payload["final_amount"]
            body["closed_on"] = cal.iso[day + 1]
        self.counter += 1
        event_id = f"{self.id_prefix}{self.counter:012x}"
        r = rng.random()  # the buyer the deal is with (the CRM's primary contact)
        buyer = "decision_maker" if r < 0.7 else ("executive" if r < 0.85 else "user")
        record = {"schema_version": 1, "event_id": event_id, "event_type": "opportunity",
                  "occurred_at": f"{cal.iso[day + 1]}T{cal.clock[second]}{cal.offset_str[c.tz][dst]}",
                  "customer_id": c.customer_id, "department": "sales",
                  "employee_id": deal["account_manager_id"], "contact_role": buyer, "source": "crm",
                  "payload": body}
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        self.counts["valid_events"] += 1
        send = utc
        if rng.random() < self.late_rate:
            self.counts["late_events"] += 1
            send = utc + 86400 + int(rng.random() * 9 * 86400)
        self._push(send, "line", line)
        if rng.random() < self.duplicate_rate:
            self.counts["duplicates"] += 1
            self._push(send + 1 + int(rng.random() * 6 * 3600), "line", line)

    # --- ground truth ---------------------------------------------------------------------------
    def truth(self) -> dict:
        managers = {}
        for manager_id, s in self.by_manager.items():
            n = s["forecasts"]
            managers[manager_id] = {
                "optimism_bias": MANAGER_OPTIMISM[[m[0] for m in self.managers].index(manager_id)
                                                  % len(MANAGER_OPTIMISM)],
                "slip_share": MANAGER_SLIP_SHARE[[m[0] for m in self.managers].index(manager_id)
                                                 % len(MANAGER_SLIP_SHARE)],
                "deals": s["deals"], "closed_deals": s["closed_deals"], "won": s["won"],
                "slipped_closed_deals": s["slipped_closed_deals"], "forecasts": n,
                "mean_stated": round(s["sum_stated"] / n, 6) if n else None,
                "mean_true_probability": round(s["sum_true"] / n, 6) if n else None,
                "realised_optimism": round((s["sum_stated"] - s["sum_true"]) / n, 6) if n else None,
            }
        stages = {name: {"low": low, "forecasts": s["forecasts"],
                         "mean_true_probability": round(s["sum_true"] / s["forecasts"], 6) if s["forecasts"] else None,
                         "win_rate": round(s["won"] / s["forecasts"], 6) if s["forecasts"] else None}
                  for (name, low), s in zip(STAGES, self.by_stage.values())}
        return {
            "rate": self.rate,
            "deals_per_year": {seg: n * self.rate for seg, n in DEALS_PER_YEAR.items()},
            "start_probability": f"Beta{START_PROBABILITY}",
            "update": f"p' ~ Beta({CONCENTRATION:g} p, {CONCENTRATION:g} (1 - p)) at each update (a martingale); "
                      "the outcome is drawn from the last p, so P(won | p at any update) = p",
            "stated_probability": f"clip(round((p + optimism_bias + N(0, {STATED_NOISE})) / {PROBABILITY_STEP}) "
                                  f"* {PROBABILITY_STEP}, {STATED_RANGE[0]}, {STATED_RANGE[1]})",
            "stage_by_true_probability": {name: low for name, low in STAGES},
            "close_in_days": list(CLOSE_IN_DAYS), "update_gap_days": list(UPDATE_GAP_DAYS),
            "slip_days": list(SLIP_DAYS), "max_slips": MAX_SLIPS,
            "note": ("managers: realised_optimism = mean(stated - true p) over the open states (forecasts) "
                     "inside the history of the deals that closed inside it, what an audit of those deals "
                     "can recover; optimism_bias is the planted value before rounding and clipping"),
            "managers": managers,
            "stages": stages,
            "counts": dict(self.counts),
        }
