"""Trimming for a proxy that is not trimkit's server: which requests, and the shape to send on.

A proxy in front of a local model (LiteLLM, a Starlette or FastAPI app of one's own)
has the client's Anthropic Messages request in one hand and its upstream in the
other. It does not render prompts or run a model; it sends a request on. So what it
needs from trimkit is the trimmed request *as a request*:

* :func:`anthropic_body` gives the trimmed request as an Anthropic Messages body, a
  plain dict, ready for any proxy that speaks that API or translates it;
* :func:`openai_chat` gives the same request as OpenAI chat-completion fields
  (``messages``, and ``tools`` in the native convention) for a proxy that speaks to
  an OpenAI-compatible engine itself;
* :class:`Forwarder` holds the configuration (which models' requests to trim, with
  what tier, window and tool convention, and the ``[stages]`` table) and does both
  steps for one body: :meth:`Forwarder.trim` returns a :class:`Forwarded` (the body
  to send, the :class:`~trimkit.stage.TrimResult` with its report, and what reading
  the answer back needs).

Two tool conventions, as the server's ``convention`` setting:

``xml``
    the tools are taught in the system prompt as trimkit's XML and the earlier tool
    turns are written the same way, as text; the body carries no ``tools``. Any
    upstream can run it, including an engine that knows nothing of tools, and the
    model's calls come back as markup in its text, which
    :mod:`trimkit.toolcalls.messages` turns into ``tool_use`` blocks.
``native``
    the tools the tools stage keeps stay in ``tools``, compacted, and tool turns stay
    ``tool_use`` / ``tool_result`` blocks: for an upstream that handles tool calls
    itself (a real Anthropic endpoint, vLLM with a tool parser).

Imports no web framework, no HTTP client and no model runtime.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Mapping

import msgspec

from .errors import ConfigError
from .pipeline import Pipeline
from .profile import ModelProfile, Tier
from .render import chat_messages, native_chat, thinking_setting
from .stage import TrimResult
from .wire import MessagesRequest, Tool, decode_request, to_builtins

Convention = Literal["xml", "native"]

REQUEST_FIELDS = frozenset(field.name for field in msgspec.structs.fields(MessagesRequest))
"""The top-level fields of a Messages request that trimkit models; the trimmed request decides these."""

REPLACED_IN_XML = frozenset({"system", "messages", "tools", "tool_choice"})
"""What the ``xml`` convention rewrites as text: the system prompt and conversation, without tool fields."""


class ModelOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the requests for one model are trimmed.

    ``model`` is the name of the model that really answers (such as
    ``Qwen3-Coder-30B-A3B-Instruct-4bit``): its size tier, active parameters and
    prefill speed are guessed from it (:meth:`ModelProfile.from_name`). ``tier`` and
    ``context_window`` override the guesses; without either, a medium tier and a
    32,768-token window are assumed. ``convention`` is how tools reach the model (see
    the module docstring); ``dialect`` is the format its calls come back in, for
    reading them (``xml``, trimkit's own, or a family's: ``qwen3_coder``, ``hermes``,
    … from :mod:`trimkit.toolcalls.dialects`).
    """

    model: str | None = None
    tier: Tier | None = None
    context_window: Annotated[int, msgspec.Meta(ge=1)] | None = None
    convention: Convention = "xml"
    dialect: str = "xml"

    def profile(self) -> ModelProfile:
        """The model profile the trim works with."""
        profile = ModelProfile.from_name(self.model) if self.model else ModelProfile()
        if self.tier:
            profile = replace(profile, tier=self.tier)
        if self.context_window:
            profile = replace(profile, context_window=self.context_window)
        return replace(profile, native_tools=self.convention == "native")


@dataclass
class Forwarded:
    """One trimmed request, ready to send on.

    ``body`` is the Anthropic Messages request to send (a new dict); ``result`` the
    trim, whose ``report`` says what was taken out (``result.report.summary()`` for a
    log line); ``options`` the model's options. Reading the answer back needs the
    client's own ``tools`` (calls are checked and typed against them) and whether
    the client asked for ``thinking``.
    """

    body: dict[str, Any]
    result: TrimResult
    options: ModelOptions

    @property
    def tools(self) -> list[Tool] | None:
        return self.result.original.tools

    @property
    def thinking(self) -> bool:
        return bool(thinking_setting(self.result.original))


