"""``/metrics``: scraped and read with prometheus-client's own parser while real clients make requests."""

from __future__ import annotations

from typing import AsyncIterator

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.clients import sdk
from tests.support.polling import wait_until
from tests.support.servers import replay_backend, replay_server
from tests.support.sse import read_until_first_delta
from trimkit.backends.base import BackendError, Finished, TextDelta
from trimkit.backends.replay import ReplayBackend
from trimkit.testing import live_app

KEY = "metrics-test-key-8c1f"
PROMPT = "PROMPT-TEXT-7d2e what is in the cart module?"
WRITE = {"name": "Write", "description": "Write a file.",
         "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
                          "required": ["file_path", "content"]}}
WRITE_CALL = ("I'll write it.\n<function_calls>\n<invoke name=\"Write\">\n<parameter name=\"file_path\">/tmp/a.txt"
              "</parameter>\n<parameter name=\"content\">hello</parameter>\n</invoke>\n</function_calls>")


def scrape(url: str, key: str | None = KEY) -> str:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}, read by prometheus-client's parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_as_the_sdk_makes_requests():
    with replay_server(["Hello.", WRITE_CALL], api_key=KEY) as server:
        client = sdk(server.url, api_key=KEY)
        before = scrape(server.url)
        assert value(before, "trimkit_requests_total", endpoint="/v1/messages", status="200", error_type="") == 0
        client.messages.create(model="claude-opus-4-8", max_tokens=64, messages=[{"role": "user", "content": PROMPT}])
        with client.messages.stream(model="claude-opus-4-8", max_tokens=200, tools=[WRITE],
                                    messages=[{"role": "user", "content": PROMPT}]) as stream:
            final = stream.get_final_message()
        assert [b.type for b in final.content] == ["text", "tool_use"]
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(model="claude-opus-4-8", max_tokens=64, messages=[])
        httpx.get(server.url + "/v1/models", headers={"x-api-key": "wrong"}, timeout=10)
        after = scrape(server.url)

    model = "replay-model"
    assert value(after, "trimkit_requests_total", endpoint="/v1/messages", status="200", error_type="") == 2
    assert value(after, "trimkit_requests_total", endpoint="/v1/messages", status="400",
                 error_type="invalid_request_error") == 1
    assert value(after, "trimkit_requests_total", endpoint="/v1/models", status="401",
                 error_type="authentication_error") == 1
    assert value(after, "trimkit_requests_total", endpoint="/metrics", status="200", error_type="") == 1
    assert value(after, "trimkit_time_to_first_token_seconds_count", model=model) == 2
    assert value(after, "trimkit_decode_tokens_per_second_count", model=model) == 2
    assert value(after, "trimkit_queue_wait_seconds_count", model=model) == 2
    assert value(after, "trimkit_prompt_tokens_count", model=model, when="received") == 2
    assert value(after, "trimkit_prompt_tokens_count", model=model, when="trimmed") == 2
    received = value(after, "trimkit_stage_prompt_tokens_total", model=model, stage="client_noise", when="before")
    assert received == value(after, "trimkit_prompt_tokens_sum", model=model, when="received") > 0
    assert value(after, "trimkit_stage_prompt_tokens_total", model=model, stage="budget", when="after") == \
        value(after, "trimkit_prompt_tokens_sum", model=model, when="trimmed")
    assert value(after, "trimkit_tool_calls_total", model=model) == 1
    assert value(after, "trimkit_output_tokens_total", model=model) > 0
    assert value(after, "trimkit_model_state", model=model, state="ok") == 1
    assert value(after, "trimkit_model_state", model=model, state="loading") == 0
    assert value(after, "trimkit_queue_depth", model=model, state="running") == 0
    assert value(after, "trimkit_info", backend="replay", version=__import__("trimkit").__version__) == 1
    assert KEY not in after and "wrong" not in after and "PROMPT-TEXT" not in after


def test_label_values_are_bounded_route_templates_and_known_error_types():
    with replay_server(["Hi."]) as server:
        for path in ("/v1/models/claude-opus-4-8", "/v1/models/some%2Fother-model-123", "/no/such/page-42"):
            httpx.get(server.url + path, timeout=10)
        text = scrape(server.url, key=None)
    endpoints = {dict(labels).get("endpoint") for name, labels in samples(text) if name == "trimkit_requests_total"}
    assert endpoints == {"/v1/models/{model_id}", "unmatched"}
    assert value(text, "trimkit_requests_total", endpoint="/v1/models/{model_id}", status="404",
                 error_type="not_found_error") == 1
    assert "some" not in text and "page-42" not in text


