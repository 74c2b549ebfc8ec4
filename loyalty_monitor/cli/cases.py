"""``loyalty alerts ack|snooze|close|feedback CASE_ID``: case lifecycle events, for scripts.

They join the ``loyalty alerts`` command (defined in ``cli/pipeline.py``): each looks the case up
in the published warehouse, sends one contract-1.2 event to the ``case-events`` topic and waits
until the broker has it. The warehouse shows the new state after its next build.
"""

from __future__ import annotations

import argparse
import json

from loyalty_core.dates import cli_date
from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import example

_date = cli_date


def cmd_case_event(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import cases

    settings = load_settings()
    case = ({"case_id": args.case_id, "customer_id": args.customer} if args.customer
            else cases.find_case(settings, args.case_id))
    if case is None:
        # the command's own dependencies, loaded when it runs (cli/__init__.py)
        from loyalty_monitor import warehouse

        alert = warehouse.query(settings, "select alert_kind, rule from published.fct_churn_alerts where alert_id = ?",
                                [args.case_id])
        if alert and alert[0]["alert_kind"] != "risk_case":
            raise ValueError(f"alert {args.case_id!r} is an action-needed alert ({alert[0]['rule']}), not a "
                             "churn-risk case: only churn-risk cases (rules churn_risk, went_silent) are "
                             "acknowledged, snoozed, closed or judged")
        raise ValueError(f"no case {args.case_id!r} in the published warehouse (`loyalty alerts list` shows "
                         f"alert ids; a case's id is its alert's id)")
    actor = args.by or cases.default_actor()
    if args.action == "ack":
        event = cases.acknowledge(case, actor, note=args.note)
    elif args.action == "snooze":
        event = cases.snooze(case, actor, until=args.until, reason=args.reason)
    elif args.action == "close":
        event = cases.close(case, actor, outcome=args.outcome, note=args.note)
    else:
        event = cases.feedback(case, actor, verdict=args.verdict, comment=args.comment)
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from streaming import topics

    topics.probe(settings)
    cases.publish(settings, [event])
    if args.format == "json":
        print(json.dumps(event, indent=2, ensure_ascii=False))
    else:
        print(f"{event['event_type']} of case {event['case_id']} ({event['customer_id']}) sent to "
              f"{settings.topic_case_events} as event {event['event_id']}; the warehouse shows it after its next build")
    return 0


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def register(sub: argparse._SubParsersAction) -> None:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_core.contract import CLOSE_OUTCOMES, FEEDBACK_VERDICTS

    alerts = _subparsers(sub.choices["alerts"])

    def action(name: str, help_text: str, sample: str) -> argparse.ArgumentParser:
        p = alerts.add_parser(name, help=help_text, **example(f"loyalty alerts {name} {sample}"))
        p.add_argument("case_id", help="the case (its alert's id, as in `loyalty alerts list`)")
        p.add_argument("--by", help="who acts: your e-mail address (default cli:<user>)")
        p.add_argument("--customer", help="the case's customer id: skips looking the case up in the warehouse")
        p.add_argument("--format", choices=["text", "json"], default="text")
        p.set_defaults(func=cmd_case_event)
        return p

    p = action("ack", "acknowledge a churn-risk case: you are on it",
               "e3b0c44298fc1c149afbf4c8996fb924 --by anna@example.com --note 'calling Friday'")
    p.add_argument("--note")
    p = action("snooze", "snooze a case: no alert about it before --until",
               "e3b0c44298fc1c149afbf4c8996fb924 --until 2026-11-15 --reason 'customer on leave'")
    p.add_argument("--until", type=_date, required=True, help="the first day it may alert again (YYYY-MM-DD)")
    p.add_argument("--reason", required=True)
    p = action("close", "close a case with its outcome; it does not reopen until the customer has recovered",
               "e3b0c44298fc1c149afbf4c8996fb924 --outcome saved --note 'renewed for two years'")
    p.add_argument("--outcome", choices=CLOSE_OUTCOMES, required=True)
    p.add_argument("--note")
    p = action("feedback", "say whether the alert was right",
               "e3b0c44298fc1c149afbf4c8996fb924 --verdict real_risk --comment 'right on time'")
    p.add_argument("--verdict", choices=FEEDBACK_VERDICTS, required=True)
    p.add_argument("--comment")
