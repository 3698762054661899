"""The Messages API through a live server with the replay backend and the official SDK."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from trimkit import hookimpl
from trimkit.backends.base import BackendError, Finished, TextDelta
from trimkit.backends.replay import ReplayBackend
from trimkit.profile import ModelProfile
from trimkit.server import ServerSettings
from trimkit.server.errors import ApiError

from tests.support.clients import created_and_streamed, sdk
from tests.support.servers import replay_server
from tests.support.sse import sse_events

WRITE_TOOL = {
    "name": "Write",
    "description": "Write a file",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["file_path", "content"],
    },
}
COUNT_TOOL = {
    "name": "Count",
    "description": "Count things",
    "input_schema": {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "exact": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["n"],
    },
}
USER = [{"role": "user", "content": "hi"}]


def test_create_returns_text_with_usage_and_echoed_model():
    with replay_server(["Hello there."]) as server:
        message = sdk(server.url).messages.create(model="claude-opus-4-8", max_tokens=100, messages=USER)
    assert message.content[0].type == "text" and message.content[0].text == "Hello there."
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.model == "claude-opus-4-8"
    assert message.id.startswith("msg_")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 3


def test_success_is_200_not_201():
    with replay_server(["ok"]) as server:
        r = httpx.post(server.url + "/v1/messages?beta=true", json={"model": "claude-x", "max_tokens": 5, "messages": USER})
    assert r.status_code == 200


def test_stream_final_message_matches_and_frames_carry_event_lines():
    with replay_server(["Streaming works fine."] * 2) as server:
        client = sdk(server.url)
        with client.messages.stream(model="claude-opus-4-8", max_tokens=100, messages=USER) as stream:
            final = stream.get_final_message()
        raw = httpx.post(
            server.url + "/v1/messages",
            json={"model": "claude-opus-4-8", "max_tokens": 100, "messages": USER, "stream": True},
        ).text
    assert final.content[0].text == "Streaming works fine."
    names = [name for name, _ in sse_events(raw)]
    assert names[0] == "message_start" and names[1] == "ping"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 1
    events = dict(sse_events(raw)[:1])
    assert events["message_start"]["message"]["content"] == []
    delta = [data for name, data in sse_events(raw) if name == "message_delta"][0]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] > 0


def test_tool_call_becomes_tool_use_with_coerced_input():
    turn = (
        "I'll count.\n<function_calls>\n<invoke name=\"Count\">\n<parameter name=\"n\">42</parameter>\n"
        "<parameter name=\"exact\">true</parameter>\n<parameter name=\"tags\">[\"a\", \"b\"]</parameter>\n"
        "</invoke>\n</function_calls>"
    )
    with replay_server([turn, turn]) as server:
        message, streamed = created_and_streamed(sdk(server.url), model="claude-x", max_tokens=200, messages=USER,
                                                 tools=[COUNT_TOOL])
    for msg in (message, streamed):
        assert msg.stop_reason == "tool_use"
        assert msg.content[0].type == "text" and msg.content[0].text.strip() == "I'll count."
        call = msg.content[-1]
        assert call.type == "tool_use" and call.name == "Count" and call.id.startswith("toolu_")
        assert call.input == {"n": 42, "exact": True, "tags": ["a", "b"]}


def test_stop_sequence_cuts_text_and_is_reported():
    with replay_server(["alpha beta STOP gamma", "alpha beta STOP gamma"]) as server:
        message, streamed = created_and_streamed(sdk(server.url), model="claude-x", max_tokens=100, messages=USER,
                                                 stop_sequences=["STOP"])
    for msg in (message, streamed):
        assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == "STOP"
        assert msg.content[0].text == "alpha beta "


def test_max_tokens_ends_with_max_tokens():
    with replay_server(["one two three four five six seven"]) as server:
        message = sdk(server.url).messages.create(model="claude-x", max_tokens=2, messages=USER)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2
    assert message.content[0].text == "one two "


def test_count_tokens_counts_the_trimmed_prompt():
    with replay_server([]) as server:
        result = sdk(server.url).messages.count_tokens(model="claude-x", messages=USER, tools=[WRITE_TOOL])
    assert 0 < result.input_tokens < 2000


def test_models_endpoints():
    with replay_server([]) as server:
        client = sdk(server.url)
        listing = client.models.list()
        assert [m.id for m in listing.data] == ["replay-model"]
        assert client.models.retrieve("claude-opus-4-8").id == "claude-opus-4-8"
        with pytest.raises(anthropic.NotFoundError):
            client.models.retrieve("gpt-4o")


def test_unknown_fields_and_beta_headers_are_accepted():
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 64000,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "container_upload", "file_id": "file_1"}, {"type": "text", "text": "go"}]},
        ],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "{\"device\": \"x\"}"},
        "brand_new_field": {"anything": [1, 2]},
    }
    headers = {"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,some-future-beta", "anthropic-version": "2023-06-01"}
    with replay_server(["fine"]) as server:
        r = httpx.post(server.url + "/v1/messages?beta=true", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "fine"


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"max_tokens": 5, "messages": USER}, "model"),
        ({"model": "claude-x", "messages": USER}, "max_tokens"),
        ({"model": "claude-x", "max_tokens": 5}, "messages"),
        ({"model": "claude-x", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "claude-x", "max_tokens": 0, "messages": USER}, "max_tokens"),
        ({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "X", "input": {}}]}]}, "id"),
        ({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "input": {}}]}]}, "name"),
        ({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]}, "tool_use_id"),
        ({"model": "claude-x", "max_tokens": "many", "messages": USER}, "max_tokens"),
    ],
)
def test_invalid_requests_are_400_naming_the_problem(body, fragment):
    with replay_server(["never"]) as server:
        r = httpx.post(server.url + "/v1/messages", json=body)
    assert r.status_code == 400
    error = r.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert fragment in error["error"]["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_malformed_bodies_are_400(raw):
    with replay_server([]) as server:
        r = httpx.post(server.url + "/v1/messages", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_sdk_raises_typed_errors():
    with replay_server([]) as server:
        client = sdk(server.url)
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.create(model="claude-x", max_tokens=5, messages=[])
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="llama-unknown", max_tokens=5, messages=USER)
    assert bad.value.body["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_404_not_found_error():
    with replay_server([]) as server:
        r = httpx.post(server.url + "/v1/messages", json={"model": "gpt-4o", "max_tokens": 5, "messages": USER})
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"


def test_unknown_route_and_method_are_anthropic_errors():
    with replay_server([]) as server:
        missing = httpx.get(server.url + "/v1/nothing")
        wrong = httpx.get(server.url + "/v1/messages")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert wrong.status_code == 405 and wrong.json()["type"] == "error"


def test_auth_accepts_x_api_key_and_bearer_and_rejects_others():
    with replay_server(["a", "b"], api_key="s3cret") as server:
        ok1 = sdk(server.url, "s3cret").messages.create(model="claude-x", max_tokens=5, messages=USER)
        ok2 = httpx.post(server.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 5, "messages": USER},
                         headers={"authorization": "Bearer s3cret"})
        with pytest.raises(anthropic.AuthenticationError):
            sdk(server.url, "wrong").messages.create(model="claude-x", max_tokens=5, messages=USER)
        none = httpx.post(server.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 5, "messages": USER})
        health = httpx.get(server.url + "/health")
    assert ok1.content[0].text == "a" and ok2.status_code == 200
    assert none.status_code == 401 and none.json()["error"]["type"] == "authentication_error"
    assert health.status_code == 200


def test_body_over_limit_is_413_request_too_large():
    with replay_server([], max_body_bytes=1000) as server:
        r = httpx.post(server.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 5000}]})
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "request_too_large"


def test_prompt_that_cannot_fit_is_400_prompt_too_long_before_any_stream_byte():
    with replay_server(["never"], window=300) as server:
        r = httpx.post(
            server.url + "/v1/messages",
            json={"model": "claude-x", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "word " * 2000}]},
        )
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert message.startswith("prompt is too long: ") and "tokens >" in message and message.endswith(" maximum")


class FailingBackend(ReplayBackend):
    async def generate(self, messages, params):
        yield TextDelta("partial ")
        raise BackendError("the model crashed")


def test_failure_after_stream_start_is_an_sse_error_event_then_server_still_serves():
    backend = FailingBackend(["unused"], profile=ModelProfile(name="f", context_window=10_000))
    with replay_server([], backend=backend) as server:
        raw = httpx.post(server.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 50, "stream": True, "messages": USER}).text
        events = sse_events(raw)
        backend.__class__ = ReplayBackend
        backend.turns = ["recovered"]
        backend._next = 0
        after = sdk(server.url).messages.create(model="claude-x", max_tokens=50, messages=USER)
    assert events[-1][0] == "error"
    assert events[-1][1] == {"type": "error", "error": {"type": "api_error", "message": "the model crashed"}}
    assert after.content[0].text == "recovered"


def test_non_streaming_backend_failure_is_500_api_error():
    backend = FailingBackend(["unused"], profile=ModelProfile(name="f", context_window=10_000))
    with replay_server([], backend=backend) as server:
        r = httpx.post(server.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 50, "messages": USER})
    assert r.status_code == 500
    assert r.json()["error"] == {"type": "api_error", "message": "the model crashed"}


def test_non_loopback_bind_without_key_is_refused():
    with pytest.raises(ValueError, match="API key"):
        ServerSettings(host="0.0.0.0").check_bind()
    ServerSettings(host="0.0.0.0", api_key="k").check_bind()
    ServerSettings().check_bind()


class CachingReplay(ReplayBackend):
    """A replay backend that claims a given number of prompt tokens are already cached,
    and counts the questions the server's pipeline asks it."""

    cached = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = self.counted = 0

    def cached_prefix_tokens(self, messages):
        self.asked += 1
        return self.cached

    def count_tokens(self, messages):
        self.counted += 1
        return super().count_tokens(messages)


