"""console's composition root: `create_app(settings=None)` and the `attune-console` entry point.

A backend for the browser. It keeps sessions and owns no clinical data: every page calls the alerts,
reporting and intake APIs with the signed-in person's own token, so clinic scope, roles,
suppression and audit stay in the services that own the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from attune_console import dashboard, equity, metrics, present
from attune_console.sessions import COOKIE, SIGNIN_COOKIE, Session, SessionStore, new_secret, same_secret
from attune_console.settings import ConsoleSettings
from attune_console.signin import Authenticator, TokenAuthenticator
from attune_console.upstream import Upstream, UpstreamError
from attune_shared.auth import TokenStore
from attune_shared.http import SecurityHeaders
from attune_shared.logging import configure_logging, get_logger
from attune_shared.metrics import READY, render
from attune_shared.runtime import serve
from attune_shared.settings import load_settings

log = get_logger("attune_console")
HERE = Path(__file__).resolve().parent
ALERT_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
CLIENT_REF = re.compile(r"^cr_[A-Z2-7]{10,40}$")
CLINIC_ID = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._-]{1,64}")  # reporting's clinic pattern, not . or ..
EPISODE_REF = re.compile(r"^ep_[A-Z2-7]{10,40}$")
# "." and ".." are resolved by the HTTP client, so as a path segment they would leave it.
DOT_SEGMENTS = frozenset({".", ".."})
LEAD_ROLES = frozenset({"lead", "admin"})
DASHBOARD_ROLES = frozenset({"ops", "lead", "admin"})
STATUSES = {
    "active": "Open and acknowledged",
    "open": "Open",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "all": "All",
}
PAGE_SIZE = 25
FULL_FETCH_PAGES = 5
MAX_NOTE = 2000
VENDOR = {"chart.js": ("chart.js", "dist", "chart.umd.min.js")}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The console's own headers (its pages load their scripts and styles from the console itself).
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SignInNeeded(Exception):
    """No live session: the browser goes to the sign-in page (saying so when the session expired)."""

    def __init__(self, expired: bool) -> None:
        self.expired = expired


class Refused(Exception):
    """The console's own error page with this status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        self.status, self.title, self.message = status, title, message