def test_metrics_need_the_api_key_when_the_server_has_one():
    with replay_server(["Hi."], api_key=KEY) as server:
        assert httpx.get(server.url + "/metrics", timeout=10).status_code == 401
        assert httpx.get(server.url + "/metrics", headers={"authorization": "Bearer nope"}, timeout=10).status_code == 401
        assert httpx.get(server.url + "/metrics", headers={"x-api-key": KEY}, timeout=10).status_code == 200
        scrape(server.url)  # Authorization: Bearer, as Prometheus sends its credentials


def test_each_app_counts_in_its_own_registry():
    with replay_server(["One."]) as first, replay_server(["Two."]) as second:
        sdk(first.url).messages.create(model="claude-opus-4-8", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
        counted = [value(scrape(s.url, key=None), "trimkit_requests_total", endpoint="/v1/messages", status="200",
                         error_type="") for s in (first, second)]
    assert counted == [1, 0]


def test_metrics_and_the_live_view_can_be_turned_off():
    with replay_server(["Hi."], metrics=False, live_view=False) as server:
        assert httpx.get(server.url + "/metrics", timeout=10).status_code == 404
        assert httpx.get(server.url + "/ui", timeout=10).status_code == 404
        reply = sdk(server.url).messages.create(model="claude-opus-4-8", max_tokens=16,
                                                 messages=[{"role": "user", "content": "hi"}])
        assert reply.content[0].text == "Hi."


def test_a_client_that_leaves_mid_stream_counts_as_a_cancelled_generation():
    backend = replay_backend(["word " * 400], chunk_chars=5, delay=0.01)
    with replay_server(backend=backend) as server:
        body = {"model": "claude-opus-4-8", "max_tokens": 1000, "stream": True,
                "messages": [{"role": "user", "content": "go"}]}
        with httpx.stream("POST", server.url + "/v1/messages", json=body, timeout=30) as response:
            read_until_first_delta(response)
        assert wait_until(lambda: value(scrape(server.url, key=None), "trimkit_generations_cancelled_total",
                                        model="replay-model", reason="disconnect") == 1)
        text = scrape(server.url, key=None)
    assert value(text, "trimkit_requests_total", endpoint="/v1/messages", status="200", error_type="") == 1
    assert value(text, "trimkit_time_to_first_token_seconds_count", model="replay-model") == 0  # it never finished


class FailsMidStream(ReplayBackend):
    """Says a few words, then fails as a broken upstream stream does."""

    async def generate(self, messages, params) -> AsyncIterator:
        yield TextDelta("Partly ")
        yield TextDelta("there")
        raise BackendError("upstream stream broke: connection reset", status=500, error_type="api_error")


def test_a_stream_that_fails_after_it_began_is_counted_as_a_stream_error():
    backend = FailsMidStream([], profile=replay_backend().profile)
    with live_app("replay", backend) as server:
        body = {"model": "claude-opus-4-8", "max_tokens": 100, "stream": True,
                "messages": [{"role": "user", "content": "go"}]}
        raw = httpx.post(server.url + "/v1/messages", json=body, timeout=30).text
        assert "event: error" in raw
        text = scrape(server.url, key=None)
    assert value(text, "trimkit_stream_errors_total", model="replay-model", error_type="api_error") == 1
    assert value(text, "trimkit_requests_total", endpoint="/v1/messages", status="200", error_type="") == 1


def test_the_mlx_backend_reports_prefill_speed_cached_tokens_and_its_load_time(tiny_model_dir):
    from trimkit.backends.mlx import MLXBackend

    backend = MLXBackend(str(tiny_model_dir)).wait_ready(60)
    try:
        with live_app("mlx", backend, max_output_tokens=4) as server:
            client = sdk(server.url)
            first = [{"role": "user", "content": "tell me about caches " * 20}]
            reply = client.messages.create(model="claude-opus-4-8", max_tokens=4, messages=first)
            follow = first + [{"role": "assistant", "content": reply.content[0].text or "ok"},
                              {"role": "user", "content": "and more"}]
            second = client.messages.create(model="claude-opus-4-8", max_tokens=4, messages=follow)
            text = scrape(server.url, key=None)
    finally:
        backend.close()
    model = backend.profile.name
    assert second.usage.cache_read_input_tokens > 0
    assert value(text, "trimkit_prompt_tokens_cached_total", model=model) == second.usage.cache_read_input_tokens
    assert value(text, "trimkit_prompt_tokens_prefilled_total", model=model) == \
        reply.usage.input_tokens + second.usage.input_tokens
    assert value(text, "trimkit_prefill_tokens_per_second_count", model=model) == 2
    assert value(text, "trimkit_prefill_tokens_per_second_sum", model=model) > 0
    assert value(text, "trimkit_model_load_seconds", model=model) == pytest.approx(backend.load_seconds)
    assert str(tiny_model_dir.parent) not in text  # the model's name, never its path
