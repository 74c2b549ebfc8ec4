"""The account managers' web app: Starlette + Jinja2, server-rendered, no JavaScript (docs/web.md).

Pages read the ``published`` marts through a read-only connection per request
(``web/queries.py``); the queue's buttons publish case events to Kafka (``loyalty_monitor.cases``)
and never write the warehouse: the next pipeline run lands and builds them. Every text from data
is escaped by Jinja2's autoescape; the Content-Security-Policy allows no script at all.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from loyalty_core.contract import CLOSE_OUTCOMES, FEEDBACK_VERDICTS, parse_timestamp
from loyalty_core.settings import Settings
from loyalty_monitor import access as auth
from loyalty_monitor import cases as case_events
from loyalty_monitor.alerting.messages import drivers_list, model_closed_words
from loyalty_monitor.web import queries, svg

TEMPLATES = Path(__file__).with_name("templates")
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    # the sign-in token in /login must not leak to other sites ("no-referrer" would make browsers
    # send "Origin: null" with the forms, which the origin check refuses)
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
ACTIONS = ("acknowledge", "snooze", "close", "feedback")
SORTS = {
    "name": lambda r: (r["customer_name"] or "").lower(),
    "status": lambda r: {"red": 0, "yellow": 1, "green": 2}.get(r["status"] or "", 3),
    "health": lambda r: r["health_score"] if r["health_score"] is not None else -1,
    "value": lambda r: r["value_at_stake"] or 0,
    "risk": lambda r: r["value_at_risk_now"] or 0,
    "dialogue": lambda r: r["days_since_dialogue"] if r["days_since_dialogue"] is not None else 10**6,
}
ACTION_WORDS = {"acknowledge": "acknowledged", "snooze": "snoozed", "close": "closed", "feedback": "feedback sent"}


def _money(amount: Any, currency: Any = "") -> str:
    try:
        return f"{float(amount):,.0f} {currency or ''}".strip()
    except (TypeError, ValueError):
        return "–"


def drivers(text: str | None) -> list[str]:
    """The mart's ``; ``-separated drivers as sentences; a ``;`` inside parentheses is part of one
    (the same reading as the alert messages and the leadership report: ``drivers_list``)."""
    return drivers_list(text)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = _money
    env.filters["day"] = lambda v: v.strftime("%Y-%m-%d") if v else "–"
    env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M") if v else "–"
    env.filters["pct"] = lambda v: f"{float(v):.0%}" if v is not None else "–"
    env.filters["score"] = lambda v: f"{float(v):.0f}" if v is not None else "–"
    env.filters["drivers"] = drivers
    env.globals.update(sparkline=svg.sparkline, matrix_position=svg.matrix_position, areas=queries.AREAS,
                       close_outcomes=CLOSE_OUTCOMES, feedback_verdicts=FEEDBACK_VERDICTS, timedelta=dt.timedelta,
                       model_closed_words=model_closed_words)
    return env


class Recent:
    """Case events this process sent, shown until the published warehouse has caught up with them.

    The warehouse learns of an action only when the next pipeline run has landed and built it, so
    until then the pages show the case as the action left it (``apply``): acknowledged, snoozed
    until its date, or closed with its outcome, marked "just now", and a closed case offers no
    acknowledge, snooze or close any more."""

    STATES = {"acknowledge": "acknowledged", "snooze": "snoozed", "close": "closed"}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[str, dt.datetime]] = {}
        self._state: dict[str, tuple[dict[str, Any], dt.datetime]] = {}

    def add(self, event: dict[str, Any]) -> None:
        sent_at = parse_timestamp(event["occurred_at"]).replace(tzinfo=None)  # the warehouse's UTC, naive
        with self._lock:
            self._latest[event["case_id"]] = (event["event_type"], sent_at)
            if event["event_type"] in self.STATES:
                self._state[event["case_id"]] = (event, sent_at)

    @staticmethod
    def _caught_up(case_row: dict[str, Any], sent_at: dt.datetime) -> bool:
        changed = case_row.get("last_event_at") or case_row.get("state_changed_at")
        return changed is not None and changed >= sent_at

    def pending(self, case_row: dict[str, Any]) -> str | None:
        with self._lock:
            sent = self._latest.get(case_row["case_id"])
        if sent is None or self._caught_up(case_row, sent[1]):
            return None  # nothing sent, or the warehouse shows it now
        return ACTION_WORDS[sent[0]]

    def apply(self, case_row: dict[str, Any]) -> dict[str, Any]:
        """Set the row's ``pending`` (what was sent just now, or None) and, while the warehouse has
        not caught up with this process's latest acknowledge/snooze/close, its state as that event
        set it (``pending_state``: True then)."""
        case_row["pending"] = self.pending(case_row)
        case_row["pending_state"] = False
        with self._lock:
            sent = self._state.get(case_row["case_id"])
        if sent is None or self._caught_up(case_row, sent[1]):
            return case_row
        event, sent_at = sent
        payload = event["payload"]
        case_row.update(lifecycle_state=self.STATES[event["event_type"]], state_changed_at=sent_at,
                        state_changed_by=event["actor"], pending_state=True)
        if event["event_type"] == "snooze":
            case_row.update(snoozed_until=dt.date.fromisoformat(payload["until"]),
                            snooze_reason=payload["reason"])
        elif event["event_type"] == "close":
            case_row.update(close_outcome=payload["outcome"], close_note=payload.get("note"), snoozed_until=None,
                            snooze_reason=None)
        else:
            case_row.update(snoozed_until=None, snooze_reason=None)
        return case_row


def create_app(settings: Settings, publish: Callable[[Settings, list[dict[str, Any]]], None] | None = None) -> Starlette:
    """The ASGI app. ``publish`` sends case events (default: to Kafka, ``cases.publish``)."""
    auth.signing_keys(settings)  # an empty or short key is refused when the app starts, not on each request
    env = _environment()
    recent = Recent()
    send = publish or case_events.publish
    secure_cookie = settings.web_url.startswith("https://")
    css = (TEMPLATES / "app.css").read_bytes()
    strong = _strong_loyalty(settings)

    def page(request: Request, name: str, status: int = 200, user: auth.User | None = None,
             **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(
            user=user, csrf=auth.csrf_token(settings, user) if user else "", path=request.url.path,
            strong_loyalty=strong, **context)
        return _secured(HTMLResponse(html, status_code=status))

    def problem(request: Request, status: int, title: str, text: str, user: auth.User | None = None) -> HTMLResponse:
        return page(request, "problem.html", status=status, user=user, title=title, text=text)

    def current_user(request: Request) -> auth.User | None:
        return auth.user_from_request(settings, dict(request.cookies), dict(request.headers))

    def signed_in(handler: Callable) -> Callable:
        async def wrapper(request: Request) -> Response:
            user = current_user(request)
            if user is None:
                return page(request, "signin.html", status=401, title="Sign in")
            try:
                return await handler(request, user)
            except queries.WarehouseUnavailable as exc:
                return problem(request, 503, "Not available right now", str(exc), user)
        return wrapper

    async def home(request: Request) -> Response:
        if current_user(request) is None:
            return page(request, "signin.html", title="Sign in")
        return _secured(RedirectResponse("/queue", status_code=303))

    async def login(request: Request) -> Response:
        email = auth.email_from_link(settings, request.query_params.get("token", ""))
        if email is None:
            return page(request, "signin.html", status=401, title="Sign in",
                        error="This sign-in link is not valid or has expired. Ask for a new one.")
        value, max_age = auth.session_cookie(settings, email)
        target = request.query_params.get("next", "")
        response = RedirectResponse(target if auth.is_local_path(target) else "/queue", status_code=303)
        response.set_cookie(auth.SESSION_COOKIE, value, max_age=max_age, httponly=True, samesite="lax",
                            secure=secure_cookie, path="/")
        return _secured(response)

    async def logout(request: Request) -> Response:
        user = current_user(request)
        form = await request.form()
        if user is not None and not auth.csrf_ok(settings, user, str(form.get("csrf", ""))):
            return problem(request, 403, "Refused", "The form was not sent from this app.", user)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return _secured(response)

    async def stylesheet(request: Request) -> Response:
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @signed_in
    async def my_customers(request: Request, user: auth.User) -> Response:
        sort = request.query_params.get("sort", "risk")
        sort = sort if sort in SORTS else "risk"
        direction = request.query_params.get("dir", "asc" if sort in ("name", "status") else "desc")
        direction = direction if direction in ("asc", "desc") else "desc"

        def load() -> tuple[list[dict[str, Any]], Any]:
            with queries.reader(settings) as con:
                return queries.customers(con, user), queries.latest_day(con)

        rows, day = await run_in_threadpool(load)
        rows.sort(key=SORTS[sort], reverse=direction == "desc")
        for row in rows:
            if row["case_id"]:
                recent.apply(row)
            else:
                row["pending"], row["pending_state"] = None, False
        return page(request, "customers.html", user=user, title="My customers", rows=rows, sort=sort,
                    direction=direction, day=day)

    @signed_in
    async def one_customer(request: Request, user: auth.User) -> Response:
        customer_id = request.path_params["customer_id"]

        def load() -> tuple[dict[str, Any] | None, dict[str, Any] | None, Any]:
            with queries.reader(settings) as con:
                found = queries.customer(con, customer_id)
                if found is None or not queries.may_see(user, found):
                    return found, None, None
                detail = queries.customer_detail(con, customer_id)
                detail["facts"] = queries.action_needed(con, user, customer_id)
                return found, detail, queries.latest_day(con)

        found, detail, day = await run_in_threadpool(load)
        if found is None:
            return problem(request, 404, "No such customer", "There is no customer with this id.", user)
        if detail is None:
            return problem(request, 403, "Not your customer",
                           "This customer is managed by someone else, so you cannot open it.", user)
        for case_row in detail["cases"]:
            recent.apply(case_row)
        return page(request, "customer.html", user=user, title=found["customer_name"] or customer_id,
                    customer=found, day=day, today=_today(), refused=_refused(request), **detail)

    @signed_in
    async def my_queue(request: Request, user: auth.User) -> Response:
        def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
            with queries.reader(settings) as con:
                return queries.queue(con, user), queries.action_needed(con, user), queries.latest_day(con)

        rows, facts, day = await run_in_threadpool(load)
        for row in rows:
            recent.apply(row)
        sent = request.query_params.get("sent")
        notice = (f"{ACTION_WORDS[sent].capitalize()}: the event is on its way; the warehouse records it with the "
                  f"next pipeline run." if sent in ACTION_WORDS else None)
        return page(request, "queue.html", user=user, title="My queue", day=day, notice=notice, facts=facts,
                    active=[r for r in rows if r["lifecycle_state"] != "snoozed"],
                    snoozed=[r for r in rows if r["lifecycle_state"] == "snoozed"],
                    today=_today(), refused=_refused(request))

    @signed_in
    async def open_case(request: Request, user: auth.User) -> Response:
        found = await run_in_threadpool(_find_case, settings, request.path_params["case_id"])
        if found is None:
            return problem(request, 404, "No such case", "There is no case with this id (yet).", user)
        if not queries.may_see(user, found):
            return problem(request, 403, "Not your customer", "This case is about a customer managed by someone "
                                                             "else.", user)
        return _secured(RedirectResponse(f"/customers/{quote(found['customer_id'], safe='')}"
                                         f"#case-{found['case_id']}", status_code=303))

    @signed_in
    async def act(request: Request, user: auth.User) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            return problem(request, 404, "Unknown action", "This action does not exist.", user)
        if not _same_origin(request):
            return problem(request, 403, "Refused", "The form was not sent from this app.", user)
        form = await request.form()
        if not auth.csrf_ok(settings, user, str(form.get("csrf", ""))):
            return problem(request, 403, "Refused", "The form was not sent from this app (or the page is too old: "
                                                    "reload it and try again).", user)
        found = await run_in_threadpool(_find_case, settings, request.path_params["case_id"])
        if found is None:
            return problem(request, 404, "No such case", "There is no case with this id.", user)
        if not queries.may_see(user, found):
            return problem(request, 403, "Not your customer", "This case is about a customer managed by someone "
                                                             "else.", user)
        recent.apply(found)  # a close sent from this app just now counts before the warehouse has it
        if action in ("acknowledge", "snooze", "close") and found["lifecycle_state"] == "closed":
            # the page hides these buttons; an old tab or a script can still post them
            return problem(request, 409, "Already closed",
                           "This case is closed, so it cannot be acknowledged, snoozed or closed again; nothing "
                           "was sent. You can still give feedback on it. If the customer drifts again after "
                           "recovering, a new case opens.", user)
        field = lambda name: (str(form.get(name) or "").strip() or None)  # noqa: E731
        back = form.get("back")
        target = (f"/customers/{quote(found['customer_id'], safe='')}#case-{found['case_id']}"
                  if back == "customer" else f"/queue?sent={action}")
        if action == "snooze" and not _snooze_day_ok(field("until")):
            # a page left open overnight still offers yesterday: say what to do, send nothing
            refused = f"refused=snooze-date&case={quote(found['case_id'], safe='')}"
            return _secured(RedirectResponse(
                f"/customers/{quote(found['customer_id'], safe='')}?{refused}#case-{found['case_id']}"
                if back == "customer" else f"/queue?{refused}#case-{found['case_id']}", status_code=303))
        try:
            if action == "acknowledge":
                event = case_events.acknowledge(found, user.email, note=field("note"), source="web")
            elif action == "snooze":
                event = case_events.snooze(found, user.email, until=field("until") or "", reason=field("reason") or "",
                                           source="web")
            elif action == "close":
                event = case_events.close(found, user.email, outcome=field("outcome") or "", note=field("note"),
                                          source="web")
            else:
                event = case_events.feedback(found, user.email, verdict=field("verdict") or "",
                                             comment=field("comment"), source="web")
        except case_events.CaseEventError as exc:
            return problem(request, 400, "Not sent", f"The {action} was not sent: {exc}", user)
        try:
            await run_in_threadpool(send, settings, [event])
        except Exception as exc:  # noqa: BLE001 - the broker is down: say so, lose nothing silently
            return problem(request, 503, "Not sent", f"The {action} could not be sent to the event stream ({exc}). "
                                                     "Nothing was recorded; try again in a few minutes, or tell your data "
                                                     "team if it keeps failing.", user)
        recent.add(event)
        return _secured(RedirectResponse(target, status_code=303))

    routes = [
        Route("/", home),
        Route("/login", login),
        Route("/logout", logout, methods=["POST"]),
        Route("/static/app.css", stylesheet),
        Route("/queue", my_queue),
        Route("/customers", my_customers),
        Route("/customers/{customer_id:path}", one_customer),
        Route("/cases/{case_id}", open_case),
        Route("/cases/{case_id}/{action}", act, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _today() -> dt.date:
    """Today in UTC, the clock case events are dated by (a snooze must end after the event)."""
    return dt.datetime.now(dt.timezone.utc).date()


def _snooze_day_ok(until: str | None) -> bool:
    """A snooze ends on a day after today (the contract refuses one before the event that sets it)."""
    try:
        return dt.date.fromisoformat(until or "") > _today()
    except ValueError:
        return False


def _refused(request: Request) -> str | None:
    """The case whose snooze was just refused for its date (``?refused=snooze-date&case=ID``)."""
    return request.query_params.get("case") if request.query_params.get("refused") == "snooze-date" else None


def _find_case(settings: Settings, case_id: str) -> dict[str, Any] | None:
    with queries.reader(settings) as con:
        return queries.case(con, case_id)


def _secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _same_origin(request: Request) -> bool:
    """A browser's POST names its origin; one from another site is refused (besides the CSRF token)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _strong_loyalty(settings: Settings) -> float:
    try:
        # optional: the caller handles its absence
        from loyalty_monitor.scoring import load_scoring

        return float(load_scoring(settings.scoring_file)["loyalty"]["strong_min"])
    except Exception:  # noqa: BLE001 - a chart's guide line is not worth failing a page for
        return 65.0


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the app with uvicorn until interrupted."""

    uvicorn.run(create_app(settings), host=host or settings.web_host, port=port or settings.web_port,
                log_level="info", proxy_headers=settings.web_trust_proxy_header, server_header=False)


class BackgroundServer:
    """The app served by uvicorn on a thread (tests, demos): ``with BackgroundServer(settings) as url:``."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0, **app_options: Any):


        if port == 0:
            with socket.socket() as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(create_app(settings, **app_options), host=host, port=port, log_level="warning",
                                server_header=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="loyalty-web", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the web app did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
