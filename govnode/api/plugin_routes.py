"""The agency API's side of plugins: their routes under `/api/v1/x/<plugin>/`,
their letter policies at submission, and their additions to directory entries."""

from __future__ import annotations

import inspect
import json
from typing import Any

from twisted.logger import Logger
from twisted.web.iweb import IRequest

from govnode.api.errors import ApiError, not_found
from govnode.domain.letters import Submission
from govnode.domain.plugins import Caller, PluginRequest, Reply, Route
from govnode.hooks.api import NodeApi, draft_of, entry_of
from govnode.hooks.errors import LetterRefused, PluginError, Refused
from govnode.hooks.manager import Plugins
from govnode.hooks.policy import PolicyUnavailable
from govnode.store.records import AgencyRecord

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
POLICY_RETRY_AFTER = 30  # seconds; API.md: every 503 says when to try again


def _segments(path: str) -> list[str]:
    return [part for part in path.strip("/").split("/") if part]


def _match(pattern: list[str], path: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(path):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, path, strict=True):
        if want.startswith("{") and want.endswith("}"):
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


class PluginSupport:
    """What the agency API asks of the enabled plugins."""

    _log = Logger()

    def __init__(self, plugins: Plugins, api: NodeApi) -> None:
        self._plugins = plugins
        self._api = api
        self._routes: dict[str, list[tuple[Route, list[str]]]] = {}
        self._enrichers = plugins.implementers("govnode_directory_entry")
        self._with_policy = bool(plugins.implementers("govnode_letter_policy"))

    def collect_routes(self) -> None:
        """Ask each plugin for its routes (once, at start-up; PluginError when unfit)."""
        for name in self._plugins.implementers("govnode_api_routes"):
            try:
                routes = self._plugins.call_one("govnode_api_routes", name, api=self._api) or []
            except Exception as exc:
                raise PluginError(
                    f"plugin {name!r} failed to offer its API routes: {type(exc).__name__}: {exc}"
                ) from exc
            checked = []
            for route in routes:
                if not isinstance(route, Route) or route.method.upper() not in METHODS:
                    raise PluginError(
                        f"plugin {name!r} offers a route that is not a Route: {route!r}"
                    )
                checked.append((route, _segments(route.path)))
            self._routes[name] = checked

    # -- routes ------------------------------------------------------------------

    def find(self, plugin: str, method: str, path: str) -> tuple[Route, dict[str, str]]:
        routes = self._routes.get(plugin)
        if routes is None:
            raise not_found("no such endpoint")
        wanted = _segments(path)
        allowed = set()
        for route, pattern in routes:
            params = _match(pattern, wanted)
            if params is None:
                continue
            if route.method.upper() == method:
                return route, params
            allowed.add(route.method.upper())
        if allowed:
            raise ApiError(
                405,
                "not_found",
                "this endpoint does not take that method",
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        raise not_found("no such endpoint")

    async def answer(
        self,
        request: IRequest,
        plugin: str,
        route: Route,
        params: dict[str, str],
        *,
        caller: Caller,
        path: str,
        body: Any,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of a plugin route's answer."""
        query = {
            key.decode("utf-8", "replace"): tuple(v.decode("utf-8", "replace") for v in values)
            for key, values in (request.args or {}).items()
        }
        asked = PluginRequest(
            caller=caller,
            method=route.method.upper(),
            path=path,
            params=params,
            query=query,
            body=body,
        )
        try:
            outcome = route.handler(asked)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            reply = outcome if isinstance(outcome, Reply) else Reply(outcome)
            if reply.content_type is not None:
                if not isinstance(reply.body, bytes):
                    raise TypeError("a Reply with a content_type needs a bytes body")
                content, kind = reply.body, reply.content_type
            else:
                content = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
                kind = "application/json; charset=utf-8"
        except Refused as exc:
            raise ApiError(exc.status, exc.code, exc.message, field=exc.field) from None
        except ApiError:
            raise
        except Exception:  # noqa: BLE001 - logged, counted; the client sees no traceback
            self._log.failure("plugin {plugin} failed answering {path}", plugin=plugin, path=path)
            self._api.count_error(plugin, "route")
            raise ApiError(
                500, "internal", "internal error; the node's log has the details"
            ) from None
        headers = {"Content-Type": kind, **reply.headers}
        return reply.status, headers, content

    # -- letters and the directory ---------------------------------------------

    async def policy(self, sender: str, user: str, submission: Submission) -> Submission:
        """The submission after every letter policy (ApiError when refused)."""
        if not self._with_policy:
            return submission
        try:
            return await self._api.apply_policy(draft_of(sender, user, submission), submission)
        except LetterRefused as exc:
            raise ApiError(exc.status, exc.code, exc.message, field=exc.field) from None
        except PolicyUnavailable:
            raise ApiError(
                503,
                "unavailable",
                "a letter policy of this node could not be checked; nothing was stored, "
                "try again later",
                headers={"Retry-After": str(POLICY_RETRY_AFTER)},
            ) from None

    def enrich(self, record: AgencyRecord, answer: dict[str, Any]) -> dict[str, Any]:
        """`answer` with each plugin's additions under "x"."""
        if not self._enrichers:
            return answer
        entry = entry_of(record, self._api.node_id)
        extra: dict[str, Any] = {}
        for name in self._enrichers:
            try:
                part = self._plugins.call_one(
                    "govnode_directory_entry", name, api=self._api, agency=entry
                )
                if part:
                    json.dumps(part)  # must be JSON: refuse it here, not in the answer
                    extra[name] = dict(part)
            except Exception:  # noqa: BLE001 - logged, counted; the entry is answered
                self._log.failure("plugin {plugin} failed on directory entry", plugin=name)
                self._api.count_error(name, "govnode_directory_entry")
        if extra:
            answer["x"] = extra
        return answer
