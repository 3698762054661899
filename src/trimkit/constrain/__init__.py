"""Constrained decoding: what a request allows the model to write, as a grammar.

A local model's tool call fails in three ways: a name the client did not
declare, arguments that break the schema, or markup that never closes. Prompting
reduces these; a grammar removes them. This package turns a request's tools,
``tool_choice`` and ``output_config.format`` into a :class:`Constraint`
(:func:`constraint_for`) and a constraint into a grammar for the llguidance
engine (:func:`lark_grammar`): outside a call the model writes freely; once it
opens a call, it can only name an offered tool and give arguments that fit that
tool's ``input_schema``, then close the call.

It imports no model runtime: the MLX backend compiles and applies the grammar
(``trimkit.backends.mlx_grammar``); upstream backends pass the constraint on in
their engines' own fields. Why llguidance, and what each setting does:
``docs/constrained.md``.
"""

from .dialects import CALL_GRAMMARS, CallGrammar, ToolSchema, markers
from .grammar import build, lark_grammar
from .spec import Constraint, ConstraintKinds, constraint_for
from .values import UnsupportedSchema

__all__ = [
    "CALL_GRAMMARS",
    "CallGrammar",
    "Constraint",
    "ConstraintKinds",
    "ToolSchema",
    "UnsupportedSchema",
    "build",
    "constraint_for",
    "lark_grammar",
    "markers",
]
