"""Rendering a chat through the model's own chat template, and finding out what the template can do.

Templates that render tools disagree on the shape of the messages they take: most read
OpenAI-style ``tool_calls`` whose ``arguments`` are a dict, DeepSeek's concatenates them
as a JSON string, gpt-oss's and Llama 3's read only ``tool_calls[0]``, Gemma 4's wants
tool results as ``tool_responses`` on the assistant message rather than ``role: "tool"``
messages, Mistral's refuses a user turn straight after a tool result, and gpt-oss's
rewrites the text beside a call once a final answer follows. Rather than keep a table of
model names, :func:`probe` renders a few small conversations and looks at what comes out
(as llama.cpp does for its templates), and :func:`shape` adapts the chat to what it found.

The template is reached through a plain callable, ``render(messages, tools=…,
add_generation_prompt=…, continue_final_message=…, **template_kwargs) -> str``, so this
module imports no tokenizer library; the MLX backend and ``trimkit inspect`` hand in the
tokenizer's ``apply_chat_template``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from .errors import ConversationError
from .render import Chat

Render = Callable[..., str]

PROBE_TOOL = "trimkit_probe_tool"
PROBE_VALUE = "trimkit_probe_value"
PROBE_RESULT = "trimkit_probe_result"
PROBE_SECOND = "trimkit_probe_second"
PROBE_NOTE = "trimkit_probe_note"
PROBE_AFTER = "trimkit_probe_after"


@dataclass(frozen=True)
class TemplateTraits:
    """What :func:`probe` found out about a template.

    ``renders_tools``: tool definitions and tool turns both come out, so the model's own
    convention can be used. ``string_arguments``: call arguments must be a JSON string.
    ``one_call_per_message``: only the first call of a message is rendered.
    ``tool_responses``: results ride on the assistant message (Gemma 4).
    ``call_text``: text beside a call stays as it was when later turns are added.
    ``user_after_tool``: a user message may follow a tool result.
    ``thinking_kwarg``: the template variable that turns reasoning on and off, if any.
    """

    renders_tools: bool = False
    string_arguments: bool = False
    one_call_per_message: bool = False
    tool_responses: bool = False
    call_text: bool = True
    user_after_tool: bool = True
    thinking_kwarg: str | None = None


NO_TOOLS = TemplateTraits()


def _call(name: str, value: str, call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": {"probe_key": value}}}


def _probe_tools() -> list[dict[str, Any]]:
    schema = {"type": "object", "properties": {"probe_key": {"type": "string", "description": "A value."}},
              "required": ["probe_key"]}
    return [{"type": "function", "function": {"name": PROBE_TOOL, "description": "A probe.", "parameters": schema}}]


def _opening() -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are a probe."}, {"role": "user", "content": "Probe, please."}]


def _tool(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "name": PROBE_TOOL, "content": content}


class _Prober:
    def __init__(self, render: Render):
        self.render = render
        self.tools = _probe_tools()

    def text(self, messages: list[dict[str, Any]], traits: TemplateTraits, **kwargs: Any) -> str | None:
        """The rendered text, or None when the template refuses the conversation."""
        try:
            shaped = shape(Chat(messages, tools=self.tools), traits)
            return self.render(shaped, tools=self.tools, add_generation_prompt=False, **kwargs)
        except Exception:  # a template's raise_exception, a TypeError from str + dict, …
            return None

    def renders_definitions(self) -> bool:
        try:
            with_tools = self.render(_opening(), tools=self.tools, add_generation_prompt=True)
            without = self.render(_opening(), tools=None, add_generation_prompt=True)
        except Exception:
            return False
        return PROBE_TOOL in with_tools and PROBE_TOOL not in without

    def history_shape(self) -> TemplateTraits | None:
        conversation = [
            *_opening(),
            {"role": "assistant", "content": "", "tool_calls": [_call(PROBE_TOOL, PROBE_VALUE, "probecall1")]},
            _tool("probecall1", PROBE_RESULT),
        ]
        for strings in (False, True):
            traits = TemplateTraits(renders_tools=True, string_arguments=strings)
            text = self.text(conversation, traits)
            if text is None or PROBE_VALUE not in text:
                continue
            if PROBE_RESULT in text and self.knows_tool_role(conversation, text, traits):
                return traits
            traits = replace(traits, tool_responses=True)
            text = self.text(conversation, traits)
            if text is not None and PROBE_RESULT in text:
                return traits
        return None

    def knows_tool_role(self, conversation: list[dict[str, Any]], text: str, traits: TemplateTraits) -> bool:
        """Whether ``role: "tool"`` means something to the template, unlike a role it has never heard of.

        A template without tool results (Gemma 4's takes them on the assistant message)
        writes a tool message as it writes any role, name and all.
        """
        stranger = "trimkit_probe_role"
        unknown = [*conversation[:-1], {**conversation[-1], "role": stranger}]
        other = self.text(unknown, traits)
        return other is None or other.replace(stranger, "tool") != text

    def one_call_per_message(self, traits: TemplateTraits) -> bool:
        conversation = [
            *_opening(),
            {"role": "assistant", "content": "", "tool_calls": [
                _call(PROBE_TOOL, PROBE_VALUE, "probecall1"), _call(PROBE_TOOL, PROBE_SECOND, "probecall2")]},
            _tool("probecall1", PROBE_RESULT),
            _tool("probecall2", PROBE_RESULT),
        ]
        text = self.text(conversation, traits)
        return text is None or PROBE_SECOND not in text

    def keeps_call_text(self, traits: TemplateTraits) -> bool:
        turn = [
            *_opening(),
            {"role": "assistant", "content": PROBE_NOTE, "tool_calls": [_call(PROBE_TOOL, PROBE_VALUE, "probecall1")]},
            _tool("probecall1", PROBE_RESULT),
        ]
        later = [*turn, {"role": "assistant", "content": "Done."}, {"role": "user", "content": "Thanks."}]
        first, second = self.text(turn, traits), self.text(later, traits)
        if first is None or second is None:
            return False
        return (PROBE_NOTE in first) == (PROBE_NOTE in second)

    def user_after_tool(self, traits: TemplateTraits) -> bool:
        conversation = [
            *_opening(),
            {"role": "assistant", "content": "", "tool_calls": [_call(PROBE_TOOL, PROBE_VALUE, "probecall1")]},
            _tool("probecall1", PROBE_RESULT),
            {"role": "user", "content": PROBE_AFTER},
        ]
        text = self.text(conversation, traits)
        return text is not None and PROBE_AFTER in text

    def thinking_kwarg(self) -> str | None:
        for name in ("enable_thinking", "thinking"):
            try:
                on = self.render(_opening(), tools=None, add_generation_prompt=True, **{name: True})
                off = self.render(_opening(), tools=None, add_generation_prompt=True, **{name: False})
            except Exception:
                continue
            if on != off:
                return name
        return None


def probe(render: Render) -> TemplateTraits:
    """Find out, by rendering small conversations, what shape of chat the template takes."""
    prober = _Prober(render)
    thinking = prober.thinking_kwarg()
    if not prober.renders_definitions():
        return replace(NO_TOOLS, thinking_kwarg=thinking)
    traits = prober.history_shape()
    if traits is None:  # definitions render but earlier calls or results cannot: teach XML instead
        return replace(NO_TOOLS, thinking_kwarg=thinking)
    traits = replace(traits, thinking_kwarg=thinking, one_call_per_message=prober.one_call_per_message(traits))
    return replace(traits, call_text=prober.keeps_call_text(traits), user_after_tool=prober.user_after_tool(traits))


# --------------------------------------------------------------------------- shaping


def _split_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One call per assistant message, each followed by its own result."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        calls = message.get("tool_calls") or []
        if message["role"] != "assistant" or len(calls) < 2:
            out.append(message)
            i += 1
            continue
        j = i + 1
        results: dict[str, dict[str, Any]] = {}
        leftovers: list[dict[str, Any]] = []
        while j < len(messages) and messages[j]["role"] == "tool":
            result = messages[j]
            if result.get("tool_call_id") in results or result.get("tool_call_id") not in {c["id"] for c in calls}:
                leftovers.append(result)
            else:
                results[result["tool_call_id"]] = result
            j += 1
        for n, call in enumerate(calls):
            out.append({**message, "content": message.get("content", "") if n == 0 else "", "tool_calls": [call]})
            if call["id"] in results:
                out.append(results[call["id"]])
        out += leftovers
        i = j
    return out


def _string_arguments(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        if message.get("tool_calls"):
            calls = [
                {**c, "function": {**c["function"],
                                   "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False)}}
                for c in message["tool_calls"]
            ]
            message = {**message, "tool_calls": calls}
        out.append(message)
    return out


def _tool_responses(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results as ``tool_responses`` on the assistant message that made the calls (Gemma 4).

    A text-only assistant message right after the results joins that message, so the
    answer reads on in the same model turn, where the model wrote it.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        previous = out[-1] if out else None
        if message["role"] == "tool" and previous is not None and previous["role"] == "assistant":
            response = {"name": message.get("name", "tool"), "response": message["content"]}
            out[-1] = {**previous, "tool_responses": [*previous.get("tool_responses", []), response]}
        elif (message["role"] == "assistant" and not message.get("tool_calls") and previous is not None
              and previous.get("tool_responses") and not previous.get("content")):
            out[-1] = {**previous, "content": message["content"]}
        else:
            out.append(message)
    return out


def _user_into_tool(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user message right after a tool result joins that result's text."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "user" and out and out[-1]["role"] == "tool":
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{message['content']}"}
        else:
            out.append(message)
    return out


def shape(chat: Chat, traits: TemplateTraits) -> list[dict[str, Any]]:
    """The chat's messages in the shape the template takes (see :class:`TemplateTraits`)."""
    messages = [dict(m) for m in chat]
    if not traits.renders_tools:
        return messages
    if not traits.call_text:
        messages = [{**m, "content": ""} if m.get("tool_calls") else m for m in messages]
    if traits.one_call_per_message:
        messages = _split_calls(messages)
    if traits.string_arguments:
        messages = _string_arguments(messages)
    if not traits.user_after_tool:
        messages = _user_into_tool(messages)
    if traits.tool_responses:
        messages = _tool_responses(messages)
    return messages


class ChatTemplate:
    """A model's chat template: renders a :class:`~trimkit.render.Chat` as the model reads it."""

    def __init__(self, render: Render, traits: TemplateTraits | None = None):
        self._render = render
        self.traits = traits if traits is not None else probe(render)

    def options(self, chat: Chat) -> dict[str, Any]:
        if chat.thinking is None or self.traits.thinking_kwarg is None:
            return {}
        return {self.traits.thinking_kwarg: chat.thinking}

    def text(self, chat: Chat, *, generation_prompt: bool = True) -> str:
        """The prompt: the chat with a generation prompt, or continuing a last assistant message.

        Raises :class:`~trimkit.errors.ConversationError` for a conversation the template
        cannot render: none left (every message empty once trimmed), or one its
        ``raise_exception`` refuses (roles that do not alternate, say).
        """
        messages = shape(chat, self.traits)
        tools = chat.tools if self.traits.renders_tools and chat.tools else None
        options: dict[str, Any] = {"add_generation_prompt": generation_prompt}
        last = messages[-1] if messages else None
        if generation_prompt and last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
            if last.get("content", "").strip():
                options = {"continue_final_message": True}
            else:
                messages = messages[:-1]
        if not messages:
            raise ConversationError("messages: nothing is left to send the model: every message is empty "
                                    "once rendered (an empty assistant turn alone, or only empty system text)")
        try:
            return self._render(messages, tools=tools, **options, **self.options(chat))
        except Exception as exc:  # jinja2's TemplateError from raise_exception, a ValueError, a TypeError
            raise ConversationError(f"messages: the model's chat template refused this conversation: {exc}") from None

    def generation_prompt(self, chat: Chat) -> str:
        """What the generation prompt adds after the last message (``<|im_start|>assistant\\n<think>\\n``)."""
        full = self.text(chat)
        bare = self.text(chat, generation_prompt=False)
        return full[len(bare):] if full.startswith(bare) else ""
