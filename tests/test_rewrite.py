"""The helpers stages share to change a request: rewriting message text, appending to the system prompt."""

from __future__ import annotations

from trimkit import decode_request
from trimkit.rewrite import EMPTY_MESSAGE, appended_system, rewrite_message
from trimkit.wire import TextBlock


def request(system=None):
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    if system is not None:
        body["system"] = system
    return decode_request(body)


def test_appended_system_adds_new_last_blocks_whatever_shape_the_prompt_had():
    assert appended_system(request(), "a", "b") == [TextBlock(text="a"), TextBlock(text="b")]
    assert appended_system(request(""), "a") == [TextBlock(text="a")]
    assert appended_system(request("Be brief."), "a") == [TextBlock(text="Be brief."), TextBlock(text="a")]
    blocks = [{"type": "text", "text": "one"}, {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}]
    original = request(blocks)
    appended = appended_system(original, "three")
    assert appended[:2] == original.system and appended[2] == TextBlock(text="three")
    assert appended[0] is original.system[0] and len(original.system) == 2


def test_an_unchanged_message_comes_back_as_the_same_object_and_an_emptied_one_holds_a_marker():
    message = request().messages[0]
    assert rewrite_message(message, lambda text: text) is message
    assert rewrite_message(message, lambda text: "").content == EMPTY_MESSAGE