def anthropic_body(result: TrimResult, original: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The trimmed request as an Anthropic Messages body.

    In the ``xml`` convention (``result.profile.native_tools`` false) the system prompt
    and conversation are written as :func:`~trimkit.render.chat_messages` writes them
    for a chat template: one system string, then turns of plain text whose earlier
    calls and results are trimkit's XML, so the model reads its own calls the way it
    was taught to make them; images and documents read as ``[image]``,
    ``[document]``. In the ``native`` convention the trimmed request is given as it
    is, blocks and compacted ``tools`` included.

    ``original`` is the body the client sent: its top-level fields that trimkit does
    not model (a proxy's or a newer API's) are carried over unchanged. Fields trimkit
    models are the trimmed request's, and absent when it dropped them.
    """
    body = to_builtins(result.request)
    if not result.profile.native_tools:
        body = {key: value for key, value in body.items() if key not in REPLACED_IN_XML}
        chat = chat_messages(result.request)
        if chat and chat[0]["role"] == "system":
            body["system"] = chat[0]["content"]
            chat = chat[1:]
        body["messages"] = [{"role": m["role"], "content": m["content"]} for m in chat]
    if original:
        carried = {key: value for key, value in original.items() if key not in REQUEST_FIELDS}
        body = {**carried, **body}
    return body


def openai_chat(result: TrimResult) -> dict[str, Any]:
    """The trimmed request as OpenAI chat-completion fields: ``messages``, and ``tools`` when native.

    ``xml``: role/content pairs with tool turns in trimkit's XML
    (:func:`~trimkit.render.chat_messages`); ``native``: assistant ``tool_calls`` and
    ``role: "tool"`` results (:func:`~trimkit.render.native_chat`), with arguments as
    JSON text as the OpenAI API has them, and the tools as functions. ``max_tokens``,
    ``stop``, ``temperature`` and ``top_p`` follow the request when it sets them.
    """
    request = result.request
    if result.profile.native_tools:
        chat = native_chat(request)
        messages = [_openai_message(m) for m in chat]
    else:
        chat = chat_messages(request)
        messages = [dict(m) for m in chat]
    fields: dict[str, Any] = {"messages": messages}
    if chat.tools:
        fields["tools"] = chat.tools
    for name, value in (("max_tokens", request.max_tokens), ("stop", request.stop_sequences),
                        ("temperature", request.temperature), ("top_p", request.top_p)):
        if value is not None:
            fields[name] = value
    return fields


def _openai_message(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls")
    if not calls:
        return dict(message)
    return {**message, "tool_calls": [
        {**call, "function": {**call["function"],
                              "arguments": msgspec.json.encode(call["function"]["arguments"]).decode()}}
        for call in calls
    ]}


class Forwarder:
    """Trims Anthropic Messages bodies for the models it is configured for.

    ``models`` maps a model name, as clients send it in ``model``, to its
    :class:`ModelOptions` (or a mapping of them). A name may be a pattern
    (``claude-*``, as :mod:`fnmatch` reads it); an exact name wins over a pattern, and
    patterns are tried in the order given. A request for a model that matches no
    name is not trimmed. ``stages`` is the ``[stages]`` table of ``trimkit.toml``
    (order, disabled stages, each stage's options); ``pipeline`` replaces the one
    built from it. Everything is checked here: a bad value is a
    :class:`~trimkit.errors.ConfigError` naming its key.
    """

    def __init__(
        self,
        models: Mapping[str, ModelOptions | Mapping[str, Any]],
        *,
        stages: Mapping[str, Any] | None = None,
        pipeline: Pipeline | None = None,
    ):
        if not isinstance(models, Mapping):
            raise ConfigError("models must be a table of model names", key="models")
        self.models = {str(name): _options(name, options) for name, options in models.items()}
        self.pipeline = pipeline or Pipeline(stages or {})
        self._profiles = {name: options.profile() for name, options in self.models.items()}

    def options_for(self, model: str) -> tuple[str, ModelOptions] | None:
        """The configured name ``model`` matches, and its options; None when it matches none."""
        if model in self.models:
            return model, self.models[model]
        for name, options in self.models.items():
            if fnmatch.fnmatchcase(model, name):
                return name, options
        return None

    def trim(self, body: Mapping[str, Any] | bytes | str) -> Forwarded | None:
        """Trim one request body; None when its model is not configured here.

        Raises :class:`~trimkit.errors.RequestDecodeError` for a body that is not a
        Messages request and :class:`~trimkit.errors.PromptTooLong` for one that does
        not fit the model's window even trimmed.
        """
        if isinstance(body, Mapping):
            fields = {key: value for key, value in body.items() if key in REQUEST_FIELDS}
            request = decode_request(fields)
            original: Mapping[str, Any] | None = body
        else:
            request = decode_request(body)
            original = None
        found = self.options_for(request.model)
        if found is None:
            return None
        name, options = found
        result = self.pipeline.trim(request, self._profiles[name])
        return Forwarded(anthropic_body(result, original), result, options)


def _options(name: Any, options: Any) -> ModelOptions:
    if isinstance(options, ModelOptions):
        return options
    try:
        return msgspec.convert(options if options is not None else {}, ModelOptions)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"models.{name}: {exc}", key=f"models.{name}") from None
