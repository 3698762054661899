"""Sizes of a request as a model reads it, cheap enough to take after every stage.

A trim measures the request once before the first stage and once after each, so
measuring must not re-render 300 KB every time. Each message's rendered size is
memoized by identity for the length of one trim: stages build new Structs for
what they change and keep the others, so only changed messages are measured
again. The figures match ``len(render.prompt_text(request))`` up to the few
characters of separators that merging adjacent same-role turns saves.

Token counts are the profile's (exact with a tokenizer, memoized across requests by
text); ``exact=False`` estimates them from characters instead, for figures whose
exactness does not matter (a server's report of every stage).
"""

from __future__ import annotations

from typing import Any

from .profile import ModelProfile
from .render import message_view, tool_names, tools_json
from .wire import Message, MessagesRequest, system_text

ROLE_MARK = len("<|user|>\n") + 1


class Measure:
    def __init__(self, profile: ModelProfile, exact: bool = True):
        self.profile = profile
        self.exact = exact
        self._count = profile.count_tokens if exact else profile.estimate_tokens
        self._messages: dict[int, tuple[Message, int, int]] = {}
        self._parts: dict[int, tuple[Any, int, int]] = {}

    def _text(self, key_obj: Any, text_fn) -> tuple[int, int]:
        hit = self._parts.get(id(key_obj))
        if hit is not None and hit[0] is key_obj:
            return hit[1], hit[2]
        text = text_fn()
        size = (len(text), self._count(text))
        self._parts[id(key_obj)] = (key_obj, *size)
        return size

    def message(self, message: Message, names: dict[str, str]) -> tuple[int, int]:
        hit = self._messages.get(id(message))
        if hit is not None and hit[0] is message:
            return hit[1], hit[2]
        text = message_view(message, names)
        chars, tokens = len(text) + ROLE_MARK, self._count(text) + self.profile.message_tokens
        self._messages[id(message)] = (message, chars, tokens)
        return chars, tokens

    def request(self, request: MessagesRequest) -> tuple[int, int]:
        chars = tokens = 0
        if request.system is not None:
            c, t = self._text(request.system, lambda: system_text(request))
            chars, tokens = c + ROLE_MARK, t + self.profile.message_tokens
        if request.tools:
            c, t = self._text(request.tools, lambda: tools_json(request))
            chars, tokens = chars + c, tokens + t
        names: dict[str, str] | None = None
        for message in request.messages:
            hit = self._messages.get(id(message))
            if hit is not None and hit[0] is message:
                c, t = hit[1], hit[2]
            else:
                if names is None:
                    names = tool_names(request.messages)
                c, t = self.message(message, names)
            chars, tokens = chars + c, tokens + t
        return chars, tokens
