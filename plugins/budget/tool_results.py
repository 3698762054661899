"""Long tool results cut to their head and tail, with one line saying how much is left out.

Shortening is a pure function of the result, so an earlier result reads the same in
every later request and the prompt's prefix does not move because of it.
"""

from __future__ import annotations

from typing import Callable

from msgspec.structs import replace

from trimkit.wire import Message, MessagesRequest, TextBlock, ToolResultBlock

Counter = Callable[[str], int]

MARKER_ROOM = 64
"""Characters set aside for the marker line when sizing a shortened tool result."""


def left_out(removed: str) -> str:
    """The marker line for ``removed``: whole lines are counted as lines, anything else in characters."""
    if removed.endswith("\n"):
        lines = removed.count("\n")
        return f"[… {lines:,} line{'' if lines == 1 else 's'} left out by trimkit …]"
    return f"[… {len(removed):,} characters left out by trimkit …]"


def shorten(text: str, max_tokens: int, count: Counter, keep_head_ratio: float = 0.6) -> str:
    """``text`` cut to about ``max_tokens``: its head and tail around a marker line.

    The cut snaps to line breaks near the chosen points, so the marker stands on a
    line of its own, no line is split when one ends close by, and the marker can say
    how many lines the model does not see (it reads them again if it needs them).
    """
    if len(text) * 4 <= max_tokens:  # a token takes at least one UTF-8 byte, a character at most four
        return text
    tokens = count(text)
    if tokens <= max_tokens:
        return text
    keep = max(0, len(text) * max_tokens // tokens - MARKER_ROOM)
    head_len = int(keep * min(1.0, max(0.0, keep_head_ratio)))
    head_end = _line_start_before(text, head_len)
    tail_start = _line_start_after(text, len(text) - (keep - head_len))
    head, tail = text[:head_end], text[tail_start:]
    marker = left_out(text[head_end:tail_start])
    before = "\n" if head and not head.endswith("\n") else ""
    after = "\n" if tail else ""
    return f"{head}{before}{marker}{after}{tail}"


def _line_start_before(text: str, at: int) -> int:
    """The start of a line at or shortly before ``at`` (``at`` itself when none is near)."""
    found = text.rfind("\n", at - at // 4, at)
    return found + 1 if found >= 0 else at


def _line_start_after(text: str, at: int) -> int:
    """The start of a line at or shortly after ``at`` (``at`` itself when none is near)."""
    found = text.find("\n", at, at + (len(text) - at) // 4)
    return found + 1 if found >= 0 else at


def shorten_result(block: ToolResultBlock, max_tokens: int, count: Counter, keep_head_ratio: float) -> ToolResultBlock:
    """The block with its text shortened; the same block when it is within ``max_tokens``.

    List content has its text blocks joined (as the renderer joins them) and cut
    as one text, which takes the first text block's place; other blocks follow.
    """
    content = block.content
    if isinstance(content, str):
        cut = shorten(content, max_tokens, count, keep_head_ratio)
        return block if cut is content else replace(block, content=cut)
    if not content:
        return block
    texts = [b for b in content if isinstance(b, TextBlock)]
    if not texts:
        return block
    joined = "\n".join(b.text for b in texts)
    cut = shorten(joined, max_tokens, count, keep_head_ratio)
    if cut is joined:
        return block
    others = [b for b in content if not isinstance(b, TextBlock)]
    return replace(block, content=[replace(texts[0], text=cut), *others])


def _result_chars(block: ToolResultBlock) -> int:
    if isinstance(block.content, str):
        return len(block.content)
    return sum(len(b.text) for b in block.content or () if isinstance(b, TextBlock))


def shorten_results(
    request: MessagesRequest, max_tokens: int, count: Counter, keep_head_ratio: float = 0.6
) -> tuple[MessagesRequest, int, int]:
    """Every ``tool_result`` over ``max_tokens`` shortened: (request, results cut, characters cut)."""
    messages: list[Message] = []
    cut = chars = 0
    for message in request.messages:
        if isinstance(message.content, str):
            messages.append(message)
            continue
        blocks = []
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                short = shorten_result(block, max_tokens, count, keep_head_ratio)
                if short is not block:
                    cut += 1
                    chars += _result_chars(block) - _result_chars(short)
                    block = short
            blocks.append(block)
        changed = any(a is not b for a, b in zip(blocks, message.content))
        messages.append(replace(message, content=blocks) if changed else message)
    if not cut:
        return request, 0, 0
    return replace(request, messages=messages), cut, chars
