"""Request bodies over the limit are refused from their Content-Length, before being read.

Twisted would otherwise read a whole body (into a temporary file) before any
handler could look at it. A body without Content-Length (chunked) is counted
as it arrives and refused the moment it passes the limit. Either way the
client gets the API's 413 `too_large` and the connection is closed.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.web.server import Request

from govnode.api.errors import ApiError


class LimitedRequest(Request):
    max_body = 64 * 1024 * 1024

    _refused = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        self.content = io.BytesIO()
        # No "100 Continue" after our answer: the client must not start sending.
        self.requestHeaders.removeHeader(b"expect")
        body = ApiError(413, "too_large", f"the body is over {self.max_body} bytes").body()
        head = (
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Server: govnode\r\nConnection: close\r\n\r\n"
        )
        transport = self.channel.transport
        if transport is not None:
            transport.write(head + body)
        self.channel.loseConnection()


def limited_request(max_body: int) -> Any:
    """A request class for `Site(requestFactory=...)` with this body limit."""
    return type("LimitedRequest", (LimitedRequest,), {"max_body": max_body})
