"""What the Messages API refuses beyond the types, refused here with the same 400.

The Structs in :mod:`trimkit.wire` check types and ranges while decoding; this
module checks what relates fields to one another (a ``tool_choice`` naming a
declared tool, each ``tool_result`` answering a ``tool_use`` of the turn before)
and the limits trimkit sets on what it must hold in memory (stop sequences).
Anything the real API accepts is accepted: unknown top-level fields, beta block
types, ``role: "system"`` messages between turns.
"""

from __future__ import annotations

from ..wire import MessagesRequest, ToolResultBlock, ToolUseBlock
from .errors import ApiError

MAX_STOP_SEQUENCES = 128
MAX_STOP_SEQUENCE_CHARS = 4096
"""The API documents no limits; these hold what the response reader keeps per request
about a megabyte at most (its matcher is linear in the sequences' length either way)."""


def check_request(request: MessagesRequest, *, needs_max_tokens: bool) -> None:
    """Raise the 400 the API would answer for a request that decoded but breaks its rules."""
    if needs_max_tokens and request.max_tokens is None:
        raise ApiError(400, "max_tokens: Field required")
    if not request.messages:
        raise ApiError(400, "messages: at least one message is required")
    _check_blocks(request)
    _check_tools(request)
    _check_stop_sequences(request.stop_sequences)
    for name, value in (("temperature", request.temperature), ("top_p", request.top_p)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ApiError(400, f"{name}: must be between 0 and 1")
    if request.top_k is not None and request.top_k < 0:
        raise ApiError(400, "top_k: must be 0 or more")


def _check_blocks(request: MessagesRequest) -> None:
    """Each tool_use has an id and a name; each tool_result answers a tool_use of the assistant turn before it.

    Consecutive messages of one role are one turn, as the API merges them, and
    ``role: "system"`` messages between turns are passed over.
    """
    offered: set[str] = set()  # tool_use ids of the latest assistant turn
    previous_role = None
    for i, message in enumerate(request.messages):
        if message.role == "system":
            continue
        if message.role == "assistant" and previous_role != "assistant":
            offered = set()
        previous_role = message.role
        if isinstance(message.content, str):
            continue
        for j, block in enumerate(message.content):
            if isinstance(block, ToolUseBlock):
                if not block.id or not block.name:
                    raise ApiError(400, f"messages.{i}.content.{j}: tool_use requires an id and a name")
                if message.role == "assistant":
                    offered.add(block.id)
            elif isinstance(block, ToolResultBlock):
                if not block.tool_use_id:
                    raise ApiError(400, f"messages.{i}.content.{j}: tool_result requires a tool_use_id")
                if block.tool_use_id not in offered:
                    raise ApiError(
                        400,
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.tool_use_id}. Each `tool_result` block must have a corresponding `tool_use` "
                        "block in the previous message.",
                    )


def _check_tools(request: MessagesRequest) -> None:
    names = [tool.name for tool in request.tools or ()]
    if len(set(names)) != len(names):
        raise ApiError(400, "tools: tool names must be unique")
    choice = request.tool_choice
    if choice is not None and choice.type == "tool":
        if not choice.name:
            raise ApiError(400, "tool_choice.name: Field required")
        if choice.name not in names:
            raise ApiError(400, f"tool_choice: tool `{choice.name}` is not among the request's tools")


def _check_stop_sequences(stops: list[str] | None) -> None:
    if not stops:
        return
    if len(stops) > MAX_STOP_SEQUENCES:
        raise ApiError(400, f"stop_sequences: at most {MAX_STOP_SEQUENCES} are allowed, got {len(stops)}")
    for i, stop in enumerate(stops):
        if len(stop) > MAX_STOP_SEQUENCE_CHARS:
            raise ApiError(
                400, f"stop_sequences.{i}: at most {MAX_STOP_SEQUENCE_CHARS} characters are allowed, got {len(stop)}"
            )
