"""Reading tool calls out of answers another engine produced: Anthropic messages, their streams, chat completions."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from trimkit.toolcalls.chat_completions import read_chat_completion
from trimkit.toolcalls.dialects import dialect_named
from trimkit.toolcalls.messages import MessageStreamReader, declared_tools, read_message, sse_frame

READ = {"name": "Read", "description": "Read a file", "input_schema": {
    "type": "object", "properties": {"file_path": {"type": "string"}, "limit": {"type": "integer"}},
    "required": ["file_path"]}}
CALL = ('<function_calls>\n<invoke name="Read">\n<parameter name="file_path">/tmp/a.py</parameter>\n'
        '<parameter name="limit">20</parameter>\n</invoke>\n</function_calls>')
TEXT = "Let me look at it.\n" + CALL


def message(*blocks, stop="end_turn"):
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": list(blocks),
            "stop_reason": stop, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 4}}


def text(value, **extra):
    return {"type": "text", "text": value, **extra}


def test_markup_in_the_text_becomes_a_tool_use_with_the_declared_name_and_typed_input():
    read = read_message(message(text(TEXT)), [READ])
    assert [b["type"] for b in read["content"]] == ["text", "tool_use"]
    assert read["content"][0]["text"] == "Let me look at it."
    use = read["content"][1]
    assert use["name"] == "Read" and use["input"] == {"file_path": "/tmp/a.py", "limit": 20}
    assert use["id"].startswith("toolu_")
    assert read["stop_reason"] == "tool_use" and read["usage"] == {"input_tokens": 3, "output_tokens": 4}


def test_text_without_calls_is_left_exactly_as_it_was():
    original = message(text("  No calls here, just <b>markup</b> talk.  ", citations=[{"x": 1}]))
    assert read_message(original, [READ]) == original


def test_the_upstreams_own_blocks_stay_in_their_place():
    native = {"type": "tool_use", "id": "toolu_native", "name": "Read", "input": {"file_path": "/b"}}
    read = read_message(message(text("First."), native, text(CALL)), [READ])
    assert [b["type"] for b in read["content"]] == ["text", "tool_use", "tool_use"]
    assert read["content"][1] == native
    assert read["content"][2]["input"]["file_path"] == "/tmp/a.py"


def test_a_call_cut_by_max_tokens_stays_text_and_the_stop_reason_stays():
    cut = TEXT[: -len("</invoke>\n</function_calls>")]
    read = read_message(message(text(cut), stop="max_tokens"), [READ])
    assert read["stop_reason"] == "max_tokens"
    assert [b["type"] for b in read["content"]] == ["text"] and "<invoke" in read["content"][0]["text"]


def test_an_undeclared_tool_stays_text():
    read = read_message(message(text(CALL.replace("\"Read\"", "\"Frobnicate\""))), [READ])
    assert [b["type"] for b in read["content"]] == ["text"] and read["stop_reason"] == "end_turn"


def test_without_declared_tools_nothing_is_read():
    original = message(text(TEXT))
    assert read_message(original, None) == original


def test_reasoning_becomes_a_thinking_block_when_asked_for_and_is_dropped_otherwise():
    written = message(text("<think>the file is small</think>Reading it now.\n" + CALL))
    on = read_message(written, [READ], thinking=True)
    assert [b["type"] for b in on["content"]] == ["thinking", "text", "tool_use"]
    assert on["content"][0]["thinking"] == "the file is small" and on["content"][0]["signature"]
    off = read_message(written, [READ])
    assert [b["type"] for b in off["content"]] == ["text", "tool_use"]
    assert "small" not in off["content"][0]["text"]


def test_a_familys_own_format_is_read_with_its_dialect():
    qwen = ("<tool_call>\n<function=Read>\n<parameter=file_path>\n/tmp/q.py\n</parameter>\n"
            "</function>\n</tool_call>")
    read = read_message(message(text(qwen)), [READ], dialect=dialect_named("qwen3_coder"))
    assert read["content"][-1]["input"] == {"file_path": "/tmp/q.py"}


def test_tools_are_taken_in_the_anthropic_and_the_openai_shape():
    openai = {"type": "function", "function": {"name": "Read", "parameters": READ["input_schema"]}}
    assert declared_tools([READ])[0].input_schema == declared_tools([openai])[0].input_schema
    assert [t.name for t in declared_tools([READ, {"name": ""}, {"nothing": 1}])] == ["Read"]


# ---------------------------------------------------------------- streams


def upstream_stream(*texts, stop="end_turn", extra_blocks=()):
    """An Anthropic event stream as a translating proxy writes it: one text block, then any others."""
    events = [{"type": "message_start", "message": message()},
              {"type": "content_block_start", "index": 0, "content_block": text("")}]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}} for t in texts]
    events.append({"type": "content_block_stop", "index": 0})
    for i, block in enumerate(extra_blocks, start=1):
        events += [{"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}},
                   {"type": "content_block_delta", "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
                   {"type": "content_block_stop", "index": i}]
    events += [{"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 9}}, {"type": "message_stop"}]
    return events


def assembled(events):
    """The content blocks a client puts together from ``events``, checking the indices as the SDK does."""
    blocks, open_index = [], None
    for event in events:
        if event["type"] == "content_block_start":
            assert event["index"] == len(blocks) and open_index is None
            blocks.append(dict(event["content_block"], _json=""))
            open_index = event["index"]
        elif event["type"] == "content_block_delta":
            assert event["index"] == open_index
            delta, block = event["delta"], blocks[event["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                block["_json"] += delta["partial_json"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
        elif event["type"] == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
    for block in blocks:
        raw = block.pop("_json")
        if block["type"] == "tool_use":
            block["input"] = json.loads(raw)
    return blocks


def test_a_stream_gets_the_same_blocks_as_the_finished_message_and_a_tool_use_stop():
    reader = MessageStreamReader([READ])
    out = [e for event in upstream_stream(TEXT[:7], TEXT[7:28], TEXT[28:]) for e in reader.feed(event)]
    blocks = assembled(out)
    expected = read_message(message(text(TEXT)), [READ])["content"]
    assert [(b["type"], b.get("text"), b.get("input")) for b in blocks] == \
           [(b["type"], b.get("text"), b.get("input")) for b in expected]
    (delta,) = [e for e in out if e["type"] == "message_delta"]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"] == {"output_tokens": 9}
    assert out[0]["type"] == "message_start" and out[-1]["type"] == "message_stop"
    assert reader.tool_uses == 1


def test_text_streams_as_it_comes_until_something_may_be_a_call():
    reader = MessageStreamReader([READ])
    reader.feed({"type": "content_block_start", "index": 0, "content_block": text("")})
    first = reader.feed({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello th"}})
    assert [e["type"] for e in first] == ["content_block_start", "content_block_delta"]
    held = reader.feed({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ere <func"}})
    assert "<func" not in json.dumps(held)


def test_blocks_the_upstream_made_are_passed_on_numbered_after_the_ones_read_from_text():
    native = {"type": "tool_use", "id": "toolu_native", "name": "Read", "input": {"file_path": "/b"}}
    reader = MessageStreamReader([READ])
    out = [e for event in upstream_stream(TEXT, extra_blocks=[native]) for e in reader.feed(event)]
    blocks = assembled(out)
    assert [(b["type"], b.get("id")) for b in blocks][1:] == [("tool_use", blocks[1]["id"]), ("tool_use", "toolu_native")]
    assert blocks[2]["input"] == {"file_path": "/b"}


def test_a_stream_without_calls_keeps_its_text_and_its_stop_reason():
    reader = MessageStreamReader([READ])
    out = [e for event in upstream_stream("Just ", "an answer.") for e in reader.feed(event)]
    assert assembled(out) == [text("Just an answer.")]
    assert [e for e in out if e["type"] == "message_delta"][0]["delta"]["stop_reason"] == "end_turn"


def raw_sse(events):
    return b"".join(sse_frame(e) for e in events) + b"event: ping\ndata: [DONE]\n\n"


@given(st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=12))
def test_raw_sse_split_anywhere_gives_the_same_frames(cuts):
    raw = raw_sse(upstream_stream("Let me look.\n", CALL))
    whole = MessageStreamReader([READ], thinking=False)
    expected = whole.feed_sse(raw) + whole.close_sse()
    reader = MessageStreamReader([READ])
    out, start = b"", 0
    for cut in sorted(set(cuts)):
        out += reader.feed_sse(raw[start:cut])
        start = max(start, cut)
    out += reader.feed_sse(raw[start:]) + reader.close_sse()
    strip_ids = lambda b: b"".join(line for line in b.split(b"\n") if b"toolu_" not in line)  # noqa: E731
    assert strip_ids(out) == strip_ids(expected)
    assert out.count(b"event: content_block_start") == 2
    assert b"event: ping\ndata: [DONE]\n\n" in out  # a frame this does not read goes out as it came


def test_a_crlf_stream_and_a_last_frame_without_its_blank_line_are_read():
    raw = raw_sse(upstream_stream(TEXT)).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    reader = MessageStreamReader([READ])
    out = reader.feed_sse(raw) + reader.close_sse()
    assert b'"stop_reason": "tool_use"' in out and b"event: ping" in out


def test_without_tools_or_thinking_a_stream_passes_through_unchanged():
    events = upstream_stream(TEXT)
    reader = MessageStreamReader(None)
    assert [e for event in events for e in reader.feed(event)] == events


# ---------------------------------------------------------------- OpenAI chat completions


def completion(content, finish="stop", **message_fields):
    return {"id": "c1", "object": "chat.completion", "model": "m", "usage": {"prompt_tokens": 1},
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content, **message_fields}}]}


def test_markup_in_a_chat_completion_becomes_tool_calls_with_json_arguments():
    read = read_chat_completion(completion(TEXT), [READ])
    choice = read["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look at it."
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "Read"
    assert json.loads(call["function"]["arguments"]) == {"file_path": "/tmp/a.py", "limit": 20}
    assert read["usage"] == {"prompt_tokens": 1}


def test_a_chat_completion_without_calls_is_left_as_it_was_and_engine_calls_come_first():
    plain = completion("Nothing to call.")
    assert read_chat_completion(plain, [READ]) == plain
    engine_call = {"id": "call_e", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
    read = read_chat_completion(completion(CALL, tool_calls=[engine_call]), [READ])
    calls = read["choices"][0]["message"]["tool_calls"]
    assert calls[0] == engine_call and len(calls) == 2 and read["choices"][0]["message"]["content"] is None


def test_reasoning_in_a_chat_completion_becomes_reasoning_content_when_asked_for():
    read = read_chat_completion(completion("<think>plan</think>Done."), [READ], thinking=True)
    assert read["choices"][0]["message"]["reasoning_content"] == "plan"
    assert read["choices"][0]["message"]["content"] == "Done."
