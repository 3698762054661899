"""The Messages API through a live server on the tiny random MLX model, with the official SDK.

test_server_api.py covers the API in depth on the replay backend; this file runs the
same client against real generation: the chat template, prefill, the KV prefix
cache, sampling and streaming detokenization. The tiny model's text is noise, so the
tests assert what holds for any model (validation, usage, stop reasons, event order)
and use greedy decoding (temperature 0) wherever two answers must be equal. Where a
test needs text of a certain kind, it picks a question whose greedy answer has it, or
forces the tokens (``forced_tokens``), so that a change of the tiny model's weights or
shape cannot break it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import signal

import anthropic
import httpx
import pytest

pytest.importorskip("mlx_lm")

from tests.fixtures import claude_code as cc
from tests.fixtures.long_session import agent_session, read_session
from tests.fixtures.prose import guidance
from tests.support.clients import sdk
from tests.support.sse import sse_events, streamed_text
from trimkit import Pipeline, hookimpl
from trimkit.backends.mlx import MLXBackend
from trimkit.resources import builtin_plugins
from trimkit.testing import LiveServer, live_app, spawn_server, stop_server

MODEL = "claude-opus-4-8"
GREEDY = {"temperature": 0}  # the SDK (>= 2) has no temperature argument: it goes in extra_body
KEY = "s3cret"
QUESTIONS = [  # greedy answers to some of these are printable text, whatever the tiny model's weights
    "Tell me about the parser.", "Write a haiku about caches.", "Explain the code.", "What is 2+2?",
    "Summarize the parser in one line.", "Fix the bug in the parser.", "Where is the config file read?",
    "List the files.", "Read src/app.py", "hello",
]


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def serve(backend: MLXBackend, pipeline: Pipeline | None = None, **settings) -> LiveServer:
    """A live server on ``backend``, which stays the caller's to close."""
    return live_app("mlx", backend, pipeline=pipeline, model=str(backend.path), **settings)


def greedy(client: anthropic.Anthropic, messages: list[dict], max_tokens: int = 40, **fields):
    return client.messages.create(model=MODEL, max_tokens=max_tokens, messages=messages, extra_body=GREEDY, **fields)


def greedy_stream(client: anthropic.Anthropic, messages: list[dict], max_tokens: int = 40, **fields):
    with client.messages.stream(
        model=MODEL, max_tokens=max_tokens, messages=messages, extra_body=GREEDY, **fields
    ) as stream:
        return stream.get_final_message()


def text_of(message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def prompt_tokens(message) -> int:
    return message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)


def a_question_answered(client: anthropic.Anthropic, max_tokens: int, wanted) -> tuple[list[dict], object]:
    """The first of QUESTIONS whose greedy answer satisfies ``wanted(text)``, and that answer."""
    for question in QUESTIONS:
        message = greedy(client, ask(question), max_tokens=max_tokens)
        if wanted(text_of(message)):
            return ask(question), message
    pytest.fail("no question got a fitting greedy answer from the tiny model")


def sdk_arguments(method, request: dict) -> dict:
    """A raw request as keyword arguments of an SDK method: what it names, the rest in extra_body."""
    named = set(inspect.signature(method).parameters) - {"stream", "extra_body"}
    known = {k: v for k, v in request.items() if k in named}
    extra = {k: v for k, v in request.items() if k not in named and k != "stream"}
    return {**known, "extra_body": extra}


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    backend = MLXBackend(str(tiny_model_dir)).wait_ready(timeout=30)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def server(backend):
    with serve(backend) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    return sdk(server.url)


# ---------------------------------------------------------------------- create, max_tokens, stream


def test_create_returns_a_validated_message_with_usage_and_the_requested_model(client):
    message = client.messages.create(model=MODEL, max_tokens=24, messages=ask("What is 2+2?"))
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.model == MODEL
    assert [block.type for block in message.content] in ([], ["text"])
    assert message.stop_reason in {"end_turn", "max_tokens"} and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens <= 24
    if message.stop_reason == "max_tokens":
        assert message.usage.output_tokens == 24


def test_max_tokens_ends_generation_after_exactly_that_many_tokens(client):
    messages = ask("Summarize the parser in one line.")
    short = greedy(client, messages, max_tokens=3)
    longer = greedy(client, messages, max_tokens=40)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 3
    assert longer.stop_reason == "max_tokens" and longer.usage.output_tokens == 40
    assert text_of(longer).startswith(text_of(short))  # greedy: the same tokens, fewer of them


