"""An engine's failures as the errors trimkit answers with.

Engines answer errors in many shapes (a JSON ``error`` object or string, a
``detail``, plain text); :func:`error_message` finds the message in any of them,
from no more than :data:`ERROR_BODY_LIMIT` bytes of body. :func:`status_error`,
:func:`event_error` and :func:`transport_error` give each failure the Anthropic
status a client can act on, through one table (:data:`ANSWERS`), and say in
``lasting`` when only a change of configuration will help (a rejected key, a host
that does not resolve). An engine's refusal of trimkit's key is a 502 (a bad
gateway: this server's configuration), never a 401 or an ``authentication_error``
that would tell the client its own key is wrong. Every message is passed through a
:class:`~trimkit.redact.Redactor` holding the upstream's key and the secrets of its
URL, since engines quote what they were sent ("Incorrect API key provided: sk-…").
:func:`rejected_fields` reads which sampling fields an engine refused, so they are
not sent to it again.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import httpx

from ..redact import Redactor
from .base import BackendError
from .upstream_stream import SAMPLING_FIELDS

ERROR_TEXT_LIMIT = 1000
ERROR_BODY_LIMIT = 64 * 1024
"""Bytes of an engine's error body read at most: the message is in its first kilobyte."""
KEY_HINT = " (check upstream_api_key)"

ANSWERS: dict[str, tuple[int, str, bool, str]] = {
    "invalid_request_error": (400, "invalid_request_error", False, ""),
    "not_found_error": (400, "invalid_request_error", False, ""),
    "request_too_large": (413, "request_too_large", False, ""),
    "rate_limit_error": (429, "rate_limit_error", False, ""),
    "authentication_error": (502, "api_error", True, KEY_HINT),
    "permission_error": (502, "api_error", True, KEY_HINT),
    "billing_error": (502, "api_error", True, ""),
    "overloaded_error": (529, "overloaded_error", False, ""),
    "api_error": (500, "api_error", False, ""),
}
"""The kind of an engine's error → (status, error type, lasting, hint) of trimkit's answer."""

_KINDS = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
          403: "permission_error", 404: "not_found_error", 413: "request_too_large", 422: "invalid_request_error",
          429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}
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


def answer(kind: str, message: str, redactor: Redactor | None = None) -> BackendError:
    """The error trimkit answers for an engine's error of ``kind`` (an Anthropic error type)."""
    status, error_type, lasting, hint = ANSWERS.get(kind, ANSWERS["api_error"])
    text = message + hint
    return BackendError(redactor.text(text) if redactor else text, status=status, error_type=error_type,
                        lasting=lasting)


def status_error(status: int, body: bytes, what: str, redactor: Redactor | None = None) -> BackendError:
    """An upstream's HTTP error as the error trimkit answers with (see :data:`ANSWERS`).

    The client's fault (4xx) passes through as a 400 with the upstream's message; a
    rejected key is this server's configuration, a 502 that lasts; 429 stays a 429;
    an upstream that is busy or starting (503, 529) is a 529; other 5xx are a 500.
    """
    kind = _KINDS.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")
    return answer(kind, f"upstream {what} answered {status}: {error_message(body[:ERROR_BODY_LIMIT])}", redactor)


def event_error(kind: str, message: str, redactor: Redactor | None = None) -> BackendError:
    """An ``error`` event in an engine's stream, as the error trimkit answers with."""
    return answer(kind if kind in ANSWERS else "api_error", f"upstream error: {message[:ERROR_TEXT_LIMIT]}", redactor)


def _resolution_failed(exc: BaseException) -> bool:
    """Whether the host name did not resolve: httpx chains the resolver's ``socket.gaierror``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def transport_error(exc: httpx.HTTPError, url: str, timeout: float, *, streaming: bool,
                    redactor: Redactor | None = None) -> BackendError:
    """A failure to talk to the upstream as the error trimkit answers with; ``url`` as it may be shown."""
    reason = str(exc) or type(exc).__name__
    if redactor is not None:
        reason = redactor.text(reason)
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
