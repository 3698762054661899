"""Without an API key, only requests that a program on this machine would send.

A server without a key trusts whoever can reach it, which on loopback means local
programs, but also the web pages those programs' users open. A page can send a
"simple" cross-site POST (``text/plain`` or a form's content type: no CORS
preflight, so the browser sends it and only hides the answer), and a page whose
DNS name it rebinds to 127.0.0.1 can even read the answers, since the browser then
takes the server for the page's own origin (the class of bug Ollama had,
CVE-2024-28224). So, when no key is set:

* the ``Host`` header must name an allowed host (``allowed_hosts``: loopback names
  and the address the server is bound to; any port): 403 otherwise, which defeats
  DNS rebinding, where the browser sends the attacker's name;
* an ``Origin`` header, which browsers send with cross-site requests, must too;
* a request with a body must say ``Content-Type: application/json`` (415
  otherwise), which no simple cross-site request can.

With a key, the key is the proof of intent and none of this applies.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Iterable
from urllib.parse import urlsplit

from .errors import error_body

JSON_TYPES = ("application/json",)


def host_name(value: str) -> str:
    """The name in a ``Host`` value, without its port: ``[::1]:8787`` → ``::1``, ``Localhost.`` → ``localhost``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, colon, port = value.rpartition(":")
    name = name if colon and port.isdigit() else value
    return name.rstrip(".")


class LocalOnly:
    """The ASGI middleware; ``allowed_hosts`` are shell-style patterns of host names."""

    def __init__(self, app: Any, allowed_hosts: Iterable[str]):
        self.app = app
        self.patterns = tuple(pattern.lower() for pattern in allowed_hosts if pattern)

    def allowed(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)

    def refusal(self, scope: dict) -> tuple[int, str, str] | None:
        """``(status, error type, message)`` for a request a web page could have sent, or None."""
        headers = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name.lower(), value.decode("latin-1"))
        host = headers.get(b"host")
        if host is not None and not self.allowed(host_name(host)):
            return 403, "permission_error", (
                f"Host {host_name(host)!r} is not allowed: this server has no API key, so it answers only "
                "requests addressed to this machine (set allowed_hosts, or set an api_key)")
        origin = headers.get(b"origin")
        if origin is not None and not self.allowed(host_name(urlsplit(origin).netloc or origin)):
            return 403, "permission_error", (
                f"Origin {origin!r} is not allowed: this server has no API key, so it answers no web page "
                "(set an api_key to serve other origins)")
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            kind = headers.get(b"content-type", "").split(";")[0].strip().lower()
            if kind not in JSON_TYPES and not kind.endswith("+json"):
                return 415, "invalid_request_error", (
                    f"Content-Type must be application/json, not {kind or 'missing'!r} "
                    "(curl: -H 'content-type: application/json')")
        return None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and (refused := self.refusal(scope)) is not None:
            status, error_type, message = refused
            body = error_body(error_type, message)
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"x-should-retry", b"false")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
