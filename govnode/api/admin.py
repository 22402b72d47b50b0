"""The admin listener: `/healthz` and `/metrics` (plain HTTP, loopback by default)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from govnode.api.metrics import Metrics

HealthCheck = Callable[[], Awaitable[None]]


class AdminApi:
    app = Klein()
    _log = Logger()

    def __init__(
        self,
        *,
        checks: Mapping[str, HealthCheck],
        metrics: Metrics,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`refresh`: sets the gauges read from the database, before each scrape."""
        self._checks = checks
        self._metrics = metrics
        self._refresh = refresh

    @app.route("/healthz", methods=["GET"])
    async def healthz(self, request: IRequest) -> bytes:
        results: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                await check()
            except Exception as exc:  # noqa: BLE001 - any failure is a failing check
                self._log.warn("health check {name} failed: {error}", name=name, error=str(exc))
                results[name] = f"failing: {exc}"
            else:
                results[name] = "ok"
        healthy = all(value == "ok" for value in results.values())
        request.setResponseCode(200 if healthy else 503)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        if not healthy:
            request.setHeader(b"Retry-After", b"30")
        body = {"status": "ok" if healthy else "failing", "checks": results}
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    @app.route("/metrics", methods=["GET"])
    async def metrics(self, request: IRequest) -> bytes:
        if self._refresh is not None:
            await self._refresh()
        request.setHeader(b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8")
        return self._metrics.render()
