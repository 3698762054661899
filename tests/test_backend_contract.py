"""The backend contract: every backend subclasses ``Backend``, and the server asks nothing it does not declare."""

from __future__ import annotations

import httpx
import pytest

from trimkit.backends.anthropic_upstream import AnthropicBackend
from trimkit.backends.base import Backend, BackendError, BackendStatus, Finished, Readiness, TextDelta
from trimkit.backends.openai import OpenAIBackend
from trimkit.backends.replay import ReplayBackend
from trimkit.backends.upstream import UpstreamBackend
from trimkit.profile import ModelProfile
from trimkit.server import ServerSettings, create_app
from trimkit.backends.failed import FailedBackend
from trimkit.testing import LiveServer

REQUEST = {"model": "claude-x", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


class Minimal(Backend):
    """Only what a backend must say: its status and its answer; every other question takes the default."""

    name = "minimal"

    def __init__(self, text: str, *, thinking: bool | None = None):
        self.profile = ModelProfile(name="minimal-model", context_window=8192, tier="small")
        self.text = text
        self.thinking = thinking
        self.seen: list[list[dict[str, str]]] = []

    def status(self) -> BackendStatus:
        return BackendStatus(Readiness.READY, detail="ready")

    async def generate(self, messages, params):
        self.seen.append(messages)
        yield TextDelta(self.text)
        yield Finished(finish="stop", input_tokens=self.count_tokens(messages), output_tokens=1)

    def opens_thinking(self, messages):
        return self.thinking


def test_every_backend_is_a_backend():
    from trimkit.backends.mlx import MLXBackend

    for kind in (MLXBackend, ReplayBackend, OpenAIBackend, AnthropicBackend, UpstreamBackend, FailedBackend):
        assert issubclass(kind, Backend), kind


def test_a_backend_must_say_its_status_and_how_it_generates():
    class Silent(Backend):
        def status(self):
            return BackendStatus(Readiness.READY)

    with pytest.raises(TypeError, match="generate"):
        Silent()


def test_the_defaults_are_what_a_backend_without_a_cache_or_template_would_say():
    backend = Minimal("x")
    chat = [{"role": "system", "content": "a" * 400}, {"role": "user", "content": "hi"}]
    assert backend.max_concurrency == 1
    assert backend.cached_prefix_tokens(chat) == 0
    assert backend.prompt_tokens(chat) is None
    assert Backend.opens_thinking(backend, chat) is None
    assert backend.count_tokens(chat) == sum(backend.profile.count_tokens(m["content"]) for m in chat) + 2 * backend.profile.message_tokens


def test_the_server_runs_on_a_backend_that_declares_only_the_required_parts():
    backend = Minimal("Hello.")
    with LiveServer(create_app(ServerSettings(backend="minimal"), backend=backend)) as server:
        answer = httpx.post(server.url + "/v1/messages", json=REQUEST, timeout=30)
        counted = httpx.post(server.url + "/v1/messages/count_tokens", json=REQUEST, timeout=30)
        health = httpx.get(server.url + "/health", timeout=30).json()
    assert answer.status_code == 200 and answer.json()["content"] == [{"type": "text", "text": "Hello."}]
    assert counted.json()["input_tokens"] == backend.count_tokens(backend.seen[0])
    assert (health["status"], health["backend"], health["model"]) == ("ok", "minimal", "minimal-model")


def test_a_backend_that_opens_thinking_has_its_first_thoughts_dropped():
    text = "weighing the options</think>Hello."
    answers = {}
    for thinking in (True, None):
        with LiveServer(create_app(ServerSettings(backend="minimal"), backend=Minimal(text, thinking=thinking))) as server:
            answers[thinking] = httpx.post(server.url + "/v1/messages", json=REQUEST, timeout=30).json()["content"]
    assert answers[True] == [{"type": "text", "text": "Hello."}]
    assert "weighing the options" in answers[None][0]["text"]


@pytest.mark.parametrize(
    ("state", "code", "retry", "health"),
    [(Readiness.LOADING, 529, "true", "loading"), (Readiness.FAILED, 500, "false", "error")],
)
def test_readiness_decides_the_answer_and_the_health_status(state, code, retry, health):
    class NotReady(Minimal):
        def status(self):
            return BackendStatus(state, detail="the reason")

    with LiveServer(create_app(ServerSettings(backend="minimal"), backend=NotReady("x"))) as server:
        answer = httpx.post(server.url + "/v1/messages", json=REQUEST, timeout=30)
        shown = httpx.get(server.url + "/health", timeout=30)
    assert answer.status_code == code and answer.json()["error"]["message"] == "The model is not ready: the reason"
    assert answer.headers["x-should-retry"] == retry  # a model that failed to load is not worth retrying
    assert shown.status_code == 503 and shown.json()["status"] == health and shown.json()["detail"] == "the reason"


@pytest.mark.parametrize(("lasting", "retry"), [(False, "true"), (True, "false")])
def test_a_generation_failure_that_lasts_tells_the_client_not_to_retry(lasting, retry):
    class Failing(Minimal):
        async def generate(self, messages, params):
            raise BackendError("upstream answered 401 (check upstream_api_key)", lasting=lasting)
            yield

    with LiveServer(create_app(ServerSettings(backend="minimal"), backend=Failing("x"))) as server:
        answer = httpx.post(server.url + "/v1/messages", json=REQUEST, timeout=30)
    assert answer.status_code == 500 and answer.headers["x-should-retry"] == retry
