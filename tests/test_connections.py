"""Connections that misbehave hold nothing for long: slow heads and bodies, clients that never read,
crowds of idle sockets, clients that half-close, and a server that stops."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import socket
import threading
import time

import httpx
import pytest

import trimkit
from trimkit.backends.base import Finished, TextDelta
from trimkit.backends.replay import ReplayBackend

from trimkit.testing import spawn_server, stop_server

from tests.fixtures.hardening import profile, serve
from tests.support.polling import wait_until
from tests.upstreams import FakeUpstream, openai_turn

HANG = 60  # seconds: bounds a hang only
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 100_000, "messages": [{"role": "user", "content": "hi"}]}


class ScriptBackend(ReplayBackend):
    """Yields its script's items in order: text, or a ``threading.Event`` to wait for (polled, so a cancel
    stops it at once). Counts generations started and finished."""

    def __init__(self, script, **kwargs):
        super().__init__([], profile=kwargs.pop("profile", profile()), **kwargs)
        self.script = script
        self.started = 0
        self.finished = 0

    async def generate(self, messages, params):
        self.started += 1
        try:
            for item in self.script:
                if isinstance(item, threading.Event):
                    while not item.is_set():
                        await asyncio.sleep(0.005)
                else:
                    yield TextDelta(item)
            yield Finished(finish="stop", input_tokens=1, output_tokens=len(self.script))
        finally:
            self.finished += 1


def raw_request(body: dict, *, stream: bool = False) -> bytes:
    data = json.dumps({**body, "stream": stream}).encode()
    return (b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(data), data))


def read_all(sock: socket.socket, limit: float = HANG) -> bytes:
    """Everything the server sends until it closes the connection (or ``limit`` seconds pass)."""
    sock.settimeout(limit)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


# --------------------------------------------------------------------------- slow requests


def test_a_request_head_that_never_completes_is_answered_408_and_closed():
    with serve(ScriptBackend(["x"]), header_timeout=0.5) as live:
        sock = socket.create_connection(("127.0.0.1", live.port))
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answer = read_all(sock)
        idle = socket.create_connection(("127.0.0.1", live.port))  # says nothing at all
        idle_answer = read_all(idle)
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"invalid_request_error"' in answer
    assert idle_answer.startswith(b"HTTP/1.1 408 ")


def test_a_body_that_never_completes_is_answered_408_and_closed():
    backend = ScriptBackend(["x"])
    with serve(backend, body_timeout=0.5) as live:
        sock = socket.create_connection(("127.0.0.1", live.port))
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"model\": ")
        answer = read_all(sock)
        after = httpx.post(live.url + "/v1/messages", json={**BODY, "max_tokens": 5}, timeout=HANG)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert after.status_code == 200 and backend.started == 1


def test_a_kept_alive_connection_that_goes_quiet_is_closed_after_the_idle_timeout():
    with serve(ScriptBackend(["ok"]), idle_timeout=1, header_timeout=HANG * 2) as live:
        assert live.server.config.timeout_keep_alive == 1  # uvicorn's own is 5 s
        sock = socket.create_connection(("127.0.0.1", live.port))
        sock.sendall(raw_request({**BODY, "max_tokens": 5}))  # HTTP/1.1: the connection is kept open
        sock.settimeout(HANG)
        received, closed = b"", False
        while not closed:  # the answer, then an end of file from the server (a timeout raises here)
            chunk = sock.recv(65536)
            received, closed = received + chunk, chunk == b""
        assert wait_until(lambda: not live.server.server_state.connections, HANG)
    assert received.startswith(b"HTTP/1.1 200 ") and b'"ok"' in received


def test_connections_beyond_the_limit_get_529_before_anything_is_read_and_the_rest_are_served():
    with serve(ScriptBackend(["ok"]), max_connections=4, header_timeout=30) as live:
        idle = [socket.create_connection(("127.0.0.1", live.port)) for _ in range(4)]
        wait_until(lambda: len(live.server.server_state.connections) == 4, HANG)
        extra = socket.create_connection(("127.0.0.1", live.port))
        refused = read_all(extra)
        for sock in idle:
            sock.close()
        wait_until(lambda: len(live.server.server_state.connections) == 0, HANG)
        served = httpx.post(live.url + "/v1/messages", json={**BODY, "max_tokens": 5}, timeout=HANG)
    assert refused.startswith(b"HTTP/1.1 529 ")
    assert json.loads(refused.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "overloaded_error"
    assert served.status_code == 200


# --------------------------------------------------------------------------- clients that never read


BIG = ["x" * 65536] * 256  # 16 MB of output: more than any socket buffers between two processes hold


def test_the_model_is_free_when_generation_ends_whatever_the_client_reads():
    backend = ScriptBackend(BIG)
    with serve(backend) as live:
        silent = socket.create_connection(("127.0.0.1", live.port))
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        silent.sendall(raw_request(BODY, stream=True))  # and never reads a byte
        assert wait_until(lambda: backend.finished == 1, HANG), "generation waited for the client to read"
        other = httpx.post(live.url + "/v1/messages", json={**BODY, "max_tokens": 3}, timeout=HANG)
        silent.close()
    assert other.status_code == 200 and backend.started == 2


def test_nine_clients_that_never_read_leave_the_queue_to_everyone_else():
    backend = ScriptBackend(BIG)
    with serve(backend, max_queue=8) as live:
        silent = []
        for _ in range(9):
            sock = socket.create_connection(("127.0.0.1", live.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(raw_request(BODY, stream=True))
            silent.append(sock)
        assert wait_until(lambda: backend.finished == 9, HANG), f"{backend.finished} of 9 generations ended"
        other = httpx.post(live.url + "/v1/messages", json={**BODY, "max_tokens": 3}, timeout=HANG)
        for sock in silent:
            sock.close()
    assert other.status_code == 200, other.text


def test_a_client_that_reads_nothing_for_the_write_timeout_is_dropped():
    backend = ScriptBackend(BIG)
    with serve(backend, write_timeout=0.5) as live:
        silent = socket.create_connection(("127.0.0.1", live.port))
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        silent.sendall(raw_request(BODY, stream=True))
        assert wait_until(lambda: not live.server.server_state.connections, HANG), "the connection was kept"
        received = read_all(silent)
    assert b"event: message_start" in received and b"event: message_stop" not in received


# --------------------------------------------------------------------------- pings


def test_pings_keep_coming_while_the_reader_holds_back_what_may_be_a_tool_call():
    release = threading.Event()
    script = ["Let me look. ", '<function_calls>\n<invoke name="Read">\n<parameter name="file_path">', release,
              "/a</parameter>\n</invoke>\n</function_calls>"]
    tools = [{"name": "Read", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}]
    pings_after_text = 0
    with serve(ScriptBackend(script), ping_interval=0.1) as live, httpx.stream(
            "POST", live.url + "/v1/messages", json={**BODY, "stream": True, "tools": tools}, timeout=HANG) as response:
        events = (line[7:] for line in response.iter_lines() if line.startswith("event: "))
        for event in events:
            if event == "content_block_delta":
                break
        for event in events:
            pings_after_text += event == "ping"
            if pings_after_text == 3:
                break
        release.set()
        rest = list(events)
    assert pings_after_text == 3
    assert "content_block_start" in rest and rest[-1] == "message_stop"


# --------------------------------------------------------------------------- half-close


def test_a_client_that_half_closes_after_sending_still_gets_its_answer():
    with serve(ScriptBackend(["all ", "of ", "it"])) as live:
        answers = []
        for stream in (False, True):
            sock = socket.create_connection(("127.0.0.1", live.port))
            sock.sendall(raw_request({**BODY, "max_tokens": 50}, stream=stream))
            sock.shutdown(socket.SHUT_WR)
            answers.append(read_all(sock))
    plain, streamed = answers
    assert b" 200 OK" in plain and b'"all of it"' in plain
    assert b" 200 OK" in streamed and b"event: message_stop" in streamed


def test_a_client_that_closes_entirely_frees_the_model_at_once():
    hold = threading.Event()
    backend = ScriptBackend(["a", hold])
    with serve(backend) as live:
        for stream in (False, True):
            sock = socket.create_connection(("127.0.0.1", live.port))
            sock.sendall(raw_request(BODY, stream=stream))
            wait_until(lambda: backend.started > backend.finished, HANG)
            sock.close()
            assert wait_until(lambda: backend.started == backend.finished, HANG), "the model kept generating"
    assert not hold.is_set()


# --------------------------------------------------------------------------- stopping


def test_a_stopping_server_ends_open_requests_with_an_overloaded_error():
    hold = threading.Event()
    backend = ScriptBackend(["partial ", hold])
    live = serve(backend)
    live.server.grace = 0.3
    with live:
        streaming = httpx.Client(timeout=HANG).send(
            httpx.Request("POST", live.url + "/v1/messages", json={**BODY, "stream": True}), stream=True)
        results = {}

        def plain():
            results["plain"] = httpx.post(live.url + "/v1/messages", json=BODY, timeout=HANG)

        thread = threading.Thread(target=plain)
        thread.start()
        wait_until(lambda: len(live.server.server_state.tasks) == 2, HANG)  # one generating, one queued
        live.server.should_exit = True
        streamed = b"".join(streaming.iter_bytes()).decode()
        thread.join(HANG)
    assert results["plain"].status_code == 529
    assert results["plain"].json()["error"]["type"] == "overloaded_error"
    assert "event: error" in streamed and "overloaded_error" in streamed


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signalled_trimkit_serve_answers_open_requests_with_an_overloaded_error_and_logs_no_traceback(sig):
    slow = openai_turn(*["word "] * 3000)  # 30 s of output at the fake engine's pace
    with FakeUpstream(slow) as upstream:
        proc, url = spawn_server(["--backend", "openai", "--upstream", upstream.url])
        try:
            with httpx.Client(base_url=url, timeout=HANG) as client:
                with client.stream("POST", "/v1/messages", json={**BODY, "stream": True}) as streaming:
                    lines = streaming.iter_lines()
                    assert "event: content_block_delta" in iter(lines)
                    plain = {}
                    thread = threading.Thread(target=lambda: plain.update(
                        response=client.post("/v1/messages", json=BODY)))
                    thread.start()
                    wait_until(lambda: len(upstream.requests) == 2, HANG)
                    proc.send_signal(sig)
                    rest = "\n".join(lines)
                    thread.join(HANG)
        finally:
            output = stop_server(proc)
    assert "event: error" in rest and '"overloaded_error"' in rest
    assert plain["response"].status_code == 529
    assert plain["response"].json()["error"]["type"] == "overloaded_error"
    assert "Traceback" not in output and "Exception in ASGI" not in output, output


# --------------------------------------------------------------------------- the event loop stays free


class HeldStage:
    """A stage that waits, while it runs, until the test lets it finish: a request's CPU work."""

    def __init__(self):
        self.running = threading.Event()
        self.release = threading.Event()

    @trimkit.hookimpl
    def trimkit_register_stages(self):
        return [trimkit.Stage(name="held", run=self.run, order=50)]

    def run(self, state):
        self.running.set()
        self.release.wait(HANG)


