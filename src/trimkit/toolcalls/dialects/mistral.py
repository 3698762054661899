"""Mistral and Devstral: ``[TOOL_CALLS]`` then a JSON list of calls, or ``X[ARGS]{…}`` per call.

Tokenizers before v11 write ``[TOOL_CALLS] [{"name": …, "arguments": {…}, "id": …}]``;
v11 and later write ``[TOOL_CALLS]X[ARGS]{…}`` (``[CALL_ID]id`` may come before
``[ARGS]``), one ``[TOOL_CALLS]`` per call. Magistral reasons in ``[THINK]…[/THINK]``.
"""

from __future__ import annotations

from typing import Collection

from .base import Dialect, in_template_or_vocab
from .legacy import legacy_reader

OPEN = "[TOOL_CALLS]"


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return in_template_or_vocab(chat_template, vocab, OPEN)


DIALECT = Dialect(
    name="mistral",
    detect=detect,
    call_markers=(OPEN,),
    reasoning_markers=(("[THINK]", "[/THINK]"),),
    make_reader=legacy_reader,
)
