"""Bad input never gets a 5xx, a hang or a crash: every answer is a 2xx or an Anthropic-shaped 4xx."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.fixtures.hardening import (
    REPLAY_TURNS,
    Tally,
    base_request,
    json_bodies,
    problem_with,
    profile,
    serve,
    strange_requests,
)
from trimkit.backends.replay import ReplayBackend
from trimkit.server import ServerSettings

FUZZ = settings(
    max_examples=120,  # each example is a request to a live server
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
ROUTES = ["/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens"]
JSON = {"content-type": "application/json", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def tally():
    tally = Tally()
    yield tally
    print(f"\nfuzz: {tally.summary()}")


@pytest.fixture(scope="module")
def server():
    with serve(ReplayBackend(REPLAY_TURNS, profile=profile(), loop=True)) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def post_and_check(client: httpx.Client, tally: Tally, route: str, body: bytes) -> None:
    response = client.post(route, content=body, headers=JSON)
    problem = tally.check(response)
    assert problem is None, f"{route} {body[:200]!r}…: {problem}"


@FUZZ
@given(body=json_bodies, route_index=...)
def test_arbitrary_json_bodies_get_2xx_or_anthropic_4xx(client, tally, body, route_index: bool):
    post_and_check(client, tally, ROUTES[int(route_index)], body)


@FUZZ
@given(body=strange_requests, count=...)
def test_strange_messages_requests_get_2xx_or_anthropic_4xx(client, tally, body, count: bool):
    post_and_check(client, tally, ROUTES[2] if count else ROUTES[0], body)


def test_the_server_still_serves_after_the_fuzzing(client, tally):
    response = client.post("/v1/messages", json=base_request())
    assert response.status_code == 200 and response.json()["content"]
    assert client.get("/health").json()["queue"] == 0
    assert tally.server_errors == []


# --------------------------------------------------------------------------- schemathesis


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_schemathesis_finds_no_server_error_in_any_documented_operation(server, tally, mode):
    """Requests generated from the server's own OpenAPI document, valid and deliberately invalid."""
    schema = schemathesis.openapi.from_url(server.url + "/schema/openapi.json")
    operations = {f"{op.ok().method.upper()} {op.ok().path}" for op in schema.get_all_operations()}
    assert {"POST /v1/messages", "POST /v1/messages/count_tokens", "GET /health"} <= operations
    seen: set[str] = set()

    @settings(max_examples=60, database=None, suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(generation_mode=mode))
    def call(case):
        response = case.call(timeout=30)
        seen.add(f"{case.method.upper()} {case.path}")
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", [""])[0]
            answer = httpx.Response(response.status_code, headers={"content-type": content_type}, content=response.content)
            assert problem_with(answer) is None

    call()
    assert "POST /v1/messages" in seen


# --------------------------------------------------------------------------- size limit


def read_response(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + content_length(data):
        if time.monotonic() > deadline:
            break
        ready, _, _ = select.select([sock], [], [], 0.5)
        if ready:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def content_length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    return 0


def status_and_json(raw: bytes) -> tuple[int, dict]:
    head, body = raw.split(b"\r\n\r\n", 1)
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_chunked_body_over_the_limit_is_refused_before_it_has_all_been_sent():
    """The server answers 413 while the client is still sending: it never buffers the whole body."""
    limit, offered = 1 << 20, 256 << 20
    backend = ReplayBackend(["never"], profile=profile())
    with serve(backend, max_body_bytes=limit) as live:
        sock = socket.create_connection(("127.0.0.1", live.port))
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        sock.setblocking(False)
        sent, pending = 0, b""
        deadline = time.monotonic() + 20
        answered = False
        while sent < offered and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 0.5)
            if readable:
                answered = True
                break
            if writable:
                pending = pending or frame
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    answered = True
                    break
                sent += n
                pending = pending[n:]
        sock.setblocking(True)
        raw = read_response(sock, time.monotonic() + 30)
        sock.close()
    assert answered, f"no answer after sending {sent:,} bytes"
    assert sent < offered // 8, f"the server read {sent:,} bytes before answering"
    status, payload = status_and_json(raw)
    assert status == 413
    assert payload["error"]["type"] == "request_too_large"


def test_a_content_length_over_the_default_limit_is_refused_at_once():
    """A tiny body announced as 32 MiB + 1 is refused from the header alone."""
    settings_ = ServerSettings(backend="replay")
    assert settings_.max_body_bytes == 32 * 1024 * 1024
    backend = ReplayBackend(["never"], profile=profile())
    with serve(backend) as live:
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=10)
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n{}" % (settings_.max_body_bytes + 1))
        raw = read_response(sock, time.monotonic() + 30)
        sock.close()
    status, payload = status_and_json(raw)
    assert status == 413 and payload["error"]["type"] == "request_too_large"
    assert backend._next == 0