def test_health_answers_while_a_request_is_being_prepared():
    held = HeldStage()
    pipeline = trimkit.Pipeline(plugins=[held])
    with serve(ScriptBackend(["done"]), pipeline=pipeline) as live:
        result = {}
        thread = threading.Thread(target=lambda: result.update(
            response=httpx.post(live.url + "/v1/messages", json={**BODY, "max_tokens": 5}, timeout=HANG)))
        thread.start()
        assert held.running.wait(HANG)
        try:
            health = httpx.get(live.url + "/health", timeout=HANG)
        finally:
            held.release.set()
            thread.join(HANG)
    assert health.status_code == 200 and result["response"].status_code == 200


def test_running_out_of_file_descriptors_logs_a_line_a_minute_not_a_flood(tmp_path):
    script = tmp_path / "script.json"
    script.write_text('["ok"]')
    proc, url = spawn_server(["--backend", "replay", "--script", str(script)])
    crowd = []
    try:
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (48, 48))  # about 20 left for connections
        for _ in range(200):
            try:
                crowd.append(socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5))
            except OSError:
                break
        time.sleep(3)  # accept() keeps failing meanwhile
        for sock in crowd:
            sock.close()
        crowd.clear()
        assert wait_until(lambda: httpx.get(url + "/health", timeout=5).status_code == 200, HANG)
    finally:
        for sock in crowd:
            sock.close()
        output = stop_server(proc)
    assert len(output) < 2000 and output.count("Traceback") == 0, output