class TrimCounter:
    """Counts the pipeline's finished trims."""

    trims = 0

    @hookimpl
    def trimkit_trimmed(self, result):
        self.trims += 1


def caching_service(window: int = 200_000, **settings):
    from trimkit.pipeline import Pipeline
    from trimkit.server.messages import MessageService

    profile = ModelProfile(name="r", context_window=window, prefill_tps=400, tier="small")
    backend, counter = CachingReplay([], profile=profile), TrimCounter()
    settings = ServerSettings(backend="replay", **settings)
    service = MessageService(settings, backend, Pipeline(settings.stages, plugins=[counter]))
    return service, backend, counter


def test_budget_counts_what_the_backend_already_has_cached_in_one_run_of_the_pipeline():
    from tests.fixtures import claude_code as cc

    service, backend, counter = caching_service(window=20_000)  # 3,200 tokens in 8 s; a floor of 7,500
    body = json.dumps(cc.session_prefixes(6)[-1]).encode()

    cold = service.prepare(body)
    assert cold.trimmed.carry.budget.dropped_turns > 0
    assert cold.prompt_tokens <= 7_500
    assert (counter.trims, backend.asked, backend.counted) == (1, 1, 2)  # the whole conversation, then the cut one

    backend.cached = 10**6
    warm = service.prepare(body)
    assert warm.trimmed.carry.budget.dropped_turns == 0
    assert warm.prompt_tokens > cold.prompt_tokens
    assert (counter.trims, backend.asked, backend.counted) == (2, 2, 3)


