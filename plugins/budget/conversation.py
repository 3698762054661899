"""A conversation as the units the budget may drop, oldest first, and the note that marks the gap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from msgspec.structs import replace

from trimkit.wire import Message, TextBlock, ToolResultBlock, ToolUseBlock


def omitted_note(turns: int) -> str:
    """The line the model reads where turns were dropped: it should look again, not remember."""
    noun = "turn" if turns == 1 else "turns"
    return (f"[Earlier conversation ({turns} {noun}) omitted to fit the context window: "
            "read files again rather than recalling them.]")


@dataclass
class Conversation:
    """A request's messages grouped into the units that may be dropped together.

    A *turn* is an assistant message and the messages up to the next assistant
    message (the user's answer, its ``tool_result`` blocks included). The turn
    holding the last user message, and everything after it, is never dropped;
    neither are ``role: "system"`` messages before the first assistant message.
    The *opening* unit (the user messages before the first assistant message)
    goes last. Units linked by a ``tool_use`` id go together, so no call is ever
    kept without its result or the other way round.
    """

    messages: list[Message]
    units: list[list[int]] = field(default_factory=list)
    """Droppable units as message indices, in the order they are dropped."""
    middle: int = 0
    """How many of ``units`` are turns after the opening one."""
    partners: list[list[int]] = field(default_factory=list)
    """For each unit, the units (itself included) linked to it by tool-use ids."""

    @classmethod
    def of(cls, messages: list[Message]) -> "Conversation":
        conversation = cls(messages)
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        starts = [i for i, m in enumerate(messages) if m.role == "assistant" and i < last_user]
        if not starts:
            return conversation
        turns = [list(range(a, b)) for a, b in zip(starts, starts[1:])]
        opening = [i for i in range(starts[0]) if messages[i].role != "system"]
        units = turns + ([opening] if opening else [])
        pinned = len(units)
        unit_of = {i: u for u, members in enumerate(units) for i in members}
        root = _link_by_tool_ids(messages, lambda i: unit_of.get(i, pinned), pinned + 1)
        droppable = [u for u in range(pinned) if root[u] != root[pinned]]
        position = {u: p for p, u in enumerate(droppable)}
        linked: dict[int, list[int]] = {}
        for u in droppable:
            linked.setdefault(root[u], []).append(position[u])
        conversation.units = [units[u] for u in droppable]
        conversation.middle = sum(1 for u in droppable if u < len(turns))
        conversation.partners = [linked[root[u]] for u in droppable]
        return conversation

    def dropped(self, count: int) -> list[int]:
        """The units that go when the first ``count`` go (with everything linked to them)."""
        chosen: set[int] = set()
        for unit in range(count):
            chosen.update(self.partners[unit])
        return sorted(chosen)

    def dropped_totals(self, sizes: list[int]) -> list[int]:
        """For each ``count`` from 0 to all units, the summed ``sizes`` of :meth:`dropped` (``count``)."""
        chosen: set[int] = set()
        totals, running = [0], 0
        for unit in range(len(self.units)):
            for partner in self.partners[unit]:
                if partner not in chosen:
                    chosen.add(partner)
                    running += sizes[partner]
            totals.append(running)
        return totals

    def without(self, units: Iterable[int]) -> list[Message]:
        """The messages without ``units``, with a note where the first gap is.

        The note joins the user message before the gap (``role: "system"``
        messages between them aside), or becomes a user message of its own, so
        the conversation still opens with the user and alternates.
        """
        units = list(units)
        gone = {i for u in units for i in self.units[u]}
        first_gap = min(gone)
        out = [m for i, m in enumerate(self.messages) if i < first_gap]
        note = TextBlock(text=omitted_note(len(units)))
        before = next((j for j in range(len(out) - 1, -1, -1) if out[j].role != "system"), None)
        if before is not None and out[before].role == "user":
            out[before] = _with_block(out[before], note)
        else:
            out.append(Message(role="user", content=[note]))
        out.extend(m for i, m in enumerate(self.messages) if i > first_gap and i not in gone)
        return out

    def opening(self) -> list[Message]:
        """The messages before the first droppable turn: what every request of this conversation starts with."""
        first = min((u[0] for u in self.units[: self.middle]), default=len(self.messages))
        return self.messages[:first]


def _with_block(message: Message, block: TextBlock) -> Message:
    content = [TextBlock(text=message.content)] if isinstance(message.content, str) else list(message.content)
    return replace(message, content=[*content, block])


def _link_by_tool_ids(messages: list[Message], unit_of: Callable[[int], int], size: int) -> list[int]:
    """Union-find over units: units holding the same tool-use id end with the same root."""
    parent = list(range(size))

    def root(u: int) -> int:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    seen: dict[str, int] = {}
    for i, message in enumerate(messages):
        if isinstance(message.content, str):
            continue
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                key = block.id
            elif isinstance(block, ToolResultBlock):
                key = block.tool_use_id
            else:
                continue
            unit = unit_of(i)
            if key in seen:
                parent[root(unit)] = root(seen[key])
            else:
                seen[key] = unit
    return [root(u) for u in range(size)]
