"""The client_noise stage: take out what a client sends that is not meant for the model.

* Claude Code's ``x-anthropic-billing-header: cc_version=…; cch=<nonce>`` system block.
  Its nonce changes on every request, so left in it would make every prompt differ
  from the first line on and no prefix cache would ever be reused.
* ``<total_tokens>…</total_tokens>`` markers (a "N tokens left" count that changes
  every turn), wherever text appears; a ``<system-reminder>`` that held nothing else
  goes with them.
* ``cache_control`` on system blocks, message blocks and tools. It moves to the newest
  block every turn; it is an instruction to the API's cache, never text for the model,
  and stripping it keeps earlier turns byte-identical from one request to the next.

Removals are recorded as ``billing_header``, ``total_tokens`` and ``cache_control``
(the characters of the removed JSON, for the last).
"""

from __future__ import annotations

import re

import msgspec
from msgspec.structs import replace

from trimkit import Stage, TrimState, hookimpl
from trimkit.rewrite import rewrite_blocks, rewrite_message
from trimkit.wire import Block, MessagesRequest, Tool, UnknownBlock

BILLING_PREFIX = "x-anthropic-billing-header:"
TOTAL_TOKENS_OPEN = "<total_tokens>"
_TOTAL_TOKENS = re.compile(r"<total_tokens>[^<]*</total_tokens>[ \t]*\n?")
_EMPTY_REMINDER = re.compile(r"<system-reminder>\s*</system-reminder>[ \t]*\n?")
_CACHE_KEY_CHARS = len('"cache_control":')


class _Noise:
    """The text and block edits of one run, counting what they take out."""

    def __init__(self, state: TrimState):
        self.state = state

    def text(self, text: str) -> str:
        if TOTAL_TOKENS_OPEN not in text:
            return text
        cleaned = _TOTAL_TOKENS.sub("", text)
        if cleaned == text:
            return text
        cleaned = _EMPTY_REMINDER.sub("", cleaned)
        self.state.removed("total_tokens", len(text) - len(cleaned))
        return cleaned

    def _cache_removed(self, value: object) -> None:
        self.state.removed("cache_control", _CACHE_KEY_CHARS + len(msgspec.json.encode(value)))

    def uncached(self, item: Block | Tool) -> Block | Tool:
        """A block or tool without ``cache_control``; ``item`` itself when it has none."""
        if isinstance(item, UnknownBlock):
            if "cache_control" not in item.data:
                return item
            self._cache_removed(item.data["cache_control"])
            return replace(item, data={k: v for k, v in item.data.items() if k != "cache_control"})
        if item.cache_control is None:
            return item
        self._cache_removed(item.cache_control)
        return replace(item, cache_control=None)


def _without_billing(system: str | list | None, state: TrimState) -> str | list | None:
    if isinstance(system, str):
        if not system.startswith(BILLING_PREFIX):
            return system
        rest = system.split("\n", 1)[1].lstrip("\n") if "\n" in system else ""
        state.removed("billing_header", len(system) - len(rest))
        return rest or None
    if not system:
        return system
    kept = [b for b in system if not b.text.lstrip().startswith(BILLING_PREFIX)]
    if len(kept) == len(system):
        return system
    state.removed("billing_header", sum(len(b.text) for b in system) - sum(len(b.text) for b in kept))
    return kept or None


def clean_request(request: MessagesRequest, state: TrimState) -> MessagesRequest:
    """``request`` without client noise; the same object when there is none."""
    noise = _Noise(state)
    system = _without_billing(request.system, state)
    if isinstance(system, str):
        system = noise.text(system) or None
    elif system:
        system = rewrite_blocks(system, noise.text, noise.uncached) or None

    messages = [rewrite_message(m, noise.text, noise.uncached) for m in request.messages]
    if all(a is b for a, b in zip(messages, request.messages)):
        messages = request.messages

    tools = request.tools
    if tools:
        new_tools = [noise.uncached(t) for t in tools]
        if any(a is not b for a, b in zip(new_tools, tools)):
            tools = new_tools

    if system is request.system and messages is request.messages and tools is request.tools:
        return request
    return replace(request, system=system, messages=messages, tools=tools)


def run(state: TrimState) -> None:
    state.request = clean_request(state.request, state)


@hookimpl
def trimkit_register_stages():
    return [
        Stage(
            name="client_noise",
            run=run,
            order=100,
        )
    ]
