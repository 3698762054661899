"""gpt-oss's harmony format: channels for reasoning, calls and the answer.

``<|channel|>analysis<|message|>…<|end|>`` is reasoning;
``<|channel|>commentary to=functions.X <|constrain|>json<|message|>{…}<|call|>``
(or ``to=functions.X`` before ``<|channel|>``) is a call; the final channel, and
commentary addressed to no one, is text.
"""

from __future__ import annotations

from typing import Collection

from .base import Dialect, in_template_or_vocab
from .legacy import legacy_reader


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return in_template_or_vocab(chat_template, vocab, "<|channel|>", "<|message|>")


DIALECT = Dialect(
    name="harmony",
    detect=detect,
    call_markers=(" to=functions.", "to=functions."),
    reasoning_markers=(("<|channel|>analysis<|message|>", "<|end|>"),),
    make_reader=legacy_reader,
)
