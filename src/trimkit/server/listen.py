"""Serving the app with uvicorn, with the limits a server facing any client needs.

uvicorn (0.54) has a keep-alive timeout (``timeout_keep_alive``), a cap on a
request head's size (``h11_max_incomplete_event_size``), a graceful-shutdown
timeout and a ``limit_concurrency`` that answers a plain-text 503 once a request
has been read. It has no timeout for a request head or body that never completes,
none for a client that stops reading, and it closes a connection whose client
half-closes after sending. :class:`GuardedProtocol` (its h11 protocol, extended)
adds what is missing, at the connection:

* ``header_timeout``: a connection gets this long, from its opening or from its
  previous response, to send a complete request head; then it is closed (408).
* ``body_timeout``: this long, from the head, to send the whole body.
* ``write_timeout``: a response may wait this long for a client that is not
  reading (the transport's buffer full); then the connection is dropped, which
  ends the request as a disconnect does. Generation does not wait for the client
  meanwhile (:mod:`.delivery`).
* ``max_connections``: connections beyond it are answered a 529 and closed at
  once, before anything is read, so a crowd of idle connections cannot use up the
  process's file descriptors.
* A client that half-closes (shuts down its sending side) after a complete
  request still gets its answer. A client that closed entirely is told from one by
  writing to it: an interim ``102 Processing`` before the response starts, an SSE
  comment in a stream; a gone client answers with a reset and its request ends as
  a disconnect, as quickly as before.

:class:`TrimkitServer` adds the stop of :mod:`.shutdown` (a grace period, then an
``overloaded_error`` to whoever is still waiting) and logs "too many open files"
once a minute rather than once per failed ``accept``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import error_body
from .shutdown import Shutdown

log = logging.getLogger("trimkit.server")

MAX_HEAD_BYTES = 16 * 1024
"""The largest request head (request line and headers); Claude Code's is under 2 KB."""
SHUTDOWN_GRACE = 2.0
"""Seconds open requests get to finish when the server stops, before an ``overloaded_error``."""
FD_RESERVE = 64
"""File descriptors kept free of connections: for the model's files, captures, logs, upstream sockets."""
PROBE_DELAYS = (0.0, 0.1, 1.0)
"""After a client half-closes: when to write to it to learn whether it is still there (then every ``PROBE_EVERY``)."""
PROBE_EVERY = 5.0
EMFILE_LOG_EVERY = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    write_timeout: float = 60.0
    max_connections: int = 128

    @classmethod
    def from_settings(cls, settings: Any) -> "ConnectionLimits":
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            write_timeout=settings.write_timeout,
            max_connections=min(settings.max_connections, usable_descriptors()),
        )


def usable_descriptors() -> int:
    """Connections the process's file-descriptor limit allows, less :data:`FD_RESERVE`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, (soft if soft != resource.RLIM_INFINITY else 1 << 20) - FD_RESERVE)


def raise_descriptor_limit() -> None:
    """Raise the soft file-descriptor limit to the hard one (macOS starts processes at 256)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        for target in (hard, 10240):  # macOS refuses more than OPEN_MAX for an "unlimited" hard limit
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, hard), hard))
                return
            except (ValueError, OSError):
                continue


def _raw_response(status: int, reason: str, error_type: str, message: str) -> bytes:
    body = error_body(error_type, message)
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n")
    if status == 529:
        head += "x-should-retry: true\r\n"
    return head.encode() + b"\r\n" + body


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with the timeouts, limit and half-close handling above."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._probe: asyncio.TimerHandle | None = None
        self._cycle_seen: Any = None
        self._reading_body = False
        self._half_closed = False

    # ------------------------------------------------------------------ connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.write(_raw_response(529, "Site Overloaded", "overloaded_error",
                                          "Overloaded: too many open connections; retry shortly"))
            transport.close()
            return
        self._arm(self.limits.header_timeout, "a complete request head")

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._timer, self._write_timer, self._probe):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    # ------------------------------------------------------------------ reading

    def data_received(self, data: bytes) -> None:
        if self._timer is None and not self._in_request():
            self._arm(self.limits.header_timeout, "a complete request head")
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle is not self._cycle_seen:  # a request head was read
            self._cycle_seen = cycle
            self._reading_body = cycle.more_body
            self._disarm()
            if self._reading_body:
                self._arm(self.limits.body_timeout, "the whole request body")
        if self._reading_body and cycle is not None and not cycle.more_body:
            self._reading_body = False
            self._disarm()

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self, seconds: float, waiting_for: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._timed_out, seconds, waiting_for)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, seconds: float, waiting_for: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_raw_response(408, "Request Timeout", "invalid_request_error",
                                               f"Request timeout: no {waiting_for} within {seconds:g} s"))
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._half_closed and not self.transport.is_closing():
            self.transport.close()  # the client can send nothing more

    # ------------------------------------------------------------------ writing

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.write_timeout, self._write_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_stalled(self) -> None:
        """The client read nothing for ``write_timeout``: it is treated as gone, its unsent data dropped.

        A plain close would leave what the kernel holds to trickle out for as long as
        the client keeps its window open; a zero linger resets the connection instead.
        """
        self._write_timer = None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()

    # ------------------------------------------------------------------ half-close

    def eof_received(self) -> bool:  # type: ignore[override]
        cycle = self.cycle
        answering = cycle is not None and not cycle.more_body and not cycle.response_complete
        if not answering or self.scope.get("http_version") == "1.0":
            return False  # nothing is owed to the client: close as uvicorn does
        self._half_closed = True
        self._schedule_probe(0)
        return True

    def _schedule_probe(self, step: int) -> None:
        delay = PROBE_DELAYS[step] if step < len(PROBE_DELAYS) else PROBE_EVERY
        self._probe = self.loop.call_later(delay, self._send_probe, step)

    def _send_probe(self, step: int) -> None:
        """Write what the client may ignore; one that closed entirely answers with a reset."""
        self._probe = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or cycle.response_complete:
            return
        try:
            if not cycle.response_started:
                self.transport.write(self.conn.send(h11.InformationalResponse(status_code=102, headers=[])))
            elif cycle.scope.get(STREAMING):
                self.transport.write(self.conn.send(h11.Data(data=b":\n\n")))  # an SSE comment
        except h11.LocalProtocolError:
            return
        if not self.transport.is_closing():
            self._schedule_probe(step + 1)


