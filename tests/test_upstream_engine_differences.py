"""What real engines differ in, against scripted upstreams: how they take a key, where
they list the window, and which sampling fields they refuse.

Each case is one that broke in front of a real engine (see tests/test_engines.py,
which runs llama-server and vLLM themselves).
"""

from __future__ import annotations

import logging
import re

import pytest

from trimkit.backends.anthropic_upstream import AnthropicBackend
from trimkit.backends.openai import OpenAIBackend
from trimkit.backends.upstream import UpstreamConfig
from trimkit.backends.upstream_errors import rejected_fields
from trimkit.config import load_config
from trimkit.server import ServerSettings, create_app
from trimkit.testing import LiveServer

from tests.support.clients import sdk
from tests.upstreams import FakeUpstream, anthropic_event, openai_turn

USER = [{"role": "user", "content": "hello there"}]

# transformers serve's answer to a field it does not take (transformers 5.x, cli/serving/utils.py)
TRANSFORMERS_REFUSAL = (422, {"detail": "Unexpected fields in the request: {'top_k'}"})


def anthropic_turn(text: str) -> list[bytes]:
    return [
        anthropic_event("message_start", message={"id": "m", "type": "message", "role": "assistant", "content": [],
                                                  "model": "x", "usage": {"input_tokens": 9, "output_tokens": 0}}),
        anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": text}),
        anthropic_event("content_block_stop", index=0),
        anthropic_event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 1}),
        anthropic_event("message_stop"),
    ]


def serve(up: FakeUpstream, **settings):
    return LiveServer(create_app(ServerSettings(upstream=up.url, upstream_model="fake-model", **settings)))


# ---------------------------------------------------------------- the key


@pytest.mark.parametrize(
    "backend, auth, bearer, x_api_key",
    [
        ("openai", "auto", True, False),
        ("anthropic", "auto", True, True),  # vLLM's /v1/messages reads only Bearer; trimkit reads x-api-key
        ("anthropic", "x-api-key", False, True),
        ("anthropic", "bearer", True, False),
        ("openai", "both", True, True),
    ],
)
def test_the_key_goes_in_the_header_style_configured(backend, auth, bearer, x_api_key):
    frames = openai_turn("ok") if backend == "openai" else anthropic_turn("ok")
    with FakeUpstream(frames) as up, serve(up, backend=backend, upstream_api_key="engine-key",
                                           upstream_auth=auth) as server:
        message = sdk(server.url).messages.create(model="claude-x", max_tokens=8, messages=USER)
        headers = up.requests[0]["headers"]
    assert message.content[0].text == "ok"
    assert (headers.get("authorization") == "Bearer engine-key") is bearer
    assert (headers.get("x-api-key") == "engine-key") is x_api_key


def test_no_key_configured_sends_no_auth_header_at_all():
    with FakeUpstream(anthropic_turn("ok")) as up, serve(up, backend="anthropic") as server:
        sdk(server.url).messages.create(model="claude-x", max_tokens=8, messages=USER)
        headers = up.requests[0]["headers"]
    assert "authorization" not in headers and "x-api-key" not in headers


def test_an_unknown_auth_style_is_refused_when_the_configuration_is_read(tmp_path):
    with pytest.raises(ValueError, match="upstream_auth 'token'.*bearer"):
        UpstreamConfig("http://127.0.0.1:1", auth="token")
    with pytest.raises(ValueError, match="upstream-auth must be one of 'auto', 'bearer', 'both', 'x-api-key'"):
        load_config(overrides={"backend": "openai", "upstream": "http://127.0.0.1:1", "upstream_auth": "token"},
                    env={})


# ---------------------------------------------------------------- the window


def test_llama_cpp_lists_the_window_it_was_started_with_and_that_is_used():
    listing = [{"id": "tiny", "meta": {"n_ctx_train": 65536, "n_ctx": 2048, "n_params": 200_000}}]
    with FakeUpstream(models=listing) as up:
        backend = OpenAIBackend(UpstreamConfig(up.url))
        anthropic = AnthropicBackend(UpstreamConfig(up.url))
    assert backend.profile.context_window == anthropic.profile.context_window == 2048


