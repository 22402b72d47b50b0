"""An HTTPS client with an agency's client certificate (stdlib only, keep-alive)."""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def error_code(self) -> str | None:
        try:
            return str(self.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return None


def tls_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


@dataclass
class AgencyClient:
    """Talks to one node's agency API as one agency (or as no one: `cert=None`)."""

    base_url: str
    ca: Path
    cert: Path | None = None
    key: Path | None = None
    timeout: float = 15.0
    token: str | None = None
    _connection: http.client.HTTPSConnection | None = field(default=None, repr=False)

    def _connect(self) -> http.client.HTTPSConnection:
        if self._connection is None:
            parts = urlsplit(self.base_url)
            self._connection = http.client.HTTPSConnection(
                parts.hostname or "127.0.0.1",
                parts.port,
                context=tls_context(self.ca, self.cert, self.key),
                timeout=self.timeout,
            )
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Response:
        all_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            all_headers.setdefault("Content-Type", "application/json")
        bearer = token if token is not None else self.token
        if bearer:
            all_headers.setdefault("Authorization", f"Bearer {bearer}")
        if query:
            path = f"{path}?{urlencode(query)}"
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request(method, path, body=body, headers=all_headers)
                answer = connection.getresponse()
                data = answer.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.close()
                if attempt == 2:
                    raise
                continue
            return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
        raise AssertionError("unreachable")

    def login(self, username: str, password: str) -> Response:
        response = self.request(
            "POST", "/api/v1/auth/token", json_body={"username": username, "password": password}
        )
        if response.status == 200:
            self.token = response.json()["token"]
        return response

    def __enter__(self) -> AgencyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