STREAMING = "trimkit.event_stream"
"""Set in a request's scope once its response is an event stream (a probe may then be an SSE comment)."""


def _note_event_streams(app: Any) -> Any:
    """The ASGI app, marking the scope of each response that is an event stream, for the probes."""

    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            return await app(scope, receive, send)

        async def sending(message: dict) -> None:
            if message.get("type") == "http.response.start":
                scope[STREAMING] = any(name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                                       for name, value in message.get("headers", ()))
            await send(message)

        await app(scope, receive, sending)

    return wrapped


OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _AcceptOnceOnFailure:
    """The listening socket as asyncio's accept loop sees it: after one failure for want of
    descriptors, "nothing more to accept".

    asyncio (3.11 to 3.13) goes on calling ``accept()`` after such a failure, up to the
    listen backlog (2,048 with uvicorn) times per wake-up, each failure logged and each
    scheduling its own retry a second later, which then fail alike, and which each log
    a traceback once the server has closed its socket: megabytes of log in seconds.
    """

    __slots__ = ("sock", "failed")

    def __init__(self, sock: Any):
        self.sock = sock
        self.failed = False

    def accept(self) -> Any:
        if self.failed:
            raise BlockingIOError
        try:
            return self.sock.accept()
        except OSError as exc:
            self.failed = exc.errno in OUT_OF_RESOURCES
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class GuardedEventLoop(asyncio.SelectorEventLoop):
    """asyncio's event loop, retrying ``accept`` once a second (not 2,048 times) when out of descriptors."""

    def _accept_connection(self, protocol_factory: Any, sock: Any, *args: Any, **kwargs: Any) -> None:
        sock = sock.sock if isinstance(sock, _AcceptOnceOnFailure) else sock
        super()._accept_connection(protocol_factory, _AcceptOnceOnFailure(sock), *args, **kwargs)  # type: ignore[misc]

    def _start_serving(self, protocol_factory: Any, sock: Any, *args: Any, **kwargs: Any) -> None:
        sock = sock.sock if isinstance(sock, _AcceptOnceOnFailure) else sock
        if sock.fileno() < 0:  # a retry that outlived the server's socket
            return
        super()._start_serving(protocol_factory, sock, *args, **kwargs)  # type: ignore[misc]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop :func:`uvicorn_server` runs on (uvicorn's ``loop`` setting names this function)."""
    return GuardedEventLoop()


class TrimkitServer(uvicorn.Server):
    """uvicorn's server with trimkit's stop and a quiet "too many open files"."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown | None, grace: float = SHUTDOWN_GRACE):
        super().__init__(config)
        self.stopping = shutdown
        self.grace = grace
        self._emfile_logged = float("-inf")
        self._emfile_missed = 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict) -> None:
            exc = context.get("exception")
            if isinstance(exc, OSError) and exc.errno in OUT_OF_RESOURCES:
                self._out_of_descriptors(exc)
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)
        await super().startup(sockets)

    def _out_of_descriptors(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._emfile_logged < EMFILE_LOG_EVERY:
            self._emfile_missed += 1
            return
        more = f" ({self._emfile_missed} more since)" if self._emfile_missed else ""
        log.warning("cannot accept connections: %s%s; lower max_connections or raise the file limit (ulimit -n)",
                    exc.strerror or exc, more)
        self._emfile_logged, self._emfile_missed = now, 0

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        ending = None
        if self.stopping is not None:
            ending = asyncio.get_running_loop().call_later(self.grace, self.stopping.begin)
        try:
            await super().shutdown(sockets)
        finally:
            if ending is not None:
                ending.cancel()


def uvicorn_server(app: Any, settings: Any, *, host: str | None = None, port: int | None = None,
                   log_level: str | None = None) -> TrimkitServer:
    """The uvicorn server for ``app`` (made by :func:`~trimkit.server.create_app`) with ``settings``' limits."""
    limits = ConnectionLimits.from_settings(settings)
    protocol = type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})
    shutdown = app.state.get("shutdown") if hasattr(app, "state") else None
    config = uvicorn.Config(
        _note_event_streams(app),
        host=host if host is not None else settings.host,
        port=port if port is not None else settings.port,
        http=protocol,
        loop=f"{__name__}:new_event_loop",
        lifespan="on",
        log_level=log_level or settings.log_level,
        timeout_keep_alive=max(1, round(settings.idle_timeout)),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE + 3),
        server_header=False,
    )
    return TrimkitServer(config, shutdown)
