"""Reading a model's text back: tool-call markup to ``tool_use`` blocks, thinking, stop sequences.

The way back from the model, usable without a server: :class:`ResponseBuilder`
turns streamed model text into Anthropic content-block events; the streaming
reader underneath is :class:`~trimkit.toolcalls.parser.ToolCallParser`, and
argument values are typed by the tool's schema in :mod:`~trimkit.toolcalls.coerce`.
Imports no model runtime and no web framework.
"""

from .coerce import coerce_arguments
from .parser import ParsedCall, ToolCallParser
from .response import BlockDelta, BlockStart, BlockStop, ResponseBuilder, ResponseEvent

__all__ = [
    "BlockDelta",
    "BlockStart",
    "BlockStop",
    "ParsedCall",
    "ResponseBuilder",
    "ResponseEvent",
    "ToolCallParser",
    "coerce_arguments",
]
