"""Reading a model's text back: tool-call markup to ``tool_use`` blocks, thinking, stop sequences.

The way back from the model, usable without a server: :class:`ResponseBuilder`
turns streamed model text into Anthropic content-block events. The format a model
writes its calls in is a :class:`~trimkit.toolcalls.dialects.Dialect` (one module
per family in :mod:`trimkit.toolcalls.dialects`, picked by :func:`dialect_for`);
its streaming reader gives :mod:`~trimkit.toolcalls.items`, with argument values
typed by the tool's schema (:mod:`~trimkit.toolcalls.coerce`). Imports no model
runtime and no web framework.
"""

from .coerce import coerce_arguments
from .dialects import Dialect, StreamReader, dialect_for, dialect_named
from .items import FailedCall, Item, ParsedCall, Reasoning
from .response import BlockDelta, BlockStart, BlockStop, ResponseBuilder, ResponseEvent

__all__ = [
    "BlockDelta",
    "BlockStart",
    "BlockStop",
    "Dialect",
    "FailedCall",
    "Item",
    "ParsedCall",
    "Reasoning",
    "ResponseBuilder",
    "ResponseEvent",
    "StreamReader",
    "coerce_arguments",
    "dialect_for",
    "dialect_named",
]
