"""What a request is for: the user's turn, or a side request the client makes on its own.

Agent clients send more than the main loop. Claude Code asks for a session title with
each prompt (no tools, an ``output_config.format`` JSON schema with a ``title``) and, in
the terminal UI, a suggested next prompt after each answer; OpenCode asks a title
generator. These side requests are small, but on a local model with one generation slot
each one is a full prefill and generation that the user's turn would wait behind. The
server uses :func:`classify` to serve the user's turn first (and may answer a title
without the model); the recorder and the benchmarks use it to name what they see.

Classification is structural: the fields a request sets and the opening words of its
instruction, never the user's own words. A request that matches nothing is ``main``.
A compaction (the client asking for a summary of the conversation so far) is not a
side request: the user's next turn waits for it.
"""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Any

from .wire import MessagesRequest, TextBlock, message_blocks, system_text


class RequestKind(str, Enum):
    MAIN = "main"
    """The agent loop: the user's turn, a tool round trip, a sub-agent's work."""
    TITLE = "title"
    """A title for the session or the terminal."""
    SUGGESTION = "suggestion"
    """A guess at the user's next prompt."""
    COMPACTION = "compaction"
    """A summary of the conversation so far, to continue in a fresh context."""

    @property
    def side(self) -> bool:
        """Whether the user's turn does not wait for this request."""
        return self in SIDE_KINDS


SIDE_KINDS = frozenset({RequestKind.TITLE, RequestKind.SUGGESTION})

_TITLE_SYSTEM = ("you are a title generator", "generate a concise, sentence-case title")
_SUGGESTION_MARKERS = ("[suggestion mode", "suggest what the user might", "predict what the user")
_COMPACTION_MARKERS = (
    "your task is to create a detailed summary of the conversation so far",
    "provide a detailed prompt for continuing our conversation",
    "summarize this conversation",
    "create a detailed summary of the conversation",
)
HEAD_CHARS = 600


def _schema_properties(output_config: Any) -> set[str]:
    if not isinstance(output_config, dict):
        return set()
    fmt = output_config.get("format")
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return set(properties) if isinstance(properties, dict) else set()


def _last_user_text(request: MessagesRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            return "\n".join(b.text for b in message_blocks(message) if isinstance(b, TextBlock))
    return ""


def _mentions(text: str, needles: tuple[str, ...]) -> bool:
    return any(needle in text for needle in needles)


def classify(request: MessagesRequest) -> RequestKind:
    """The :class:`RequestKind` of ``request`` (``MAIN`` when nothing marks it as another)."""
    system_head = system_text(request)[:HEAD_CHARS].lower()
    last_user = _last_user_text(request).lower()
    if not request.tools:
        if "title" in _schema_properties(request.output_config) and len(_schema_properties(request.output_config)) <= 2:
            return RequestKind.TITLE
        if _mentions(system_head, _TITLE_SYSTEM):
            return RequestKind.TITLE
    tail = last_user[-4000:]
    if _mentions(tail, _SUGGESTION_MARKERS):
        return RequestKind.SUGGESTION
    if _mentions(last_user, _COMPACTION_MARKERS) or _mentions(system_head, _COMPACTION_MARKERS):
        return RequestKind.COMPACTION
    return RequestKind.MAIN


TITLE_WORDS = 6
_SESSION = re.compile(r"<session>\s*(.*?)\s*</session>", re.S)


def title_from_words(request: MessagesRequest) -> str:
    """A title made of the user's first words, for answering a title request without the model.

    Claude Code puts the user's words inside ``<session>`` and wants ``{"title": ...}``
    (its ``output_config.format``); OpenCode quotes them in the last user block and wants
    the bare title.
    """
    text = _last_user_text(request)
    found = _SESSION.search(text)
    words = found.group(1) if found else text.rsplit("\n", 1)[-1]
    line = next((l for l in words.split("\n") if l.strip()), "").strip().strip('"').strip()
    kept = line.split()[:TITLE_WORDS]
    title = " ".join(kept).rstrip(".,;:!?") or "New session"
    title = title[:1].upper() + title[1:]
    if _schema_properties(request.output_config):
        return json.dumps({"title": title}, ensure_ascii=False)
    return title