def test_stage_settings_reach_a_pipeline_handed_to_the_server_so_no_measured_speed_cuts_with_the_target_off():
    """``[stages]`` set for the server apply to a pipeline it is handed too. They once did not: a
    benchmark that turned the prefill target off there ran with it on, and on a busy machine the
    slower prefill it measured cut some turns further than a quiet run did."""
    from tests.fixtures import claude_code as cc
    from trimkit.pipeline import Pipeline
    from trimkit.server.messages import MessageService

    body = json.dumps(cc.session_prefixes(6)[-1]).encode()
    settings = ServerSettings(backend="replay", stages={"budget": {"target_prefill_seconds": 0}})
    decided = []
    for measured_tps in (400, 10**9):  # a busy machine's measurement, a quiet one's
        profile = ModelProfile(name="r", context_window=20_000, prefill_tps=measured_tps, tier="small")
        service = MessageService(settings, CachingReplay([], profile=profile), Pipeline(plugins=[TrimCounter()]))
        budget = service.prepare(body).trimmed.carry.budget
        decided.append((budget.dropped_turns, budget.budget_tokens, budget.prompt_tokens))
        assert service.default_lane.pipeline.options_for("budget", "small").target_prefill_seconds == 0
    assert decided[0] == decided[1]
    assert decided[0][:2] == (0, 15_000)  # the window's limit alone: at 400 tokens/s the target would cut