def test_streamed_final_message_equals_create_when_greedy(client):
    messages, created = a_question_answered(client, 16, lambda text: text.strip())
    streamed = greedy_stream(client, messages, max_tokens=16)
    assert [b.model_dump() for b in streamed.content] == [b.model_dump() for b in created.content]
    assert (streamed.stop_reason, streamed.stop_sequence) == (created.stop_reason, created.stop_sequence)
    assert streamed.usage.output_tokens == created.usage.output_tokens == 16
    assert prompt_tokens(streamed) == prompt_tokens(created)
    assert streamed.model == MODEL and streamed.id.startswith("msg_")


def test_raw_stream_is_the_anthropic_event_sequence(server, client):
    messages = ask("Explain the code.")
    created = greedy(client, messages, max_tokens=12)
    body = {"model": MODEL, "max_tokens": 12, "messages": messages, "stream": True, **GREEDY}
    response = httpx.post(server.url + "/v1/messages", json=body, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["model"] == MODEL and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == prompt_tokens(created)
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert all(d["type"] == "text_delta" for d in deltas)
    assert streamed_text(response.text) == text_of(created)
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 12
    assert delta["usage"]["input_tokens"] + delta["usage"]["cache_read_input_tokens"] == prompt_tokens(created)


# ---------------------------------------------------------------------- count_tokens and the prefix cache


def test_count_tokens_is_what_create_prefills(client):
    fields = {"messages": ask("Where is the config file read?"), "system": "Answer briefly."}
    counted = client.messages.count_tokens(model=MODEL, **fields)
    created = greedy(client, max_tokens=2, **fields)
    assert counted.input_tokens == prompt_tokens(created) > 0


def test_count_tokens_of_a_claude_code_request_is_a_fraction_of_the_untrimmed_prompt(backend, client):
    request = sdk_arguments(client.messages.count_tokens, cc.first_request())
    trimmed = client.messages.count_tokens(**request).input_tokens
    untrimmed_pipeline = Pipeline({"disabled": [name for name, _ in builtin_plugins()]})
    with serve(backend, pipeline=untrimmed_pipeline) as untrimmed_server:
        untrimmed = sdk(untrimmed_server.url).messages.count_tokens(**request).input_tokens
    assert 0 < trimmed * 5 < untrimmed


def test_an_identical_request_reads_its_prompt_from_the_prefix_cache(client):
    messages = ask("Prefix cache check. " + guidance("Bash", 6000, salt=7))
    first = greedy(client, messages, max_tokens=4)
    second = greedy(client, messages, max_tokens=4)
    total = prompt_tokens(first)
    assert total > 1000 and prompt_tokens(second) == total
    assert first.usage.cache_read_input_tokens < 0.1 * total  # cold: only the chat template's opening is shared
    assert second.usage.cache_read_input_tokens >= 0.9 * total
    assert second.usage.input_tokens == total - second.usage.cache_read_input_tokens
    assert text_of(second) == text_of(first)


# ---------------------------------------------------------------------- stop sequences


def a_stop_string(text: str) -> str:
    """Three characters from the middle half of ``text`` whose first occurrence is latest.

    A late first occurrence leaves text before the stop; in the tiny model's
    repetitive output it usually spans two tokens, so the match must be made across
    streamed chunks.
    """
    quarter = len(text) // 4
    candidates = [text[i : i + 3] for i in range(quarter, 3 * quarter) if not any(c.isspace() for c in text[i : i + 3])]
    return max(candidates, key=text.find, default="")


def text_before_a_stop_string(text: str) -> str:
    stop = a_stop_string(text)
    return text[: text.find(stop)] if stop else ""


def test_stop_sequence_ends_generation_before_the_match(client):
    messages, free = a_question_answered(client, 40, lambda text: text_before_a_stop_string(text).strip())
    text = text_of(free)
    stop = a_stop_string(text)
    expected = text_before_a_stop_string(text)
    created = greedy(client, messages, max_tokens=40, stop_sequences=[stop, "never-in-noise"])
    streamed = greedy_stream(client, messages, max_tokens=40, stop_sequences=[stop, "never-in-noise"])
    for message in (created, streamed):
        assert message.stop_reason == "stop_sequence" and message.stop_sequence == stop
        assert text_of(message) == expected
        assert message.usage.output_tokens < 40  # generation stopped, not just the text


# ---------------------------------------------------------------------- errors and auth

BAD_REQUESTS = [
    ({"max_tokens": 5, "messages": ask("hi")}, 400, "model"),
    ({"model": MODEL, "messages": ask("hi")}, 400, "max_tokens"),
    ({"model": MODEL, "max_tokens": 5}, 400, "messages"),
    ({"model": MODEL, "max_tokens": 5, "messages": []}, 400, "messages"),
    ({"model": MODEL, "max_tokens": 0, "messages": ask("hi")}, 400, "max_tokens"),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
    ({"model": "gpt-4o", "max_tokens": 5, "messages": ask("hi")}, 404, "gpt-4o"),
]
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}


