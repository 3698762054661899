"""DeepSeek V3, R1, V3.1 and V3.2 tool calls.

V3 and R1: ``<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>X\\n```json\\n{…}\\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>``;
V3.1: ``<｜tool▁call▁begin｜>X<｜tool▁sep｜>{…}<｜tool▁call▁end｜>``;
V3.2: trimkit-like XML with a ``｜DSML｜`` prefix: ``<｜DSML｜invoke name="X"><｜DSML｜parameter name="k" string="true">v</｜DSML｜parameter>…``.
The bars are U+FF5C and the spaces U+2581, as in the tokenizer.
"""

from __future__ import annotations

from typing import Collection

from .base import Dialect, in_template_or_vocab
from .legacy import legacy_reader

CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, CALL_END, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
DSML = "｜DSML｜"


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return DSML in chat_template or in_template_or_vocab(chat_template, vocab, CALLS_BEGIN)


DIALECT = Dialect(
    name="deepseek",
    detect=detect,
    call_markers=(CALLS_BEGIN, CALL_BEGIN, f"<{DSML}function_calls>"),
    reasoning_markers=(("<think>", "</think>"),),
    make_reader=legacy_reader,
)
