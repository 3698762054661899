"""The grammar of a turn with tool calls, one module per dialect, keyed by the dialect's name.

The names match the reading side's dialects (``trimkit.toolcalls.dialects``), so a
request rendered in a dialect is constrained in the same one, and each grammar
allows exactly what that dialect's reader reads back as a call: a tool that was
offered, arguments that fit its ``input_schema``, the closing markup. Each module
defines one :class:`~.base.CallGrammar`; the layout of a call follows what the
family's chat template writes, so a model sees its earlier calls in the form a
constrained model writes its new ones.
"""

from __future__ import annotations

from .base import CallGrammar, Marks, Mode, ToolSchema, literal, properties, with_definitions
from .deepseek import DEEPSEEK
from .gemma4 import GEMMA4
from .glm47 import GLM47
from .harmony import HARMONY
from .hermes import HERMES
from .llama3_json import LLAMA3_JSON
from .minimax_m2 import MINIMAX_M2
from .mistral import MISTRAL
from .qwen3_coder import QWEN3_CODER
from .xml import XML

CALL_GRAMMARS: dict[str, CallGrammar] = {
    grammar.name: grammar
    for grammar in (XML, HERMES, QWEN3_CODER, GLM47, MINIMAX_M2, GEMMA4, HARMONY, MISTRAL, LLAMA3_JSON, DEEPSEEK)
}
"""Every dialect whose calls can be constrained, by the name the reading side uses."""


def markers(dialect: str) -> tuple[str, ...]:
    """The markers a grammar in ``dialect`` may write: those a model's tokenizer may hold as special tokens."""
    grammar = CALL_GRAMMARS.get(dialect)
    return grammar.all_markers if grammar is not None else ("</think>",)


__all__ = ["CALL_GRAMMARS", "CallGrammar", "Marks", "Mode", "ToolSchema", "literal", "markers", "properties",
           "with_definitions"]