@pytest.mark.parametrize("body, status, fragment", BAD_REQUESTS)
def test_invalid_requests_are_anthropic_errors(server, body, status, fragment):
    for stream in (False, True):
        response = httpx.post(server.url + "/v1/messages", json={**body, "stream": stream}, timeout=30)
        assert response.status_code == status
        error = response.json()
        assert error["type"] == "error" and error["error"]["type"] == ERROR_TYPES[status]
        assert fragment in error["error"]["message"]


def test_sdk_raises_the_typed_errors(client):
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model=MODEL, max_tokens=5, messages=[])
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="llama-unknown", max_tokens=5, messages=ask("hi"))
    assert bad.value.status_code == 400 and bad.value.body["error"]["type"] == "invalid_request_error"
    assert missing.value.status_code == 404 and missing.value.body["error"]["type"] == "not_found_error"


def test_a_prompt_beyond_the_context_window_is_prompt_too_long(backend):
    window = 64
    with serve(backend, context_window=window) as small:
        client = sdk(small.url)
        assert client.messages.create(model=MODEL, max_tokens=4, messages=ask("hi")).usage.output_tokens > 0
        long = ask("Please read this. " + guidance("Read", 2000))
        with pytest.raises(anthropic.BadRequestError) as created:
            client.messages.create(model=MODEL, max_tokens=4, messages=long)
        streamed = httpx.post(small.url + "/v1/messages", json={"model": MODEL, "max_tokens": 4, "messages": long, "stream": True})
        with pytest.raises(anthropic.BadRequestError) as counted:
            client.messages.count_tokens(model=MODEL, messages=long)
    assert streamed.status_code == 400 and not streamed.text.startswith("event:")
    for error in (created.value.body, streamed.json(), counted.value.body):
        assert error["error"]["type"] == "invalid_request_error"
        match = re.fullmatch(r"prompt is too long: (\d+) tokens > (\d+) maximum", error["error"]["message"])
        assert match, error
        assert int(match[1]) > int(match[2]) and int(match[2]) < window


def test_auth_accepts_x_api_key_and_bearer_and_rejects_the_rest(backend):
    body = {"model": MODEL, "max_tokens": 3, "messages": ask("hi")}
    with serve(backend, api_key=KEY) as keyed:
        by_key = greedy(sdk(keyed.url, api_key=KEY), body["messages"], max_tokens=3)
        by_bearer = greedy(sdk(keyed.url, api_key=None, auth_token=KEY), body["messages"], max_tokens=3)
        counted = sdk(keyed.url, api_key=KEY).messages.count_tokens(model=MODEL, messages=body["messages"])
        with pytest.raises(anthropic.AuthenticationError) as wrong:
            sdk(keyed.url, api_key="wrong").messages.create(**body)
        with pytest.raises(anthropic.AuthenticationError):
            sdk(keyed.url, api_key=None, auth_token="wrong").messages.count_tokens(model=MODEL, messages=body["messages"])
        missing = httpx.post(keyed.url + "/v1/messages", json=body)
        health = httpx.get(keyed.url + "/health")
    assert text_of(by_key) == text_of(by_bearer)  # greedy, so both keys get the same answer
    assert by_key.usage.output_tokens == by_bearer.usage.output_tokens > 0 and counted.input_tokens > 0
    assert wrong.value.status_code == 401 and wrong.value.body["error"]["type"] == "authentication_error"
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert health.status_code == 200


# ---------------------------------------------------------------------- a Claude Code request, noise


