"""``loyalty web``: the account managers' web app; ``loyalty web link EMAIL``: a sign-in link."""

from __future__ import annotations

import argparse
import sys

from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import example, positive_float


def cmd_web(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.web import serve

    settings = load_settings()
    host, port = args.host or settings.web_host, args.port or settings.web_port
    print(f"Loyalty Monitor web app on http://{host}:{port}, reading the {settings.dbt_target} warehouse "
          "(sign in with a link from `loyalty web link EMAIL`)", flush=True)
    if host in ("0.0.0.0", "::", ""):
        print("note: the web app listens on every network interface: put it behind TLS (docs/web.md)",
              file=sys.stderr)
    serve(settings, host, port)
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import access as auth

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.web import queries

    settings = load_settings()
    # `loyalty web --port 8051 link ...`: the link leads to the app those options start
    # (a web_base_url, where users reach it from outside, still wins)
    listen = {k: v for k, v in (("web_host", args.host), ("web_port", args.port)) if v}
    if listen:
        settings = settings.replace(**listen)
    email = auth.normalise_email(args.email)
    if "@" not in email.strip("@"):  # people are known by their e-mail address (dim_customers, the roles)
        raise ValueError(f"{args.email!r} is not an e-mail address: give the person's, e.g. anna@example.com")
    if auth.role_of(settings, email) == "manager":
        try:
            with queries.reader(settings) as con:
                known = queries.known_person(con, email)
        except Exception:  # noqa: BLE001 - no warehouse yet: the link may still be wanted
            known = True
        if not known:
            print(f"warning: {email} manages no customer in the published warehouse and has no role "
                  f"(web_leadership_emails, data_engineer_emails): the link shows nothing", file=sys.stderr)
    print(auth.sign_in_link(settings, email, args.days))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="the account managers' web app: my customers, one customer, my queue",
                       **example("loyalty web --port 8050   # then: loyalty web link anna@example.com"))
    p.add_argument("--host", help="address to listen on (default LOYALTY_WEB_HOST or 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="port (default LOYALTY_WEB_PORT or 8050)")
    p.set_defaults(func=cmd_web)
    actions = p.add_subparsers(dest="web_action", metavar="ACTION")
    q = actions.add_parser("link", help="print a signed sign-in link for an account manager (or leader)",
                           **example("loyalty web link anna@example.com --days 7"))
    q.add_argument("email")
    q.add_argument("--days", type=positive_float, default=None, help="how long the link lasts (default LOYALTY_WEB_LINK_DAYS, 14)")
    q.set_defaults(func=cmd_link)
