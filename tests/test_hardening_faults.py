"""Faults: disconnects free the model, backend failures end one request only, a failed load keeps /health up."""

from __future__ import annotations

import json
import shutil
import socket
import threading

import httpx
import pytest

from tests.fixtures.hardening import ValveBackend, base_request, probed_mlx_backend, profile, serve, served_jobs
from tests.support.polling import wait_until
from tests.support.sse import read_until_first_delta, sse_events, streamed_text
from trimkit.backends.base import BackendError, TextDelta
from trimkit.backends.replay import ReplayBackend
from trimkit.server import ServerSettings, create_app
from trimkit.backends import make_backend
from trimkit.testing import LiveServer


# --------------------------------------------------------------------------- disconnects


def test_a_client_that_closes_mid_stream_frees_the_model_before_another_step():
    """The backend is closed while it waits for its next step: no step runs for a client that left."""
    backend = ValveBackend(chunks=1000)
    backend.open(1)
    with serve(backend) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        with client.stream("POST", "/v1/messages", json=base_request(stream=True, max_tokens=1000)) as response:
            assert "event: content_block_delta" in read_until_first_delta(response)
        freed = backend.closed.wait(60)
        queue_after = client.get("/health").json()["queue"]
        backend.open(10**6)
        after = client.post("/v1/messages", json=base_request(max_tokens=3))
    assert freed and backend.closed_after[0] == 1
    assert queue_after == 0
    assert after.status_code == 200 and backend.generations == 2


