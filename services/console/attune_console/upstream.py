"""Calls to the alerts, reporting, intake and measures APIs with the signed-in person's own token."""

from __future__ import annotations

import time
from typing import Any

import httpx

from attune_console import metrics
from attune_console.settings import ConsoleSettings


class UpstreamError(Exception):
    """An API answered something a page cannot show as asked; `status` picks the console's page."""

    def __init__(self, api: str, status: int, detail: str = "") -> None:
        super().__init__(f"{api}: {status} {detail}")
        self.api = api
        self.status = status
        self.detail = detail


class Upstream:
    """One HTTP client for the four APIs (connection pooling, timeouts, metrics)."""

    def __init__(self, settings: ConsoleSettings, client: httpx.AsyncClient | None = None) -> None:
        self.bases = {
            "alerts": settings.attune_console_alerts_url.rstrip("/"),
            "reporting": settings.attune_console_reporting_url.rstrip("/"),
            "intake": settings.attune_console_intake_url.rstrip("/"),
            "measures": settings.attune_console_measures_url.rstrip("/"),
        }
        self._client = client or httpx.AsyncClient(
            timeout=settings.attune_console_upstream_timeout_s, follow_redirects=False
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        api: str,
        method: str,
        path: str,
        bearer: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        accept: str = "application/json",
    ) -> httpx.Response:
        """The API's answer when 2xx; otherwise UpstreamError (status 502 when it did not answer)."""
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        started = time.perf_counter()
        try:
            response = await self._client.request(
                method,
                self.bases[api] + path,
                params=clean,
                json=json,
                headers={"Authorization": f"Bearer {bearer}", "Accept": accept},
            )
        except httpx.InvalidURL:
            # A value that cannot be part of a URL: nothing by that name exists for the person.
            raise UpstreamError(api, 404, "not a valid reference") from None
        except httpx.HTTPError as exc:
            metrics.UPSTREAM.labels(api, "error").observe(time.perf_counter() - started)
            raise UpstreamError(api, 502, type(exc).__name__) from None
        metrics.UPSTREAM.labels(api, str(response.status_code)).observe(time.perf_counter() - started)
        if response.is_success:
            return response
        detail = ""
        try:
            body = response.json()
            detail = body.get("detail") if isinstance(body.get("detail"), str) else ""
        except ValueError:
            pass
        raise UpstreamError(api, response.status_code, detail)

    async def get_json(self, api: str, path: str, bearer: str, **params: Any) -> Any:
        return (await self.call(api, "GET", path, bearer, params=params)).json()

    async def ready(self) -> dict[str, bool]:
        """Each API's /readyz answers 200."""
        checks: dict[str, bool] = {}
        for api, base in self.bases.items():
            try:
                checks[api] = (await self._client.get(base + "/readyz", timeout=2.0)).status_code == 200
            except httpx.HTTPError:
                checks[api] = False
        return checks