def create_app(
    settings: ConsoleSettings | None = None,
    *,
    upstream: Upstream | None = None,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """Build the console; the HTTP client and the tokens are loaded in the lifespan, not here."""
    settings = settings or load_settings(ConsoleSettings)
    sessions = SessionStore(settings.attune_console_session_idle_s, settings.attune_console_max_sessions)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        rule_name=present.rule_name,
        resolutions=present.RESOLUTIONS,
        statuses=STATUSES,
        poll_s=settings.attune_console_poll_s,
    )
    # A value as one URL path segment ("/" and everything else reserved are escaped).
    templates.env.filters["segment"] = lambda v: quote(str(v), safe="")
    templates.env.filters["score"] = present.score
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_format, settings.attune_log_level)
        state["auth"] = authenticator or TokenAuthenticator(TokenStore.load(settings.attune_tokens_file))
        state["api"] = upstream or Upstream(settings)
        log.info(
            "service_started",
            http=f"{settings.attune_http_host}:{settings.attune_http_port}",
            apis=state["api"].bases,
        )
        try:
            yield
        finally:
            if upstream is None:
                await state["api"].close()
            log.info("service_stopped")

    app = FastAPI(
        title="Attune console",
        description="The pages people use: the clinical leads' inbox and the operations dashboard.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    app.state.sessions = sessions
    app.add_middleware(SecurityHeaders, headers=SECURITY_HEADERS)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def api() -> Upstream:
        found: Upstream = state["api"]
        return found

    # ---- sessions -------------------------------------------------------------------------------

    def session_of(request: Request, roles: frozenset[str] | None = None, *, touch: bool = True) -> Session:
        sid = request.cookies.get(COOKIE)
        if touch:
            session, expired = sessions.lookup(sid)
        else:
            session, expired = sessions.peek(sid)
        metrics.SESSIONS.set(len(sessions))
        if session is None:
            raise SignInNeeded(expired)
        if roles is not None and session.principal.role not in roles:
            raise Refused(403, "Not for your role", "This page is not available to your role.")
        return session

    async def checked_form(request: Request, session: Session) -> dict[str, str]:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not same_secret(values.get("csrf"), session.csrf):
            metrics.CSRF_REFUSED.inc()
            raise Refused(
                403, "Form expired", "This form could not be accepted. Reload the page and try again."
            )
        return values

    def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            path="/",
        )

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        session: Session | None = context.get("session")
        base = {
            "who": session.principal if session else None,
            "csrf": session.csrf if session else None,
            "can_inbox": bool(session and session.principal.role in LEAD_ROLES),
            "can_dashboard": bool(session and session.principal.role in DASHBOARD_ROLES),
        }
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)

    def upstream_refusal(exc: UpstreamError, request: Request) -> Exception:
        if exc.status == 401:
            sessions.drop(request.cookies.get(COOKIE))
            return SignInNeeded(True)
        if exc.status == 404:
            return Refused(404, "Not found", "There is nothing here, or it is not in your clinics.")
        if exc.status == 403:
            return Refused(403, "Not allowed", "Your role or clinics do not cover this.")
        return Refused(
            502, "A service did not answer", f"The {exc.api} service did not answer. Try again shortly."
        )

    @app.exception_handler(SignInNeeded)
    async def to_sign_in(request: Request, exc: SignInNeeded) -> Response:
        if request.url.path.endswith(".json"):
            return JSONResponse({"detail": "sign in again"}, status_code=401)
        target = "/sign-in?expired=1" if exc.expired else "/sign-in"
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        metrics.PAGES.labels("refused", str(exc.status)).inc()
        sid = request.cookies.get(COOKIE)
        session, _ = sessions.peek(sid)
        return page(request, "error.html", {"session": session, "error": exc}, status=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        session, _ = sessions.peek(request.cookies.get(COOKIE))
        status = exc.status_code if exc.status_code in (404, 405) else 400
        error = Refused(
            status,
            "Not found" if status == 404 else "Not possible",
            "There is nothing here." if status == 404 else "That request is not possible here.",
        )
        return page(request, "error.html", {"session": session, "error": error}, status=status)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        log.exception("page_failed", path=request.url.path)
        session, _ = sessions.peek(request.cookies.get(COOKIE))
        error = Refused(
            500, "Something went wrong", "The console could not show this page. Try again shortly."
        )
        return page(request, "error.html", {"session": session, "error": error}, status=500)

    # ---- operations -----------------------------------------------------------------------------

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "service": settings.service_name})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready once started (tokens loaded, HTTP client up). An API that does not answer is reported
        here and on its gauge but does not make the console unready: its pages say which service
        did not answer, and sign-in and the other pages keep working (no cascade to a 503 everywhere)."""
        ok = "auth" in state and "api" in state
        checks = await api().ready() if ok else {}
        for name, up in checks.items():
            metrics.API_UP.labels(name).set(1 if up else 0)
        READY.set(1 if ok else 0)
        return JSONResponse({"ready": ok, "apis": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        metrics.SESSIONS.set(len(sessions))
        body, content_type = render()
        return Response(body, media_type=content_type)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/vendor/{name}", include_in_schema=False)
    async def vendor(name: str) -> Response:
        parts = VENDOR.get(name)
        path = settings.attune_console_assets_dir.joinpath(*parts) if parts else None
        if path is None or not path.is_file():
            raise StarletteHTTPException(404)
        return FileResponse(path, media_type="text/javascript")

    # ---- sign-in --------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        session = session_of(request)
        return RedirectResponse("/inbox" if session.principal.role in LEAD_ROLES else "/dashboard", 303)

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_form(request: Request, expired: int = 0) -> Response:
        nonce = new_secret()
        response = page(
            request, "sign_in.html", {"session": None, "signin_csrf": nonce, "expired": bool(expired)}
        )
        set_cookie(response, SIGNIN_COOKIE, nonce, max_age=900)
        return response

    @app.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        sent = form.get("csrf")
        if not same_secret(sent if isinstance(sent, str) else None, request.cookies.get(SIGNIN_COOKIE)):
            metrics.CSRF_REFUSED.inc()
            raise Refused(
                403, "Form expired", "The sign-in form could not be accepted. Reload it and try again."
            )
        secret = form.get("token")
        found = state["auth"].authenticate(secret) if isinstance(secret, str) else None
        if found is None:
            metrics.SIGN_INS.labels("refused").inc()
            nonce = new_secret()
            refused = page(
                request,
                "sign_in.html",
                {"session": None, "signin_csrf": nonce, "failed": True},
                status=401,
            )
            set_cookie(refused, SIGNIN_COOKIE, nonce, max_age=900)
            return refused
        sessions.drop(request.cookies.get(COOKIE))
        session = sessions.create(*found)
        metrics.SIGN_INS.labels("ok").inc()
        log.info("signed_in", who=session.principal.name, role=session.principal.role)
        response = RedirectResponse("/", status_code=303)
        set_cookie(response, COOKIE, session.sid)
        response.delete_cookie(SIGNIN_COOKIE, path="/")
        return response

    @app.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        session = session_of(request)
        await checked_form(request, session)
        sessions.drop(session.sid)
        log.info("signed_out", who=session.principal.name)
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # ---- the leads' inbox -----------------------------------------------------------------------

    def inbox_filters(request: Request) -> dict[str, str]:
        q = request.query_params
        status = q.get("status") or "active"
        severity = q.get("severity") or ""
        return {
            "clinic": (q.get("clinic") or "")[:64],
            "rule": (q.get("rule") or "")[:64],
            "clinician": (q.get("clinician") or "").strip()[:64],
            "severity": severity if severity in present.SEVERITY_RANK else "",
            "status": status if status in STATUSES else "active",
            "cursor": (q.get("cursor") or "")[:500],
        }

    async def fetch_all(session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = None
        for _ in range(FULL_FETCH_PAGES):
            body = await api().get_json(
                "alerts", "/v1/alerts", session.bearer, **params, limit=200, cursor=cursor
            )
            found.extend(body.get("items") or [])
            cursor = body.get("next_cursor")
            if not cursor:
                break
        return found

    async def inbox_data(request: Request, session: Session) -> dict[str, Any]:
        f = inbox_filters(request)
        base = {
            "clinic_id": f["clinic"],
            "rule_id": f["rule"],
            "severity": f["severity"],
            "clinician_id": f["clinician"],
        }
        next_cursor = None
        try:
            if f["status"] in ("active", "open", "acknowledged"):
                wanted = ["open", "acknowledged"] if f["status"] == "active" else [f["status"]]
                items: list[dict[str, Any]] = []
                for status in wanted:
                    items.extend(await fetch_all(session, {**base, "status": status}))
                items = present.inbox_order(items)
            else:
                body = await api().get_json(
                    "alerts",
                    "/v1/alerts",
                    session.bearer,
                    **base,
                    status=None if f["status"] == "all" else f["status"],
                    limit=PAGE_SIZE,
                    cursor=f["cursor"] or None,
                )
                items, next_cursor = body.get("items") or [], body.get("next_cursor")
        except UpstreamError as exc:
            raise upstream_refusal(exc, request) from None
        for a in items:
            due = present.sla_due(a)
            a["_sla_due"] = due.isoformat() if due else None
        clinics = sorted(c for c in session.principal.clinics if c != "*")
        if "*" in session.principal.clinics:
            clinics = sorted(
                {str(a.get("clinic_id")) for a in items} | ({f["clinic"]} if f["clinic"] else set())
            )
        clinicians = sorted(
            {str(a["clinician_id"]) for a in items if a.get("clinician_id")}
            | ({f["clinician"]} if f["clinician"] else set())
        )
        signature = hashlib.sha256(
            json.dumps(
                [
                    (a.get("alert_id"), a.get("status"), a.get("severity"), a.get("escalation_level"))
                    for a in items
                ]
            ).encode()
        ).hexdigest()[:16]
        query = {k: v for k, v in f.items() if v and k != "cursor"}
        return {
            "filters": f,
            "alerts": items,
            "counts": present.counts_by_rule([a for a in items if a.get("status") != "resolved"]),
            "clinics": clinics,
            "clinicians": clinicians,
            "rules": sorted(present.RULE_NAMES.items()),
            "next_url": f"/inbox?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None,
            "first_url": f"/inbox?{urlencode(query)}" if f["cursor"] else None,
            "live_url": f"/inbox/live.json?{urlencode({**query, 'cursor': f['cursor']} if f['cursor'] else query)}",
            "signature": signature,
            "paged": f["status"] in ("resolved", "all"),
        }

    @app.get("/inbox", response_class=HTMLResponse)
    async def inbox(request: Request) -> Response:
        session = session_of(request, LEAD_ROLES)
        data = await inbox_data(request, session)
        metrics.PAGES.labels("inbox", "200").inc()
        return page(request, "inbox.html", {"session": session, **data})

    @app.get("/inbox/live.json")
    async def inbox_live(request: Request) -> JSONResponse:
        # Polling does not keep a session alive: only what the person does counts as use.
        session = session_of(request, LEAD_ROLES, touch=False)
        data = await inbox_data(request, session)
        table = templates.get_template("_alerts.html").render(**data)
        counts = templates.get_template("_counts.html").render(**data)
        metrics.PAGES.labels("inbox_live", "200").inc()
        return JSONResponse(
            {
                "signature": data["signature"],
                "alerts": table,
                "counts": counts,
                "open": sum(1 for a in data["alerts"] if a.get("status") == "open"),
            }
        )

    # ---- one alert ------------------------------------------------------------------------------

    async def load_alert(request: Request, session: Session, alert_id: str) -> dict[str, Any]:
        if not ALERT_ID.fullmatch(alert_id):
            raise Refused(404, "Not found", "There is nothing here, or it is not in your clinics.")
        try:
            found: dict[str, Any] = await api().get_json("alerts", f"/v1/alerts/{alert_id}", session.bearer)
        except UpstreamError as exc:
            raise upstream_refusal(exc, request) from None
        return found

    async def alert_page(
        request: Request, session: Session, alert: dict[str, Any], **extra: Any
    ) -> HTMLResponse:
        """The alert page, with the client's series from measures."""
        due = present.sla_due(alert)
        context = {
            "session": session,
            "alert": alert,
            "explanation": present.explain(alert),
            "timeline": present.timeline(alert),
            "sla_due": due.isoformat() if due else None,
            "done": request.query_params.get("done", ""),
            "chart": await load_series(request, session, alert),
            **extra,
        }
        metrics.PAGES.labels("alert", "200").inc()
        return page(request, "alert.html", context)

    async def load_series(request: Request, session: Session, alert: dict[str, Any]) -> dict[str, Any] | None:
        """The client's scored series from measures for the chart; None when there is none to draw
        (no scored questionnaire yet) or measures cannot answer now (the page says so)."""
        episode = str(alert.get("episode_id"))
        if not EPISODE_REF.fullmatch(episode):
            return None
        try:
            found: dict[str, Any] = await api().get_json(
                "measures", f"/v1/episodes/{episode}/series", session.bearer
            )
        except UpstreamError as exc:
            if exc.status in (401, 403):
                raise upstream_refusal(exc, request) from None
            if exc.status != 404:
                log.warning("series_unavailable", api=exc.api, status=exc.status)
                return {"unavailable": True}
            return None
        return present.chart(found, alert)

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse)
    async def alert_view(request: Request, alert_id: str) -> Response:
        session = session_of(request, LEAD_ROLES)
        return await alert_page(request, session, await load_alert(request, session, alert_id))

    async def act(request: Request, alert_id: str, action: str) -> Response:
        session = session_of(request, LEAD_ROLES)
        form = await checked_form(request, session)
        if not ALERT_ID.fullmatch(alert_id):
            raise Refused(404, "Not found", "There is nothing here, or it is not in your clinics.")
        note = (form.get("note") or "").strip()[:MAX_NOTE] or None
        body: dict[str, Any] = {"note": note}
        if action == "resolve":
            resolution = form.get("resolution")
            if resolution not in ("addressed", "false_positive"):
                alert = await load_alert(request, session, alert_id)
                return await alert_page(
                    request, session, alert, form_error="Choose how the alert was resolved."
                )
            body["resolution"] = resolution
        try:
            await api().call("alerts", "POST", f"/v1/alerts/{alert_id}/{action}", session.bearer, json=body)
        except UpstreamError as exc:
            if exc.status in (409, 422):
                alert = await load_alert(request, session, alert_id)
                return await alert_page(
                    request, session, alert, form_error=exc.detail or "That change is not possible now."
                )
            raise upstream_refusal(exc, request) from None
        log.info("alert_changed", who=session.principal.name, action=action, alert_id=alert_id)
        return RedirectResponse(f"/alerts/{alert_id}?done={action}", status_code=303)

    @app.post("/alerts/{alert_id}/acknowledge")
    async def acknowledge(request: Request, alert_id: str) -> Response:
        return await act(request, alert_id, "acknowledge")

    @app.post("/alerts/{alert_id}/resolve")
    async def resolve(request: Request, alert_id: str) -> Response:
        return await act(request, alert_id, "resolve")

    @app.post("/alerts/{alert_id}/reveal", response_class=HTMLResponse)
    async def reveal(request: Request, alert_id: str) -> Response:
        """Who is this client: intake's one door, with the person's reason (audited there); shown once,
        never kept by the console."""
        session = session_of(request, LEAD_ROLES)
        form = await checked_form(request, session)
        alert = await load_alert(request, session, alert_id)
        reason = " ".join((form.get("reason") or "").split())
        if not 5 <= len(reason) <= 500:
            return await alert_page(
                request, session, alert, reveal_error="Say why you need to know, in 5 to 500 characters."
            )
        ref = str(alert.get("client_ref"))
        if not CLIENT_REF.fullmatch(ref):
            raise Refused(404, "Not found", "There is nothing here, or it is not in your clinics.")
        try:
            identity = await api().get_json("intake", f"/v1/clients/{ref}", session.bearer, reason=reason)
        except UpstreamError as exc:
            if exc.status == 422:
                return await alert_page(
                    request, session, alert, reveal_error="Say why you need to know, in 5 to 500 characters."
                )
            raise upstream_refusal(exc, request) from None
        log.info("client_revealed", who=session.principal.name, alert_id=alert_id)
        return await alert_page(request, session, alert, identity=identity)

    # ---- one clinician's caseload ----------------------------------------------------------------

    @app.get("/clinicians/{clinician_id}", response_class=HTMLResponse)
    async def caseload_view(request: Request, clinician_id: str, clinic: str = "") -> Response:
        """A clinician's clients (latest alliance and outcome, from measures) and open alerts (from
        alerts), within the person's clinics: both APIs apply the clinic scope themselves."""
        session = session_of(request, LEAD_ROLES)
        if (
            not 1 <= len(clinician_id) <= 64
            or not clinician_id.isprintable()
            or clinician_id in DOT_SEGMENTS
            or (clinic and not CLINIC_ID.fullmatch(clinic))
        ):
            raise Refused(404, "Not found", "There is nothing here, or it is not in your clinics.")
        try:
            caseload = await api().get_json(
                "measures",
                f"/v1/clinicians/{quote(clinician_id, safe='')}/caseload",
                session.bearer,
                clinic_id=clinic or None,
            )
            base = {"clinician_id": clinician_id, "clinic_id": clinic or None}
            open_alerts = present.inbox_order(
                [
                    *await fetch_all(session, {**base, "status": "open"}),
                    *await fetch_all(session, {**base, "status": "acknowledged"}),
                ]
            )
        except UpstreamError as exc:
            raise upstream_refusal(exc, request) from None
        for a in open_alerts:
            due = present.sla_due(a)
            a["_sla_due"] = due.isoformat() if due else None
        by_episode = Counter(str(a.get("episode_id")) for a in open_alerts)
        metrics.PAGES.labels("caseload", "200").inc()
        return page(
            request,
            "clinician.html",
            {
                "session": session,
                "clinician_id": clinician_id,
                "clinic": clinic,
                "caseload": caseload,
                "alerts": open_alerts,
                "alerts_by_episode": by_episode,
                "filters": {"status": "active"},
            },
        )

    # ---- the operations dashboard ---------------------------------------------------------------

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard_view(request: Request) -> Response:
        session = session_of(request, DASHBOARD_ROLES)
        try:
            by_clinic = await api().get_json("reporting", "/v1/reports/network", session.bearer, by="clinic")
            by_month = await api().get_json("reporting", "/v1/reports/network", session.bearer, by="month")
            by_modality = await api().get_json(
                "reporting", "/v1/reports/network", session.bearer, by="modality"
            )
            # Leads (and admins) also see each clinic's clinicians: reporting gives per-clinician rows
            # to those roles only, never to ops.
            clinician_sections: list[dict[str, Any]] = []
            if session.principal.role in LEAD_ROLES:
                for row in dashboard.body_rows(by_clinic.get("rows") or []):
                    clinic = str(row.get("clinic_id"))
                    if not CLINIC_ID.fullmatch(clinic):
                        continue
                    report = await api().get_json(
                        "reporting", f"/v1/reports/clinics/{clinic}", session.bearer, by="clinician"
                    )
                    clinician_sections.append(
                        {"clinic_id": clinic, "rows": dashboard.body_rows(report.get("rows") or [])}
                    )
        except UpstreamError as exc:
            raise upstream_refusal(exc, request) from None
        context = {
            "session": session,
            "clinician_sections": clinician_sections,
            "clinician_tiles": dashboard.CLINICIAN_TILES,
            "meta": by_clinic,
            "network": dashboard.totals(by_clinic.get("rows") or []),
            "clinic_rows": dashboard.body_rows(by_clinic.get("rows") or []),
            "month_rows": dashboard.body_rows(by_month.get("rows") or []),
            "modality_rows": dashboard.body_rows(by_modality.get("rows") or []),
            "modality_tiles": dashboard.shown(
                dashboard.body_rows(by_modality.get("rows") or []), dashboard.TILES
            ),
            "tiles": dashboard.TILES,
            "trend": dashboard.TREND,
            "alert_rules": dashboard.ALERT_RULES,
            "modalities": dashboard.MODALITIES,
            "cell": dashboard.cell,
        }
        metrics.PAGES.labels("dashboard", "200").inc()
        return page(request, "dashboard.html", context)

    @app.get("/dashboard.csv")
    async def dashboard_csv(request: Request, by: str = "clinic", clinic: str = "") -> Response:
        session = session_of(request, DASHBOARD_ROLES)
        if by in ("clinic", "month", "modality") and not clinic:
            path, name = "/v1/reports/network", f"attune-network-by-{by}.csv"
        elif by == "clinician" and CLINIC_ID.fullmatch(clinic):
            path, name = f"/v1/reports/clinics/{clinic}", f"attune-{clinic}-by-clinician.csv"
        else:
            raise Refused(404, "Not found", "There is no such download.")
        try:
            answer = await api().call(
                "reporting",
                "GET",
                path,
                session.bearer,
                params={"by": by, "format": "csv"},
                accept="text/csv",
            )
        except UpstreamError as exc:
            raise upstream_refusal(exc, request) from None
        return Response(
            answer.content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # ---- the equity view ------------------------------------------------------------------------

    def equity_params(by: str, clinic: str, first: str, last: str) -> dict[str, str]:
        """reporting's query for the equity view; what the page cannot ask for is a 404."""
        if by not in equity.BY or (clinic and not CLINIC_ID.fullmatch(clinic)):
            raise Refused(404, "Not found", "There is no such view.")
        if any(m and not equity.MONTH.fullmatch(m) for m in (first, last)):
            raise Refused(400, "Not possible", "Months are written YYYY-MM, for example 2026-03.")
        return {"by": by, "clinic_id": clinic, "from": first, "to": last}

    @app.get("/equity", response_class=HTMLResponse)
    async def equity_view(request: Request, by: str = "language", clinic: str = "") -> Response:
        session = session_of(request, DASHBOARD_ROLES)
        q = request.query_params
        params = equity_params(by, clinic.strip(), q.get("from", ""), q.get("to", ""))
        try:
            answer = await api().get_json("reporting", "/v1/reports/equity", session.bearer, **params)
        except UpstreamError as exc:
            raise upstream_refusal(exc, request) from None
        download = {k: v for k, v in params.items() if v}
        download["from"], download["to"] = answer.get("from", ""), answer.get("to", "")
        if "clinic_id" in download:
            download["clinic"] = download.pop("clinic_id")
        context = {
            "session": session,
            "meta": answer,
            "rows": answer.get("rows") or [],
            "by": by,
            "by_label": equity.BY[by],
            "clinic": params["clinic_id"],
            "dimensions": equity.BY,
            "figures": equity.FIGURES,
            "counts": equity.COUNTS,
            "figure": equity.figure,
            "label": equity.label,
            "csv_href": "/equity.csv?" + urlencode(download),
        }
        metrics.PAGES.labels("equity", "200").inc()
        return page(request, "equity.html", context)

    @app.get("/equity.csv")
    async def equity_csv(request: Request, by: str = "language", clinic: str = "") -> Response:
        session = session_of(request, DASHBOARD_ROLES)
        q = request.query_params
        params = equity_params(by, clinic.strip(), q.get("from", ""), q.get("to", ""))
        try:
            answer = await api().call(
                "reporting",
                "GET",
                "/v1/reports/equity",
                session.bearer,
                params={**params, "format": "csv"},
                accept="text/csv",
            )
        except UpstreamError as exc:
            raise upstream_refusal(exc, request) from None
        name = f"attune-equity-{params['clinic_id'] or 'network'}-by-{by}.csv"
        return Response(
            answer.content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return app


def main() -> None:
    """Run the console until SIGTERM or Ctrl-C."""
    settings = load_settings(ConsoleSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
