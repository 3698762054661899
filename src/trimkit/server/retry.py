"""One more try for a tool call that could not be made, before the client sees any of it.

A small model sometimes calls a tool that was not declared, or writes a call that
cannot be read even after repair. The response builder holds such a call back
(nothing of it has been sent, streaming included) and the server asks once more: the
prompt is the same conversation, then what the model wrote, as its turn, then a short
correction in a user turn that names what went wrong. The retry's output continues the
same response; if it fails too, the client gets the text the model wrote (see
``docs/tool-calls.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import GenerationParams
from ..render import Chat
from ..toolcalls.items import FailedCall

MIN_RETRY_TOKENS = 16
"""A retry needs room to write a call; with fewer output tokens left, the text goes to the client."""

LEAD = {
    "undeclared": "Your call to {name} was not made: {detail}",
    "unreadable": "Your call to {name} could not be read: {detail}",
    "unfinished": "Your call to {name} was cut off: {detail}",
}
ASK = {
    "undeclared": "Call one of the declared tools by its exact name, or answer in text.",
    "unreadable": "Write the call again, whole, in the format you were shown.",
    "unfinished": "Write the call again, whole, in the format you were shown.",
}


def correction(failed: FailedCall) -> str:
    """The user turn that tells the model what went wrong, in two short sentences."""
    name = failed.name or "a tool"
    lead = LEAD[failed.reason].format(name=name, detail=failed.detail.rstrip(".") + ".")
    return f"{lead} {ASK[failed.reason]}"


@dataclass
class Retry:
    chat: Chat
    params: GenerationParams


def plan_retry(chat: Chat, written: str, failed: FailedCall, params: GenerationParams, used: int) -> Retry | None:
    """The retry's chat and parameters, or None when no output tokens are left for one.

    ``written`` is everything the model wrote in the failed attempt (its reasoning, text
    and the failed call); it becomes the assistant's turn so the model sees its mistake.
    ``used`` is how many output tokens that attempt took from ``params.max_tokens``.
    """
    left = params.max_tokens - used
    if left < MIN_RETRY_TOKENS:
        return None
    messages = [*chat, {"role": "assistant", "content": written}, {"role": "user", "content": correction(failed)}]
    retry_params = GenerationParams(max_tokens=left, temperature=params.temperature, top_p=params.top_p,
                                    top_k=params.top_k)
    return Retry(chat.with_messages(messages), retry_params)
