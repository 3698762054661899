"""The tool calls a request holds and the results it answers them with, for tests that check they still pair."""

from __future__ import annotations

from trimkit.wire import MessagesRequest, ToolResultBlock, ToolUseBlock, message_blocks


def tool_ids(request: MessagesRequest) -> tuple[set[str], set[str]]:
    """The ids of its ``tool_use`` blocks and the ``tool_use_id`` of its ``tool_result`` blocks:
    equal when every call kept its result and no result lost its call."""
    uses, results = set(), set()
    for message in request.messages:
        for block in message_blocks(message):
            if isinstance(block, ToolUseBlock):
                uses.add(block.id)
            elif isinstance(block, ToolResultBlock):
                results.add(block.tool_use_id)
    return uses, results