def test_a_claude_code_first_request_gets_a_valid_answer(client):
    request = sdk_arguments(client.messages.create, cc.first_request(cc.EXAMPLE_PROMPT, nonce="mlx"))
    declared = {tool["name"] for tool in request["tools"]}
    request["max_tokens"] = 48
    sampled = [client.messages.create(**request) for _ in range(3)]
    with client.messages.stream(**{**request, "extra_body": {**request["extra_body"], **GREEDY}}) as stream:
        streamed = stream.get_final_message()
    for message in (*sampled, streamed):
        assert message.model == MODEL and message.stop_reason in {"end_turn", "max_tokens", "tool_use"}
        assert all(block.type in {"text", "tool_use"} for block in message.content)
        assert all(block.name in declared for block in message.content if block.type == "tool_use")
        assert 0 < message.usage.output_tokens <= 48
    assert prompt_tokens(streamed) == prompt_tokens(sampled[0])  # the same trimmed prompt each time
    assert sampled[-1].usage.cache_read_input_tokens >= 0.9 * prompt_tokens(sampled[-1])


@pytest.fixture
def forced_tokens(monkeypatch):
    """``forced_tokens(ids)``: every generation says ``ids`` in turn (the last repeated), whatever the weights.

    A logits processor leaves only the next scripted token possible, so the real
    tokenizer, detokenizer and streaming path run on output a test chose.
    """
    import mlx.core as mx

    generate_module = importlib.import_module("mlx_lm.generate")  # mlx_lm.generate is also a function
    real_stream_generate = generate_module.stream_generate

    def force(ids: list[int]) -> None:
        def forcing_stream_generate(*args, **kwargs):
            steps = 0

            def only_the_next_scripted_token(tokens, logits):
                nonlocal steps
                wanted = ids[min(steps, len(ids) - 1)]
                steps += 1
                return mx.where(mx.arange(logits.shape[-1]) == wanted, mx.zeros_like(logits), -mx.inf)

            kwargs["logits_processors"] = [*(kwargs.get("logits_processors") or []), only_the_next_scripted_token]
            return real_stream_generate(*args, **kwargs)

        monkeypatch.setattr(generate_module, "stream_generate", forcing_stream_generate)

    return force


def test_output_of_only_invalid_bytes_is_replacement_characters(backend, client, forced_tokens):
    # Bytes 0xFE and 0xFF never occur in UTF-8; the byte-level vocabulary has a token for each.
    forced_tokens(backend.tokenizer.convert_tokens_to_ids(["\u00fe", "\u00ff"]))
    for message in (greedy(client, ask("hello"), 8), greedy_stream(client, ask("hello"), 8)):
        assert [block.type for block in message.content] == ["text"]
        assert set(text_of(message)) == {"\ufffd"}
        assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 8


def test_output_of_only_whitespace_is_an_empty_content_list(backend, client, forced_tokens):
    forced_tokens(backend.tokenizer.encode(" \n  \n", add_special_tokens=False))
    messages = ask("Write a haiku about caches.")
    for message in (greedy(client, messages, 8), greedy_stream(client, messages, 8)):
        assert message.content == []
        assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 8


# ---------------------------------------------------------------------- the real command line


def test_trimkit_serve_on_the_command_line_answers_like_the_app(tiny_model_dir, client):
    messages = ask("Tell me about the parser.")
    expected = greedy(client, messages, max_tokens=10)
    proc, url = spawn_server(["--backend", "mlx", "--model", str(tiny_model_dir)])
    try:
        cli = sdk(url)
        created = greedy(cli, messages, max_tokens=10)
        streamed = greedy_stream(cli, messages, max_tokens=10)
        counted = cli.messages.count_tokens(model=MODEL, messages=messages)
        health = httpx.get(url + "/health").json()
        models = [model.id for model in cli.models.list().data]
    finally:
        output = stop_server(proc)
    for message in (created, streamed):
        assert text_of(message) == text_of(expected) and message.stop_reason == "max_tokens"
    assert counted.input_tokens == prompt_tokens(created) == prompt_tokens(expected)
    assert health["status"] == "ok" and health["backend"] == "mlx" and health["model"] == tiny_model_dir.name
    assert tiny_model_dir.name in models
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it; an abort at exit would be SIGABRT.
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output and "terminate called" not in output, output


def test_a_top_k_beyond_the_vocabulary_is_clamped_not_a_server_error(client):
    message = client.messages.create(model="claude-opus-4-8", max_tokens=4, messages=ask("hello"),
                                     extra_body={"top_k": 10**6})
    assert message.stop_reason in ("end_turn", "max_tokens")


