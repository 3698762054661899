"""Anthropic-shaped errors: ``{"type": "error", "error": {"type": ..., "message": ...}}``."""

from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from ..errors import TrimkitError
from ..wire import ErrorDetail, ErrorResponse

log = logging.getLogger("trimkit.server")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",  # an upstream engine refused this server (its key, its billing)
    503: "overloaded_error",
    529: "overloaded_error",
}


RETRIED = (429, 500, 529)


class ApiError(TrimkitError):
    """An error to answer with; ``status`` picks the Anthropic error type.

    ``lasting`` means a retry cannot help (the model failed to load, the
    configuration is wrong): the answer says ``x-should-retry: false``, which
    Claude Code and the SDKs obey, so the user sees the reason at once instead of
    after minutes of retries.
    """

    def __init__(self, status: int, message: str, error_type: str | None = None, *, lasting: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or ERROR_TYPES.get(status, "api_error")
        self.lasting = lasting


def error_body(error_type: str, message: str) -> bytes:
    return msgspec.json.encode(ErrorResponse(error=ErrorDetail(type=error_type, message=message)))


def error_response(status: int, message: str, error_type: str | None = None, *, lasting: bool = False,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=error_body(error_type or ERROR_TYPES.get(status, "api_error"), message),
        status_code=status,
        media_type="application/json",
        headers={**(headers or {}), "x-should-retry": "true" if status in RETRIED and not lasting else "false"},
    )


def handle_api_error(_: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.message, exc.error_type, lasting=exc.lasting)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if status == 404:
        message = f"Not found: {request.method} {request.url.path}"
    elif status == 405:
        message = f"Method {request.method} not allowed for {request.url.path}"
    elif status == 413:
        message = "Request body is too large"
    else:
        message = exc.detail or "Request could not be processed"
    allow = (exc.headers or {}).get("allow") if status == 405 else None
    return error_response(status, message, headers={"allow": allow} if allow else None)


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, f"Internal server error ({type(exc).__name__})")


EXCEPTION_HANDLERS = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