def test_a_request_that_fits_is_trimmed_and_counted_once_and_the_cache_not_asked():
    service, backend, counter = caching_service()
    prep = service.prepare(json.dumps({"model": "claude-x", "max_tokens": 50, "messages": USER}).encode())
    assert (counter.trims, backend.asked, backend.counted) == (1, 0, 1)
    assert prep.prompt_tokens == prep.trimmed.carry.budget.prompt_tokens == backend.count_tokens(prep.chat)
    assert prep.max_tokens == prep.trimmed.carry.budget.max_tokens == 50


def test_the_servers_overrides_reach_the_budget_through_the_plugin_hooks():
    service, backend, counter = caching_service(tier="large", context_window=1000, max_output_tokens=300)
    prep = service.prepare(json.dumps({"model": "claude-x", "max_tokens": 5000, "messages": USER}).encode())
    assert (prep.trimmed.profile.tier, prep.trimmed.profile.context_window) == ("large", 1000)
    assert prep.max_tokens == prep.trimmed.request.max_tokens == 300
    assert service.default_lane.pipeline.options_for("budget", "large").max_output_tokens == 300
    assert backend.profile.context_window == 200_000  # the backend's own profile is left alone
    assert service.profile().context_window == 1000


def test_without_a_budget_stage_the_server_counts_and_refuses_a_prompt_beyond_the_window():
    service, backend, counter = caching_service(stages={"disabled": ["budget"]}, context_window=20)
    short = service.prepare(json.dumps({"model": "claude-x", "max_tokens": 5000, "messages": USER}).encode())
    assert short.trimmed.carry.budget is None and short.max_tokens == 5000
    long = [{"role": "user", "content": "word " * 200}]
    with pytest.raises(ApiError, match=r"prompt is too long: \d+ tokens > 19 maximum"):
        service.prepare(json.dumps({"model": "claude-x", "max_tokens": 50, "messages": long}).encode())


class SlowReplay(ReplayBackend):
    """Replays slowly and records when a generation is closed early."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import threading

        self.closed_early = threading.Event()

    async def generate(self, messages, params):
        finished = False
        try:
            async for event in super().generate(messages, params):
                yield event
            finished = True
        finally:
            if not finished:
                self.closed_early.set()


def test_a_non_streaming_client_that_gives_up_frees_the_model():
    backend = SlowReplay(["x" * 4000, "quick"], delay=0.02, profile=ModelProfile(name="slow", context_window=10_000))
    with replay_server([], backend=backend) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 5000, "messages": USER},
                       timeout=0.5)
        assert backend.closed_early.wait(timeout=60), "the generation kept running after the client left"
        after = sdk(server.url).messages.create(model="claude-x", max_tokens=50, messages=USER)
    assert after.content[0].text == "quick"


def test_model_mapping_by_pattern_and_by_family():
    from trimkit.backends.catalog import Catalog

    name = "Qwen3-Coder-30B-A3B-Instruct-4bit"
    default = Catalog.single(name, ServerSettings())
    assert default.route("claude-opus-4-8") is default.default
    assert default.route(name) is default.default
    assert default.route("gpt-4o") is None

    families = Catalog.single(name, ServerSettings(haiku_model="some-other-model", opus_model="*",
                                                   model_patterns=["my-*"]))
    assert families.route("claude-haiku-4-5") is None
    assert families.route("claude-opus-4-8") is families.default
    assert families.route("claude-sonnet-4-6") is None
    assert families.route("my-local") is families.default


def test_a_family_mapped_elsewhere_is_404_through_the_server():
    with replay_server(["ok"], haiku_model="not-loaded-here") as server:
        client = sdk(server.url)
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=USER)
        assert client.messages.create(model="claude-opus-4-8", max_tokens=5, messages=USER).content[0].text == "ok"
