"""An engine's failures as the errors trimkit answers with.

Engines answer errors in many shapes (a JSON ``error`` object or string, a
``detail``, plain text); :func:`error_message` finds the message in any of them.
:func:`status_error` and :func:`transport_error` give each failure the Anthropic
status a client can act on, and say in ``lasting`` when only a change of
configuration will help (a rejected key, a host that does not resolve).
:func:`rejected_fields` reads which sampling fields an engine refused, so they are
not sent to it again.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import httpx

from .base import BackendError
from .upstream_stream import SAMPLING_FIELDS

ERROR_TEXT_LIMIT = 1000
UNSUPPORTED = re.compile(r"unexpected|unsupported|not supported|unknown|unrecognized|not permitted|extra", re.I)


def error_message(body: bytes) -> str:
    """The message in an engine's error body, whichever shape it has."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:ERROR_TEXT_LIMIT] or "(no message)"
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, str):
            return error[:ERROR_TEXT_LIMIT]
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:ERROR_TEXT_LIMIT]
        if isinstance(data.get("detail"), str):
            return data["detail"][:ERROR_TEXT_LIMIT]
    return json.dumps(data)[:ERROR_TEXT_LIMIT]


def status_error(status: int, body: bytes, what: str) -> BackendError:
    """An upstream's HTTP error as the error trimkit answers with.

    The client's fault (4xx) passes through as a 400 with the upstream's message;
    a rejected key is this server's configuration, so a 500 that lasts; 429 stays a
    429; an upstream that is busy or starting (503, 529) is a 529; other 5xx are a 500.
    """
    message = f"upstream {what} answered {status}: {error_message(body)}"
    if status in (401, 403):
        return BackendError(f"{message} (check upstream_api_key)", status=500, error_type="api_error", lasting=True)
    if status == 429:
        return BackendError(message, status=429, error_type="rate_limit_error")
    if status in (503, 529):
        return BackendError(message, status=529, error_type="overloaded_error")
    if 400 <= status < 500:
        return BackendError(message, status=400, error_type="invalid_request_error")
    return BackendError(message, status=500, error_type="api_error")


def _resolution_failed(exc: BaseException) -> bool:
    """Whether the host name did not resolve: httpx chains the resolver's ``socket.gaierror``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def transport_error(exc: httpx.HTTPError, url: str, timeout: float, *, streaming: bool) -> BackendError:
    """A failure to talk to the upstream as the error trimkit answers with."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and _resolution_failed(exc):
        return BackendError(f"failed to resolve upstream {url}: {reason}", status=500, error_type="api_error",
                            lasting=True)
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return BackendError(f"upstream {url} is unreachable: {reason}", status=529, error_type="overloaded_error")
    if isinstance(exc, httpx.ReadTimeout):
        return BackendError(
            f"upstream {url} sent nothing for {timeout:g} s (raise upstream_timeout for long prefills)",
            status=500,
            error_type="api_error",
        )
    if streaming:
        return BackendError(f"upstream stream broke: {reason}", status=500, error_type="api_error")
    return BackendError(f"upstream {url} failed: {reason}", status=500, error_type="api_error")


def rejected_fields(status: int, body: bytes, sent: dict[str, Any]) -> set[str]:
    """The sampling fields of ``sent`` that an engine's 400/422 answer names as the problem.

    Engines word it differently (``transformers serve``: 422 "Unexpected fields in
    the request: {'top_k'}"; pydantic: "Extra inputs are not permitted"; others say
    "unsupported parameter"), but each names the field and says it is not known;
    a value out of range is the client's to fix and is not dropped.
    """
    if status not in (400, 422):
        return set()
    text = body.decode("utf-8", "replace")
    if not UNSUPPORTED.search(text):  # "temperature must be <= 2" is the client's value, not the field
        return set()
    return {name for name in SAMPLING_FIELDS if name in sent and re.search(rf"\b{name}\b", text)}
