"""The common shape of an Attune service: lifespan, /healthz, /readyz, /metrics, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.exceptions import HTTPException as StarletteHTTPException

from attune_shared import standin
from attune_shared.auth import RoleCheck, TokenStore
from attune_shared.http import (
    BODY_METHODS,
    AccessRule,
    BodyLimit,
    BodyRule,
    HttpGuard,
    Policy,
    SafeJSONResponse,
    clean_errors,
    merge_access,
    route_prefix,
)
from attune_shared.kafka import FatalError, export_lag_forever, retry_transient
from attune_shared.kafka_admin import missing_topics
from attune_shared.logging import configure_logging, get_logger
from attune_shared.metrics import DEPENDENCY_UP, READY, render
from attune_shared.mongo import make_client
from attune_shared.settings import ServiceSettings

log = get_logger(__name__)
D = TypeVar("D")


@dataclass
class Service(Generic[D]):
    """What a running service holds. Clients are made in the lifespan, never at import.

    `D` is the service's own dependencies (its repository, pipeline, ...), a dataclass its on_start
    hook builds and sets as `deps`; its handlers and routes read them from there, typed.
    """

    settings: ServiceSettings
    broker: KafkaBroker
    group_id: str
    topics: Sequence[str]
    db: AsyncDatabase[dict[str, Any]] | None = None
    client: AsyncMongoClient[dict[str, Any]] | None = None
    stopping: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # Background tasks that ended by themselves (each runs for the service's lifetime): readiness fails.
    ended_tasks: list[str] = field(default_factory=list)
    # What the service adds to its /readyz answer as `details` (state an operator should see, such as
    # measures' trajectory models); it never changes readiness.
    details: Callable[[], dict[str, Any]] | None = None
    _deps: D | None = field(default=None, init=False, repr=False)

    @property
    def database(self) -> AsyncDatabase[dict[str, Any]]:
        """The service's own database (only valid once started)."""
        if self.db is None:
            raise RuntimeError("service not started: no database yet")
        return self.db

    @property
    def deps(self) -> D:
        """The service's dependencies, as its on_start hook built them (only valid once started)."""
        if self._deps is None:
            raise RuntimeError("service not started: no dependencies yet")
        return self._deps

    @deps.setter
    def deps(self, deps: D) -> None:
        self._deps = deps

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        """Run a background task for the service's lifetime. One that ends by itself before the
        service stops (an error it did not catch) is logged and makes /readyz answer 503 (check
        `background`), so the service is not reported ready while part of its work has stopped."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(self._task_ended)
        self.tasks.append(task)

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self.stopping:
            return
        self.ended_tasks.append(task.get_name())
        error = task.exception()
        log.error("background_task_ended", task=task.get_name(), error=repr(error)[:300])

    async def readiness(self) -> dict[str, bool]:
        """Ask Kafka and the store, each with a short timeout."""
        checks: dict[str, bool] = {}
        try:
            checks["kafka"] = bool(await self.broker.ping(timeout=2.0))
        except Exception:
            checks["kafka"] = False
        try:
            await asyncio.wait_for(self.database.command("ping"), timeout=2.0)
            checks["store"] = True
        except Exception:
            checks["store"] = False
        for dep, ok in checks.items():
            DEPENDENCY_UP.labels(dep).set(1 if ok else 0)
        if self.ended_tasks:
            checks["background"] = False
        READY.set(1 if all(checks.values()) else 0)
        return checks


async def require_topics(settings: ServiceSettings, *, grace_s: float = 15.0) -> None:
    """Stop with a clear message when Attune's topics do not exist (auto-creation is off).

    Topics created a moment ago (`attune topics` just before the services start) can take a few
    seconds to appear in a broker's metadata, so a missing topic is asked about again for `grace_s`
    before the service gives up."""
    deadline = time.monotonic() + grace_s
    while missing := await missing_topics(settings):
        if time.monotonic() >= deadline:
            break
        log.info("topics_not_visible_yet", missing=len(missing))
        await asyncio.sleep(0.5)
    if missing:
        log.error("topics_missing", missing=missing)
        raise FatalError(
            f"Kafka topics missing: {', '.join(missing)}. Create them with `attune topics` "
            "(or `python -m attune_shared.kafka_admin ensure-topics --replication 3`)."
        )


def build_app(
    service: Service[D],
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    on_start: Callable[[Service[D]], Awaitable[None]] | None = None,
    on_stop: Callable[[Service[D]], Awaitable[None]] | None = None,
    database: AsyncDatabase[dict[str, Any]] | None = None,
    consume: bool = True,
) -> FastAPI:
    """A FastAPI app whose lifespan starts the store, the hooks and the broker, and stops them in reverse.

    `database` replaces the one the settings name (tests); `on_start` builds the service's dependencies."""
    settings = service.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_format, settings.attune_log_level)
        app.state.tokens = TokenStore.load(settings.attune_tokens_file)
        if database is not None:
            service.db = database
        else:
            service.client = make_client(settings)
            service.db = service.client[settings.database_name]
        # The store is asked once what it is (MongoDB, or the local stand-in): attune_shared.standin
        # takes its compensating paths from that, and nothing else branches on the store.
        db = service.db
        profile = await retry_transient(
            "store_detect", lambda: standin.detect(db.client), stopping=lambda: service.stopping
        )
        log.info("store_detected", store=profile.name)
        if on_start is not None:
            await retry_transient("startup", lambda: on_start(service), stopping=lambda: service.stopping)
        await retry_transient("topics", lambda: require_topics(settings), stopping=lambda: service.stopping)
        if consume:
            await retry_transient("kafka_connect", service.broker.start, stopping=lambda: service.stopping)
        else:
            await retry_transient("kafka_connect", service.broker.connect, stopping=lambda: service.stopping)
        if service.topics:
            service.spawn(export_lag_forever(settings, service.group_id, list(service.topics)), "lag")
        log.info(
            "service_started",
            group=service.group_id,
            topics=list(service.topics),
            http=f"{settings.attune_http_host}:{settings.attune_http_port}",
        )
        try:
            yield
        finally:
            service.stopping = True
            log.info("service_stopping")
            # Stop consuming first: an in-flight batch finishes (or is abandoned uncommitted)
            # before the store it writes to goes away.
            with contextlib.suppress(Exception):
                await service.broker.stop()
            for task in service.tasks:
                task.cancel()
            await asyncio.gather(*service.tasks, return_exceptions=True)
            if on_stop is not None:
                with contextlib.suppress(Exception):
                    await on_stop(service)
            if service.client is not None:
                await service.client.close()
            log.info("service_stopped")

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        # No pages that load scripts from a CDN; the document itself stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
        # A redirect would be built from the Host header the client sent.
        redirect_slashes=False,
        default_response_class=SafeJSONResponse,
    )
    app.state.service = service

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Kafka and the store answer, and no background task has ended (503 otherwise)",
        responses={
            200: {"content": {"application/json": {"schema": _READY_SCHEMA}}},
            503: {
                "description": "Kafka or the store does not answer, or a background task has ended",
                "content": {"application/json": {"schema": _READY_SCHEMA}},
            },
        },
    )
    async def readyz() -> JSONResponse:
        checks = await service.readiness()
        ok = all(checks.values()) and not service.stopping
        body: dict[str, Any] = {"ready": ok, "checks": checks}
        if service.details is not None:
            body["details"] = service.details()
        return SafeJSONResponse(body, status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        body, content_type = render()
        return Response(body, media_type=content_type)

    for router in routers:
        app.include_router(router)
    harden(app, settings, routers)
    return app


_READY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ready": {"type": "boolean"},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "details": {"type": "object", "description": "the service's own state (measures: trajectory models)"},
    },
    "required": ["ready", "checks"],
}
_PROBLEM = {
    "application/json": {
        "schema": {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
    }
}
_GUARD_RESPONSES: dict[str, str] = {
    "401": "no bearer token, or one that is not valid",
    "403": "the token's role (or its clinics or source) does not cover this",
}


def _calls(dependant: Any) -> list[Any]:
    found = []
    for dep in dependant.dependencies:
        found.append(dep.call)
        found.extend(_calls(dep))
    return found


def harden(app: FastAPI, settings: ServiceSettings, routers: Sequence[APIRouter] = ()) -> None:
    """Install the HttpGuard (auth before validation, body limits, security headers), error handlers
    that never echo the caller's input, and an OpenAPI document that lists what the guard answers.

    The guard's rules come from the routes: each `require_roles` dependency makes a rule for the route's
    path up to its first parameter, each `BodyLimit` a body limit."""
    access: list[AccessRule] = []
    bodies: list[BodyRule] = []
    nested = [r for router in routers for r in router.routes if not hasattr(r, "path")]
    if nested:  # FastAPI keeps an included router's routes to itself: its rules would be missed
        raise TypeError("pass each router to build_app's routers; do not include routers into one another")
    for route in [*app.routes, *(r for router in routers for r in router.routes)]:
        if not isinstance(route, APIRoute):
            continue
        for call in _calls(route.dependant):
            if isinstance(call, RoleCheck):
                access.append(AccessRule(route_prefix(route.path), call.roles, call.audit))
            elif isinstance(call, BodyLimit):
                bodies.append(BodyRule(route_prefix(route.path), int(getattr(settings, call.setting))))
    policy = Policy(
        access=merge_access(access),
        bodies=bodies,
        default_max_body=settings.attune_http_max_request_bytes,
    )
    app.add_middleware(HttpGuard, policy=policy, tokens=lambda scope: scope["app"].state.tokens)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return SafeJSONResponse({"detail": clean_errors(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return SafeJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _complete(FastAPI.openapi(app), policy)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(doc: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """Every guarded operation documents 401/403 (and 413 when it takes a body); a request body
    schema's `$defs` move to components (their refs already point there)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            if policy.access_for(path) is not None:
                for code, text in _GUARD_RESPONSES.items():
                    responses.setdefault(code, {"description": text, "content": _PROBLEM})
            if method.upper() in BODY_METHODS:
                responses.setdefault(
                    "413", {"description": "the body is over this endpoint's limit", "content": _PROBLEM}
                )
            if "requestBody" in op:
                responses.setdefault(
                    "400", {"description": "the body is not JSON (or not UTF-8)", "content": _PROBLEM}
                )
            for media in op.get("requestBody", {}).get("content", {}).values():
                schemas.update(media.get("schema", {}).pop("$defs", {}))
    return doc


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM after shutting down; a requested stop is a clean stop (exit 0)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run the app under uvicorn; SIGTERM and Ctrl-C stop it gracefully (exit 0)."""
    config = uvicorn.Config(
        app,
        host=settings.attune_http_host,
        port=settings.attune_http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=8,
        lifespan="on",
        server_header=False,
    )
    _Server(config).run()