def test_a_prompt_over_the_listed_window_is_refused_by_trimkit_in_the_words_clients_know():
    listing = [{"id": "fake-model", "max_model_len": 2048}]
    with FakeUpstream(openai_turn("never"), models=listing) as up, serve(up, backend="openai") as server:
        long = [{"role": "user", "content": "word " * 8000}]
        with pytest.raises(Exception) as caught:
            sdk(server.url).messages.create(model="claude-x", max_tokens=8, messages=long)
        assert not up.requests  # the engine never saw it
    assert caught.value.status_code == 400 and "prompt is too long" in str(caught.value)
    assert re.search(r"prompt is too long: \d+ tokens > 20\d\d maximum", str(caught.value))  # the listed 2048


def test_a_configured_window_still_wins_over_the_listing():
    listing = [{"id": "fake-model", "max_model_len": 300}]
    with FakeUpstream(openai_turn("ok"), models=listing) as up, serve(up, backend="openai",
                                                                      context_window=9000) as server:
        message = sdk(server.url).messages.create(model="claude-x", max_tokens=8,
                                                  messages=[{"role": "user", "content": "word " * 300}])
    assert message.content[0].text == "ok"


# ---------------------------------------------------------------- sampling fields


def refuses_top_k(request):
    return TRANSFORMERS_REFUSAL if "top_k" in request["body"] else None


def test_a_sampling_field_the_engine_refuses_is_dropped_with_a_log_line_and_the_request_answered(caplog):
    with FakeUpstream(openai_turn("fine"), answer=refuses_top_k) as up, serve(up, backend="openai") as server:
        client = sdk(server.url)
        with caplog.at_level(logging.WARNING, logger="trimkit.upstream"):
            first = client.messages.create(model="claude-x", max_tokens=8, messages=USER,
                                           extra_body={"top_k": 20, "temperature": 0.5})
            second = client.messages.create(model="claude-x", max_tokens=8, messages=USER, extra_body={"top_k": 20})
        bodies = [r["body"] for r in up.requests]
    assert first.content[0].text == second.content[0].text == "fine"
    assert [("top_k" in b) for b in bodies] == [True, False, False]  # refused once, then never sent
    assert bodies[1]["temperature"] == 0.5
    assert [r.getMessage() for r in caplog.records if "top_k" in r.getMessage()] == [
        f"upstream {up.url} does not take top_k (Unexpected fields in the request: {{'top_k'}}); "
        "sending requests without it"
    ]


def test_a_value_out_of_range_is_the_clients_error_and_the_field_is_kept():
    def refuses_large_top_k(request):
        if request["body"].get("top_k", 0) > 50:
            return 400, {"error": {"message": "top_k must be at most 50"}}
        return None

    with FakeUpstream(openai_turn("fine"), answer=refuses_large_top_k) as up, serve(up, backend="openai") as server:
        client = sdk(server.url)
        with pytest.raises(Exception) as caught:
            client.messages.create(model="claude-x", max_tokens=8, messages=USER, extra_body={"top_k": 500})
        client.messages.create(model="claude-x", max_tokens=8, messages=USER, extra_body={"top_k": 20})
        bodies = [r["body"] for r in up.requests]
    assert caught.value.status_code == 400 and "top_k must be at most 50" in str(caught.value)
    assert [b["top_k"] for b in bodies] == [500, 20]


BOTH = {"top_k": 5, "top_p": 0.9}


@pytest.mark.parametrize(
    "status, body, sent, fields",
    [
        (422, b'{"detail": "Unexpected fields in the request: {\'top_k\'}"}', BOTH, {"top_k"}),
        (400, b'{"detail": [{"loc": ["body", "top_p"], "msg": "Extra inputs are not permitted"}]}', BOTH, {"top_p"}),
        (400, b'{"error": {"message": "Unsupported parameter: top_k"}}', BOTH, {"top_k"}),
        (400, b'{"error": {"message": "top_k must be positive"}}', BOTH, set()),
        (500, b'{"error": "unexpected top_k"}', BOTH, set()),
        (400, b'{"error": "unknown field top_k"}', {"top_p": 0.9}, set()),  # not sent: nothing to drop
    ],
)
def test_refusals_are_read_from_each_engines_wording(status, body, sent, fields):
    assert rejected_fields(status, body, sent) == fields
