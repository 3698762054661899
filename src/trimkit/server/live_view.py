"""The live view at ``/ui`` and the Prometheus endpoint at ``/metrics``.

``/ui`` lists the recent requests, newest first, and keeps the list current over
server-sent events (``/ui/events``): each event carries rows rendered on the
server, which a small script (``pages/live.js``) puts in place. ``/ui/requests/N``
is one request's report. No page loads anything from elsewhere, and the Content
Security Policy says so: scripts and styles only from this server, no inline
script.

With an API key, both endpoints require it. ``/metrics`` takes it as the API does
(``x-api-key``, or ``Authorization: Bearer`` as Prometheus sends with
``authorization: {credentials: KEY}``). A browser cannot send a header from a plain
page, so ``/ui`` shows a form that takes the key once and answers with a session
cookie (HttpOnly, SameSite=Strict, for ``/ui`` only); the cookie holds a random
token the server made when it started, never the key. Without an API key, as the
API itself, the pages are open to whoever can reach the server (by default only
this machine).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from typing import Any, AsyncIterator, Callable

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath
from litestar.response import Stream

from .. import report_html
from .activity import COALESCE_SECONDS
from .observer import Observer
from .metrics import METRICS_MEDIA_TYPE

SESSION_COOKIE = "trimkit_ui"
QUIET_PING_SECONDS = 15.0
ASSETS = {"page.css": "text/css", "live.js": "text/javascript"}
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def sse_frame(event: str, data: str) -> bytes:
    """One server-sent event; every line of ``data`` (split on any line break) gets its own ``data:``."""
    lines = data.splitlines() or [""]
    return (f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


class UiAccess:
    """Who may see the pages: anyone without an API key; with one, a session cookie or the key itself."""

    def __init__(self, api_key: str | None, key_of: Callable[[Any], str | None]):
        self.expected = api_key.encode() if api_key else None
        self.key_of = key_of
        self.session = secrets.token_urlsafe(32)

    @property
    def locked(self) -> bool:
        return self.expected is not None

    def key_matches(self, key: str | None) -> bool:
        return key is not None and self.expected is not None and hmac.compare_digest(key.encode(), self.expected)

    def allows(self, request: Request) -> bool:
        if self.expected is None:
            return True
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None and hmac.compare_digest(cookie.encode(), self.session.encode()):
            return True
        return self.key_matches(self.key_of(request))

    def cookie(self, request: Request, value: str, *, expire: bool = False) -> Cookie:
        return Cookie(key=SESSION_COOKIE, value=value, path="/ui", httponly=True, samesite="strict",
                      secure=request.url.scheme == "https", max_age=0 if expire else None)


def page(html: str, status: int = 200, **options: Any) -> Response:
    return Response(content=html.encode(), status_code=status, media_type="text/html",
                    headers=PAGE_HEADERS, **options)


def live_view_routes(observer: Observer, access: UiAccess) -> list[BaseRouteHandler]:
    """The ``/ui`` pages, their events and assets (none when the live view is off)."""
    recent = observer.recent
    if recent is None:
        return []

    def refused() -> Response:
        return page(report_html.login_page(failed=False), 401)

    @get("/ui", include_in_schema=False)
    async def live(request: Request) -> Response:
        if not access.allows(request):
            return refused()
        return page(report_html.live_page(recent.newest(), header=observer.header(),
                                          texts_shown=observer.texts_shown, locked=access.locked))

    @post("/ui/login", include_in_schema=False, status_code=303)
    async def login(request: Request) -> Response:
        form = await request.form()
        key = form.get("key")
        if not access.key_matches(key if isinstance(key, str) else None):
            return page(report_html.login_page(failed=True), 401)
        return Response(content=b"", status_code=303, headers={"location": "/ui", **PAGE_HEADERS},
                        cookies=[access.cookie(request, access.session)])

    @post("/ui/logout", include_in_schema=False, status_code=303)
    async def logout(request: Request) -> Response:
        return Response(content=b"", status_code=303, headers={"location": "/ui", **PAGE_HEADERS},
                        cookies=[access.cookie(request, "", expire=True)])

    @get("/ui/requests/{request_id:int}", include_in_schema=False)
    async def detail(request: Request, request_id: FromPath[int]) -> Response:
        if not access.allows(request):
            return refused()
        view = recent.get(request_id)
        if view is None:
            return page(report_html.render("gone.html", request_id=request_id), 404)
        await recent.texts(view)
        return page(report_html.detail_page(view, texts_shown=observer.texts_shown))

    @get("/ui/events", include_in_schema=False)
    async def events(request: Request) -> Response:
        if not access.allows(request):
            return Response(content=b"", status_code=401, headers=PAGE_HEADERS)
        listener = recent.listener()

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 3000\n\n" + sse_frame("reset", report_html.rows(recent.newest()))
                yield sse_frame("status", report_html.status_bar(observer.header()))
                while True:
                    if not await listener.wait(QUIET_PING_SECONDS):
                        yield b": ping\n\n"  # finds a page that went away while nothing happened
                        continue
                    await asyncio.sleep(COALESCE_SECONDS)  # rows that change together are sent together
                    changed, reset = listener.take()
                    if reset:
                        rows = sse_frame("reset", report_html.rows(recent.newest()))
                    else:
                        views = [v for v in map(recent.get, changed) if v is not None]
                        rows = sse_frame("request", report_html.rows(views)) if views else b""
                    yield rows + sse_frame("status", report_html.status_bar(observer.header()))
            finally:
                recent.forget(listener)

        return Stream(stream(), media_type="text/event-stream",
                      headers={**PAGE_HEADERS, "x-accel-buffering": "no"})

    @get("/ui/assets/{name:str}", include_in_schema=False)
    async def assets(name: FromPath[str]) -> Response:
        if name not in ASSETS:
            return Response(content=b"not found", status_code=404, media_type="text/plain")
        return Response(content=report_html.asset(name).encode(), media_type=ASSETS[name],
                        headers={**PAGE_HEADERS, "cache-control": "no-cache"})

    return [live, login, logout, detail, events, assets]


def metrics_routes(observer: Observer, guards: list) -> list[BaseRouteHandler]:
    """``/metrics`` (none when metrics are off), behind the API's own key check."""
    metrics = observer.metrics
    if metrics is None:
        return []

    @get("/metrics", guards=guards, include_in_schema=False)
    async def scrape() -> Response:
        return Response(content=metrics.exposition(), media_type=METRICS_MEDIA_TYPE)

    return [scrape]
