"""Rewrite the text a model reads in a message, building new Structs only where it changes.

A stage passes a function ``str -> str`` that returns its argument itself (the very
same object) when it has nothing to change. A message, block or list in which nothing
changed comes back as the object it was, so untouched turns cost no copying and the
request a stage was handed is never edited.

Emptied content is never left behind in a shape the API rejects: a text block that
becomes blank is dropped, a ``tool_result`` whose content empties keeps an empty
string, and a user or assistant message left with nothing holds :data:`EMPTY_MESSAGE`
(they are never removed, which would shift the turns). A ``role: "system"`` message
holds no turn: :func:`rewrite_message_or_none` lets a stage remove it when it empties.

Stages that add to the system prompt append new text blocks with
:func:`appended_system`, so earlier blocks stay byte-identical (and cached).
"""

from __future__ import annotations

from typing import Callable

from msgspec.structs import replace

from .wire import Block, Message, MessagesRequest, TextBlock, ToolResultBlock

EMPTY_MESSAGE = "(no content)"

TextFn = Callable[[str], str]
BlockFn = Callable[[Block], Block]


def rewrite_message(message: Message, fn: TextFn, prepare: BlockFn | None = None) -> Message:
    """``message`` with ``fn`` applied to its text and its tool results' text.

    ``prepare``, when given, is applied to every block first (nested tool-result
    blocks included), in the same pass; like ``fn`` it returns its argument when
    it changes nothing.
    """
    rewritten = rewrite_message_or_none(message, fn, prepare)
    if rewritten is not None:
        return rewritten
    return replace(message, content=EMPTY_MESSAGE if isinstance(message.content, str) else [TextBlock(text=EMPTY_MESSAGE)])


def rewrite_message_or_none(message: Message, fn: TextFn, prepare: BlockFn | None = None) -> Message | None:
    """:func:`rewrite_message`, but ``None`` for a message left with nothing (for a
    ``role: "system"`` message, which holds no turn and can simply go)."""
    content = message.content
    if isinstance(content, str):
        text = fn(content)
        if text is content:
            return message
        return replace(message, content=text) if text.strip() else None
    blocks = rewrite_blocks(content, fn, prepare)
    if blocks is content:
        return message
    return replace(message, content=blocks) if blocks else None


def rewrite_blocks(blocks: list, fn: TextFn, prepare: BlockFn | None = None) -> list:
    """``blocks`` with ``fn`` applied; blocks that become blank text are left out."""
    out: list | None = None
    for index, block in enumerate(blocks):
        new = _rewrite_block(prepare(block) if prepare else block, fn, prepare)
        if new is not block and out is None:
            out = list(blocks[:index])
        if out is not None and new is not None:
            out.append(new)
    return blocks if out is None else out


def _rewrite_block(block: Block, fn: TextFn, prepare: BlockFn | None) -> Block | None:
    if isinstance(block, TextBlock):
        text = fn(block.text)
        if text is block.text:
            return block
        return replace(block, text=text) if text.strip() else None
    if isinstance(block, ToolResultBlock):
        content = block.content
        if isinstance(content, str):
            text = fn(content)
            return block if text is content else replace(block, content=text if text.strip() else "")
        if content:
            inner = rewrite_blocks(content, fn, prepare)
            return block if inner is content else replace(block, content=inner or "")
    return block


def appended_system(request: MessagesRequest, *texts: str) -> list[TextBlock]:
    """The request's system prompt as text blocks with ``texts`` as new last blocks.

    A string prompt becomes the first block; an empty or missing one adds nothing.
    """
    system = request.system
    if isinstance(system, list):
        before = list(system)
    else:
        before = [TextBlock(text=system)] if system else []
    return [*before, *(TextBlock(text=text) for text in texts)]
