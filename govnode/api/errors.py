"""API errors: each is one status code, one error code, and the JSON shape of API.md."""

from __future__ import annotations

import json
from collections.abc import Mapping


class ApiError(Exception):
    """An answer other than success, as the agency API spells it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        error: dict[str, str] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return json.dumps({"error": error}, ensure_ascii=False).encode("utf-8")


def invalid_json(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


def invalid_field(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field", message, field=field)


def unauthenticated(message: str = "a valid bearer token is required") -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "not_found", message)


def unavailable(what: str, retry_after: int = 30) -> ApiError:
    return ApiError(
        503,
        "unavailable",
        f"{what} is unavailable; try again later",
        headers={"Retry-After": str(retry_after)},
    )