def test_cached_prefix_tokens_reports_what_a_served_prompt_left_in_the_cache(backend, client):
    from trimkit.render import chat_messages
    from trimkit.wire import decode_request

    messages = ask("the cache should remember this prompt " * 20)
    request = {"model": "claude-opus-4-8", "max_tokens": 2, "messages": messages}
    chat = chat_messages(Pipeline().trim(request, backend.profile).request)
    backend.prompt_cache.clear()
    assert backend.cached_prefix_tokens(chat) == 0
    client.messages.create(**request)
    assert backend.cached_prefix_tokens(chat) == backend.count_tokens(chat)
    assert decode_request(request).messages  # the request itself was not changed


# ---------------------------------------------------------------------- a long session: cuts and counting


class DroppedTurns:
    """The turns the budget dropped, request by request (a ``trimkit_trimmed`` observer)."""

    def __init__(self):
        self.dropped: list[int] = []

    @hookimpl
    def trimkit_trimmed(self, result):
        self.dropped.append(result.carry.budget.dropped_turns)


def test_a_long_session_reads_its_prompt_from_the_cache_except_where_the_cut_moves(backend, forced_tokens):
    """40 turns of Read calls through an 8,192-token window, a quarter kept for output: the
    cut moves a few times, in big steps; on every other turn the whole previous prompt
    comes from the cache, and at a cut only what follows the cut is prefilled again."""
    forced_tokens([backend.tokenizer.eos_token_id])  # every answer ends at once, whatever max_tokens allows
    backend.prompt_cache.clear()
    observer = DroppedTurns()
    usages = []
    with serve(backend, pipeline=Pipeline(plugins=[observer]), context_window=8192) as small:
        for body in read_session(40, result_chars=300):
            response = httpx.post(small.url + "/v1/messages", json={**body, "max_tokens": 2048}, timeout=120)
            assert response.status_code == 200, response.text
            usages.append(response.json()["usage"])
    totals = [u["input_tokens"] + u["cache_read_input_tokens"] for u in usages]
    events = [k for k in range(1, len(usages)) if observer.dropped[k] != observer.dropped[k - 1]]
    assert all(total <= 8192 - 2048 for total in totals)
    assert 2 <= len(events) <= 8 and min(b - a for a, b in zip(events, events[1:])) >= 4
    for k in range(1, len(usages)):
        read = usages[k]["cache_read_input_tokens"]
        if k in events:
            assert observer.dropped[k] > observer.dropped[k - 1]
            assert read < totals[k - 1] and usages[k]["input_tokens"] > totals[k] / 3
        else:
            assert read >= totals[k - 1]  # the previous prompt, whole


class CharactersTokenized:
    """A tokenizer that counts the characters it is asked to tokenize."""

    def __init__(self, inner):
        self.inner, self.chars = inner, 0

    def encode(self, text, add_special_tokens=True):
        self.chars += len(text)
        return self.inner.encode(text, add_special_tokens=add_special_tokens)


def test_a_request_tokenizes_its_new_messages_once_and_never_the_whole_88_kb(tiny_model_dir):
    from trimkit.backends.prompt_tokens import CHECKED_PROMPTS
    from trimkit.server import ServerSettings
    from trimkit.server.messages import MessageService

    fresh = MLXBackend(str(tiny_model_dir)).wait_ready(timeout=30)  # a process's first request
    try:
        counting = fresh.profile.tokenizer = CharactersTokenized(fresh.profile.tokenizer)
        service = MessageService(ServerSettings(backend="mlx", model=str(fresh.path)), fresh)

        def tokenized(body: dict) -> int:
            before = counting.chars + fresh._prompt_tokenizer.encoded_chars
            prep = service.prepare(json.dumps(body).encode())
            after_prepare = counting.chars + fresh._prompt_tokenizer.encoded_chars
            assert fresh.prompt_tokens(prep.chat) and fresh.prompt_tokens(prep.chat)  # generation counts nothing again
            assert counting.chars + fresh._prompt_tokenizer.encoded_chars == after_prepare
            return after_prepare - before

        requests = agent_session(12)
        first = tokenized(requests[0])
        assert first < len(json.dumps(requests[0])) / 4
        for k in range(1, len(requests)):
            spent = tokenized(requests[k])
            new = requests[k]["messages"][-2:]
            if k > CHECKED_PROMPTS:
                assert spent <= 3 * len(json.dumps(new)) + 500
    finally:
        fresh.close()