def post_raw(url: str, body: dict) -> socket.socket:
    """Send a request on a bare socket and read nothing: a client that waits, then may just go."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                 b"content-length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return sock


def test_a_client_that_leaves_the_queue_never_reaches_the_model():
    backend = ValveBackend(chunks=2)
    with serve(backend) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        first = threading.Thread(target=client.post, args=("/v1/messages",), kwargs={"json": base_request()})
        first.start()
        assert wait_until(lambda: backend.generations == 1)
        queued = post_raw(live.url, base_request(stream=True))
        assert wait_until(lambda: client.get("/health").json()["queue"] == 2)
        queued.close()
        assert wait_until(lambda: client.get("/health").json()["queue"] == 1)
        backend.open(10**6)
        first.join(60)
        final_queue = client.get("/health").json()["queue"]
    assert backend.generations == 1 and final_queue == 0


class BusyBackend(ReplayBackend):
    """Produces chunks without ever awaiting, as a fast in-memory backend may."""

    def __init__(self, chunks: int):
        super().__init__([], profile=profile())
        self.chunks = chunks
        self.produced = 0
        self.closed = threading.Event()

    async def generate(self, messages, params):
        try:
            for _ in range(self.chunks):
                self.produced += 1
                yield TextDelta("busy ")
        finally:
            self.closed.set()


def test_a_disconnect_is_noticed_even_from_a_backend_that_never_waits():
    backend = BusyBackend(chunks=2_000_000)
    with serve(backend) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        with client.stream("POST", "/v1/messages", json=base_request(stream=True, max_tokens=10**7)) as response:
            read_until_first_delta(response)
        assert backend.closed.wait(30)
        health = client.get("/health")
    assert backend.produced < backend.chunks
    assert health.status_code == 200 and health.json()["queue"] == 0


# --------------------------------------------------------------------------- backend failures


class FlakyBackend(ReplayBackend):
    """Every other generation fails after one chunk (or before any, or with an unexpected error)."""

    def __init__(self, failure: str):
        super().__init__([], profile=profile())
        self.failure = failure
        self.calls = 0

    async def generate(self, messages, params):
        self.calls += 1
        failing = self.calls % 2 == 1
        if failing and self.failure == "before_first_chunk":
            raise BackendError("the model crashed before its first token")
        yield TextDelta(f"reply {self.calls} ")
        if failing:
            if self.failure == "unexpected":
                raise RuntimeError("something nobody planned for")
            raise BackendError("the model crashed")
        yield TextDelta("complete")


@pytest.mark.parametrize("failure", ["mid_stream", "before_first_chunk", "unexpected"])
def test_repeated_backend_failures_end_only_their_own_request(failure):
    backend = FlakyBackend(failure)
    message = {"mid_stream": "the model crashed", "before_first_chunk": "the model crashed before its first token",
               "unexpected": "Internal server error (RuntimeError)"}[failure]
    with serve(backend) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        for round_ in range(6):
            stream = round_ % 2 == 0
            failed = client.post("/v1/messages", json=base_request(stream=stream))
            served = client.post("/v1/messages", json=base_request(stream=stream))
            if stream and failure == "before_first_chunk":  # nothing streamed yet: the failure has its own status
                assert failed.status_code == 500
                assert failed.json() == {"type": "error", "error": {"type": "api_error", "message": message}}
                assert sse_events(served.text)[-1][0] == "message_stop"
                text = "".join(d["delta"]["text"] for n, d in sse_events(served.text) if n == "content_block_delta")
            elif stream:
                assert failed.status_code == 200
                name, data = sse_events(failed.text)[-1]
                assert name == "error" and data == {"type": "error", "error": {"type": "api_error", "message": message}}
                assert sse_events(served.text)[-1][0] == "message_stop"
                text = streamed_text(served.text)
            else:
                assert failed.status_code == 500
                assert failed.json()["error"]["type"] == "api_error"
                assert failed.json()["error"]["message"].startswith(message.split(" (")[0])
                text = served.json()["content"][0]["text"]
            assert text == f"reply {backend.calls} complete"
        health = client.get("/health").json()
    assert backend.calls == 12 and health["queue"] == 0


# --------------------------------------------------------------------------- prompts that cannot fit


class RecordingBackend(ReplayBackend):
    def __init__(self, window: int):
        super().__init__(["fits"], profile=profile(window), loop=True)
        self.generated = 0

    async def generate(self, messages, params):
        self.generated += 1
        async for event in super().generate(messages, params):
            yield event


def test_a_prompt_that_cannot_fit_is_400_before_anything_is_generated_for_it():
    backend = RecordingBackend(window=300)
    huge = [{"role": "user", "content": "word " * 50_000}]
    with serve(backend) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        answers = [
            client.post("/v1/messages", json=base_request(messages=huge)),
            client.post("/v1/messages", json=base_request(messages=huge, stream=True)),
            client.post("/v1/messages/count_tokens", json={"model": "claude-x", "messages": huge}),
        ]
        queue = client.get("/health").json()["queue"]
        fits = client.post("/v1/messages", json=base_request())
    for answer in answers:
        assert answer.status_code == 400
        assert answer.json()["error"]["message"].startswith("prompt is too long: ")
    assert queue == 0 and backend.generated == 1 and fits.status_code == 200


# --------------------------------------------------------------------------- failed model loads


def health_of(settings: ServerSettings, backend=None) -> tuple[httpx.Response, httpx.Response]:
    """/health once loading is over, and the answer to a request (the app builds the backend unless given one)."""
    with LiveServer(create_app(settings, backend=backend)) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        assert wait_until(lambda: client.get("/health").json()["status"] != "loading", 30)
        return client.get("/health"), client.post("/v1/messages", json=base_request())


def test_a_model_directory_without_config_leaves_health_answering_why(tmp_path):
    pytest.importorskip("mlx_lm", reason="without MLX the load fails before it looks for config.json")
    health, message = health_of(ServerSettings(backend="mlx", model=str(tmp_path)))
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "error" and "config.json" in body["detail"] and tmp_path.name in body["detail"]
    assert str(tmp_path) not in health.text  # a directory by its name only: /health answers anyone
    assert message.status_code == 500 and "config.json" in message.json()["error"]["message"]


def test_a_broken_config_json_leaves_health_answering_why(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    health, _ = health_of(ServerSettings(backend="mlx", model=str(tmp_path)))
    assert health.status_code == 503
    assert health.json()["status"] == "error" and "failed to load" in health.json()["detail"]


def test_weights_that_fail_to_load_leave_health_answering_why(tiny_model_dir, tmp_path):
    broken = tmp_path / "no-weights"
    shutil.copytree(tiny_model_dir, broken)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()
    settings = ServerSettings(backend="mlx", model=str(broken))
    backend = make_backend(settings)
    try:
        health, message = health_of(settings, backend)
    finally:
        backend.close()
    assert health.status_code == 503
    assert health.json()["status"] == "error" and "failed to load" in health.json()["detail"]
    assert message.status_code == 500


# --------------------------------------------------------------------------- the MLX backend through the server
# (tiny_model_dir skips these where MLX is not installed)


def test_mlx_a_client_that_closes_mid_stream_frees_the_model_within_one_step(tiny_model_dir):
    backend = probed_mlx_backend()(str(tiny_model_dir)).wait_ready(30)
    max_tokens = 20_000
    try:
        with serve(backend) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            body = base_request(stream=True, max_tokens=max_tokens, temperature=0.0)
            with client.stream("POST", "/v1/messages", json=body) as response:
                read_until_first_delta(response)
            after = client.post("/v1/messages", json=base_request(max_tokens=4))
            assert backend.wait_idle(30)
    finally:
        backend.close()
    left, next_one = served_jobs(backend)
    assert after.status_code == 200 and after.json()["usage"]["output_tokens"] >= 1
    assert left["emitted_at_cancel"] is not None and left["emitted"] < max_tokens
    assert left["emitted"] - left["emitted_at_cancel"] <= 1, "steps ran for a client that had left"
    assert next_one["start"] >= left["end"]


def test_mlx_prompt_cache_stays_within_its_byte_cap_through_the_server(tiny_model_dir):
    from trimkit.backends.mlx import MLXBackend

    backend = MLXBackend(str(tiny_model_dir), max_cache_entries=100).wait_ready(30)
    try:
        with serve(backend) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            def ask(i: int) -> httpx.Response:
                text = f"question number {i}: " + "tell me about the file " * (10 + 5 * i)
                return client.post("/v1/messages", json=base_request(
                    max_tokens=4, temperature=0.0, messages=[{"role": "user", "content": text}]))

            assert ask(0).status_code == 200
            one_entry = backend.prompt_cache.nbytes
            backend.prompt_cache.max_bytes = int(2.5 * one_entry)
            held = []
            for i in range(1, 7):
                assert ask(i).status_code == 200
                held.append((backend.prompt_cache.nbytes, len(backend.prompt_cache)))
            backend.prompt_cache.max_bytes = one_entry // 2
            assert ask(7).status_code == 200
            emptied = backend.prompt_cache.nbytes
    finally:
        backend.close()
    assert one_entry > 0
    assert all(0 < nbytes <= int(2.5 * one_entry) and entries <= 2 for nbytes, entries in held)
    assert emptied == 0


def test_mlx_a_prompt_beyond_the_window_is_400_and_never_reaches_the_model(tiny_model_dir):
    backend = probed_mlx_backend()(str(tiny_model_dir)).wait_ready(30)
    try:
        app = create_app(ServerSettings(backend="mlx", context_window=64), backend=backend)
        with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            long = [{"role": "user", "content": "tell me about the file " * 200}]
            answers = [client.post("/v1/messages", json=base_request(messages=long, stream=stream))
                       for stream in (False, True)]
    finally:
        backend.close()
    for answer in answers:
        assert answer.status_code == 400
        assert answer.json()["error"]["message"].startswith("prompt is too long: ")
    assert backend.jobs == [] and len(backend.prompt_cache) == 0
