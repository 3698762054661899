"""gpt-oss's harmony format: every message names its channel, and calls name their recipient.

::

    <|channel|>analysis<|message|>The user wants…<|end|>
    <|start|>assistant<|channel|>commentary to=functions.Bash <|constrain|>json<|message|>{"command": "ls"}<|call|>
    <|start|>assistant<|channel|>final<|message|>Here it is.<|return|>

The prompt ends with ``<|start|>assistant``, so the turn starts with a header
(``<|channel|>…`` or `` to=functions.X<|channel|>…``) up to ``<|message|>``. A
message addressed ``to=functions.X`` is a call whose arguments are JSON (a
``<|call|>`` inside a JSON string does not end it); the analysis channel is
reasoning; the final channel, commentary addressed to no one, and a turn written
without any header are text. ``<|call|>`` and ``<|return|>`` are end-of-turn
tokens, so the turn may end right after the JSON. Headers and message markers are
markup: they never reach the client.
"""

from __future__ import annotations

import re
from typing import Collection

from ..items import FailedCall, Reasoning
from ..scan import Needles
from .base import Dialect, in_template_or_vocab
from .engine import HEADER_LIMIT, CallForm, Reader

START, END, MESSAGE, CHANNEL = "<|start|>", "<|end|>", "<|message|>", "<|channel|>"
CONSTRAIN, RETURN, CALL = "<|constrain|>", "<|return|>", "<|call|>"

_ENDS = Needles(END, RETURN, CALL, START, CHANNEL)
_HEADER_START = Needles(CHANNEL, CONSTRAIN, " to=", "to=", "assistant")
_TERMINATORS = frozenset((END, CALL, RETURN))
_RECIPIENT = re.compile(r"to=([^\s<]+)")
_HEADER_PARTS = re.compile(r"(<\|channel\|>|<\|constrain\|>|\s+)")
_HEADER_WORD = re.compile(r"to=[^\s<]+|\w+")
_CHANNEL = re.compile(re.escape(CHANNEL) + r"\s*(\w+)")


def _bare_header(text: str) -> bool:
    """Whether ``text`` is only a message header (role, channel, recipient, content type) with nothing after it."""
    if len(text) > HEADER_LIMIT:
        return False
    parts = _HEADER_PARTS.split(text)
    return all(not p or p.isspace() or p in (CHANNEL, CONSTRAIN) or _HEADER_WORD.fullmatch(p) for p in parts)


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return in_template_or_vocab(chat_template, vocab, CHANNEL, MESSAGE)


class _Call(CallForm):
    """A message addressed to a function: its JSON arguments up to the end of the message."""

    def after_json(self) -> bool:
        r = self.r
        r.space()
        word = r.at(_ENDS)
        if word is False:
            return False
        if word in _TERMINATORS:
            r.consume(r.pos + len(word))
        if word or r.ended:
            return self.json_done()
        r.state = lambda: self.json_tail(_ENDS)
        return True

    def after_call(self):
        return self.r.between_messages


class HarmonyReader(Reader):
    reasoning = None

    def __init__(self, catalog, thinking_open):
        super().__init__(catalog, False, ())
        self.call = _Call()
        self.call.bind(self)
        self.state = self.message_start

    def message_start(self) -> bool:
        """At the start of the turn or after ``<|start|>``: a header, or plain text."""
        word = self.at(_HEADER_START)
        if word is False:
            return False
        if not word:
            self.channel, self.recipient = "final", None
            self.state = self.content
            return True
        self.state = self.header
        return True

    def header(self) -> bool:
        j = self.buf.find(MESSAGE, self.pos, self.pos + HEADER_LIMIT + len(MESSAGE))
        if j < 0:
            if not self.eof and len(self.buf) - self.pos <= HEADER_LIMIT:
                return False
            if self.eof and _bare_header(self.buf[self.pos :]):
                self.pos = len(self.buf)  # the turn ended on the next message's header: markup
                return False
            self.channel, self.recipient = "final", None  # not a header after all: the model wrote text
            marker = self.at(_HEADER_START) or ""
            self.emit_text(self.consume(self.pos + len(marker)))
            self.state = self.content
            return True
        header = self.buf[self.pos : j]
        self.pos = j + len(MESSAGE)
        channel = _CHANNEL.search(header)
        recipient = _RECIPIENT.search(header)
        self.channel = channel.group(1) if channel else "final"
        self.recipient = recipient.group(1) if recipient else None
        if self.recipient is not None and self.catalog:
            self.call.wrapper = None
            self.call.start_call(header + MESSAGE)
            self.call.name = self.recipient.removeprefix("functions.")
            self.state = self.call_body
        else:
            self.state = self.content
        return True

    def call_body(self) -> bool:
        self.space()
        if self.waiting:
            return False
        if not self.ended and self.buf[self.pos] in "{[":
            self.call.begin_json(_ENDS)
            return True
        if not self.skip_to(_ENDS) and not self.eof:  # not JSON: the whole message is a call that failed
            return False
        word = self.at(_ENDS)
        if word in _TERMINATORS:
            self.consume(self.pos + len(word))
        raw = self.end_raw()
        name = self.call.name
        if self.truncated and not word:
            self.emit_text(raw)
        else:
            self.emit_call(FailedCall(name, raw, "unreadable", f"the arguments of {name} must be a JSON object"))
        self.state = self.between_messages
        return True

    def content(self) -> bool:
        piece, word = self.scan(_ENDS)
        if piece:
            if self.channel == "analysis":
                self.out.append(Reasoning(piece))
            else:
                self.emit_text(piece)
        if word is None:
            return False
        if word not in _TERMINATORS:  # a new message without the previous one's end
            self.pos -= len(word)
        self.state = self.between_messages
        return True

    def between_messages(self) -> bool:
        """After a message: ``<|start|>`` and the next one, a header without it, or text."""
        self.space()
        if self.waiting:
            return False
        if self.ended:
            return False
        for marker in (START, CHANNEL):
            if self.buf.startswith(marker, self.pos):
                if marker == START:
                    self.pos += len(marker)
                self.state = self.message_start
                return True
            if not self.eof and marker.startswith(self.buf[self.pos :]):
                return False
        self.state = self.message_start
        return True


DIALECT = Dialect(
    name="harmony",
    detect=detect,
    call_markers=(" to=functions.", "to=functions."),
    reasoning_markers=((f"{CHANNEL}analysis{MESSAGE}", END),),
    make_reader=lambda catalog, thinking_open: HarmonyReader(catalog, thinking_open),
)
