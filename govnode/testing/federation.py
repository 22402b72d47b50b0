"""Speaking to a node's federation port as another node (tests of what peers may send)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def post_as_node(
    caller: Path, callee_ca: Path, url: str, document: object
) -> tuple[int, dict[str, Any]]:
    """POST `document` to `url` with the node certificate of the home `caller`,
    trusting `callee_ca`; the status and the JSON answer."""
    context = ssl.create_default_context(cafile=str(callee_ca))
    context.load_cert_chain(str(caller / "pki" / "node.pem"), str(caller / "pki" / "node.key"))
    request = urllib.request.Request(  # noqa: S310 - https only, to a test's node
        url,
        data=json.dumps(document, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as answer:  # noqa: S310
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
