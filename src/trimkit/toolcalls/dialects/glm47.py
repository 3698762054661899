"""GLM-4.5 / 4.6 / 4.7: ``<tool_call>X<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>``.

GLM-4.7's template writes the pieces without separators; 4.5 and 4.6 put a
newline after the name and after each value. Both are read.
"""

from __future__ import annotations

from typing import Collection

from .base import Dialect, in_template_or_vocab
from .engine import Reader
from .invoke import convention_form
from .tool_call import ToolCallForm


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return in_template_or_vocab(chat_template, vocab, "<arg_key>")


DIALECT = Dialect(
    name="glm47",
    detect=detect,
    call_markers=("<tool_call>",),
    reasoning_markers=(("<think>", "</think>"),),
    make_reader=lambda catalog, thinking_open: Reader(catalog, thinking_open, [convention_form(), ToolCallForm()]),
)
