"""The Anthropic Messages wire format as msgspec Structs, in one place.

Decoding accepts what the real API accepts and refuses what it refuses:
unknown top-level fields are ignored; a content block of a type the API knows
(:data:`API_BLOCK_TYPES`, beta types included) but this module does not model is
kept as an :class:`UnknownBlock` holding the original object, so it round-trips
unchanged, while a type the API does not know is an error; values must have their
JSON types (``"max_tokens": "5"`` is refused, as the API does). Use
:func:`decode_request` and :func:`to_builtins` rather than calling msgspec
directly: they handle that unknown-block wrapping.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Struct, field

from .errors import RequestDecodeError

JSON = Any


class Base(Struct, omit_defaults=True, kw_only=True):
    """Common settings: omit unset optional fields when encoding."""


# --------------------------------------------------------------------------- blocks


class TextBlock(Base, tag="text"):
    text: str
    cache_control: JSON | None = None
    citations: JSON | None = None


class ImageBlock(Base, tag="image"):
    source: dict[str, JSON]
    cache_control: JSON | None = None


class DocumentBlock(Base, tag="document"):
    source: dict[str, JSON]
    title: str | None = None
    context: str | None = None
    citations: JSON | None = None
    cache_control: JSON | None = None


class ToolUseBlock(Base, tag="tool_use"):
    id: str
    name: str
    input: JSON = field(default_factory=dict)
    cache_control: JSON | None = None


class ToolResultBlock(Base, tag="tool_result"):
    tool_use_id: str
    content: Union[str, list["Block"], None] = None
    is_error: bool | None = None
    cache_control: JSON | None = None


class ThinkingBlock(Base, tag="thinking"):
    thinking: str
    signature: str | None = None
    cache_control: JSON | None = None


class RedactedThinkingBlock(Base, tag="redacted_thinking"):
    data: str
    cache_control: JSON | None = None


class UnknownBlock(Base, tag="__unknown__"):
    """A block whose ``type`` this module does not model; ``data`` is the original object."""

    data: dict[str, JSON]

    @property
    def block_type(self) -> str:
        return str(self.data.get("type", ""))


Block = Union[
    TextBlock,
    ImageBlock,
    DocumentBlock,
    ToolUseBlock,
    ToolResultBlock,
    ThinkingBlock,
    RedactedThinkingBlock,
    UnknownBlock,
]

KNOWN_BLOCK_TYPES = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)
API_BLOCK_TYPES = KNOWN_BLOCK_TYPES | frozenset({
    "search_result", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
    "code_execution_tool_result", "bash_code_execution_tool_result", "text_editor_code_execution_tool_result",
    "tool_search_tool_result", "container_upload", "advisor_tool_result", "mcp_tool_use", "mcp_tool_result",
    "mcp_tool_listing", "compaction", "tool_addition", "tool_removal", "fallback", "tool_reference",
})
"""Every content block type the Messages API takes in a request, its beta types included (as
the ``anthropic`` SDK 2.14 lists them; ``tests/test_validation.py`` compares with the installed SDK)."""

# --------------------------------------------------------------------------- request


class Message(Base):
    role: Literal["user", "assistant", "system"]
    content: Union[str, list[Block]]


class Tool(Base):
    name: Annotated[str, Meta(min_length=1)]
    description: str | None = None
    input_schema: dict[str, JSON] = field(default_factory=dict)
    type: str | None = None
    cache_control: JSON | None = None


class ToolChoice(Base):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(Base):
    type: str
    budget_tokens: int | None = None


class MessagesRequest(Base):
    """A Messages request; ``max_tokens`` is optional here because count_tokens omits it."""

    model: Annotated[str, Meta(min_length=1)]
    messages: list[Message]
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    system: Union[str, list[TextBlock], None] = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    thinking: ThinkingConfig | None = None
    metadata: dict[str, JSON] | None = None
    context_management: JSON | None = None
    output_config: JSON | None = None
    service_tier: str | None = None
    container: JSON | None = None
    mcp_servers: JSON | None = None


# --------------------------------------------------------------------------- response


class Usage(Struct, kw_only=True):
    """Token usage; every field is always encoded, as the API does."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = 0
    cache_read_input_tokens: int | None = 0


StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class MessagesResponse(Struct, kw_only=True):
    """A non-streaming response; every field is always encoded, as the API does."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[Block]
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)


class ErrorDetail(Struct):
    type: str
    message: str


class ErrorResponse(Struct):
    error: ErrorDetail
    type: Literal["error"] = "error"


# --------------------------------------------------------------------------- trimkit's own endpoints


class Health(Struct, kw_only=True):
    """``GET /health``: whether the model can serve (503 until it can), and the window it serves.

    ``status`` is ``ok``, ``loading`` (not yet: loading, or an upstream not
    answering for now) or ``error`` (never, without a change of configuration);
    ``detail`` says why in words. ``trimkit launch`` and ``trimkit doctor`` read
    this, and treat a server without ``status`` and ``context_window`` as another
    program. ``convention`` says how tools reach the model (``native``: through its
    chat template; ``xml``: taught by trimkit) and ``tool_format`` how its calls are
    read back (a dialect of :mod:`trimkit.toolcalls.dialects`).
    """

    status: Literal["ok", "loading", "error"]
    backend: str = ""
    model: str = ""
    detail: str = ""
    queue: int = 0
    tier: str = ""
    context_window: int
    prefill_tps: float = 0.0
    convention: str = ""
    tool_format: str = ""
    upstreams: list["UpstreamHealth"] = []  # several engines behind one trimkit: each one's state
    models: list["ModelHealth"] = []  # each model the server offers
    memory: "MemoryHealth | None" = None  # the memory cap of a server of several models


class ModelHealth(Struct, kw_only=True):
    """One model of the server: in memory or not, its window, and what it has done since the start.

    ``state`` is ``loaded``, ``not_loaded``, ``loading``, ``unloading`` or ``failed``
    (``detail`` says why); ``users`` are the requests queued for it or generating;
    ``memory_bytes`` what it counts against the memory cap (its weights in memory, for
    the one-model server).
    """

    name: str
    state: str
    pinned: bool = False
    families: list[str] = []
    context_window: int = 0
    users: int = 0
    requests: int = 0
    loads: int = 0
    unloads: int = 0
    memory_bytes: int = 0
    detail: str = ""


class MemoryHealth(Struct, kw_only=True):
    """The memory cap of a server of several models and what is under it, in bytes.

    ``reserved`` is what the models in memory count against ``cap``; ``mlx_active``
    what MLX holds now in this process (``mlx.core.get_active_memory``), of which
    ``mlx_baseline`` was held before any model loaded.
    """

    cap: int
    reserved: int
    mlx_active: int | None = None
    mlx_baseline: int = 0
    loaded: list[str] = []


class UpstreamHealth(Struct, kw_only=True):
    """One engine of a pool (the ``upstreams`` setting): in service or not, and its requests in flight."""

    upstream: str
    ready: bool
    outstanding: int = 0
    detail: str = ""


# --------------------------------------------------------------------------- helpers


NESTED_TOO_DEEPLY = "request body is nested too deeply"


def _wrap_unknown(blocks: list[Any], where: str) -> list[Any]:
    out = []
    for j, block in enumerate(blocks):
        if isinstance(block, dict):
            kind = block.get("type")
            if kind == "tool_result" and isinstance(block.get("content"), list):
                block = {**block, "content": _wrap_unknown(block["content"], f"{where}.{j}.content")}
            elif isinstance(kind, str) and kind not in KNOWN_BLOCK_TYPES:
                if kind not in API_BLOCK_TYPES:
                    raise RequestDecodeError(f"{where}.{j}.type: unknown content block type {kind!r}")
                block = {"type": "__unknown__", "data": block}
        out.append(block)
    return out


def _prepare(raw: dict[str, Any]) -> dict[str, Any]:
    messages = raw.get("messages")
    if isinstance(messages, list):
        fixed = []
        for i, msg in enumerate(messages):
            if isinstance(msg, dict) and isinstance(msg.get("content"), list):
                msg = {**msg, "content": _wrap_unknown(msg["content"], f"messages.{i}.content")}
            fixed.append(msg)
        raw = {**raw, "messages": fixed}
    return raw


def decode_request(data: bytes | str | dict[str, Any] | MessagesRequest) -> MessagesRequest:
    """Decode JSON bytes, a JSON string or a plain dict into a :class:`MessagesRequest`."""
    try:
        return _decode_request(data)
    except RecursionError:  # msgspec and _prepare recurse once per nesting level
        raise RequestDecodeError(NESTED_TOO_DEEPLY) from None


def _decode_request(data: bytes | str | dict[str, Any] | MessagesRequest) -> MessagesRequest:
    if isinstance(data, MessagesRequest):
        return data
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        try:
            return _typed_decoder.decode(data)
        except msgspec.ValidationError:
            pass  # unknown block types, or a real problem: the general path below tells which
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise RequestDecodeError(f"invalid JSON body: {exc}") from None
        try:
            data = msgspec.json.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise RequestDecodeError(f"invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise RequestDecodeError("request body must be a JSON object")
    try:
        return msgspec.convert(_prepare(data), MessagesRequest)
    except msgspec.ValidationError as exc:
        raise RequestDecodeError(str(exc)) from None


_typed_decoder = msgspec.json.Decoder(MessagesRequest)


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, dict):
        if obj.get("type") == "__unknown__" and "data" in obj:
            return obj["data"]
        if obj.get("type") == "tool_use" and "input" not in obj:
            obj = {**obj, "input": {}}  # required by the API even when empty, which omit_defaults drops
        return {k: _unwrap(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unwrap(v) for v in obj]
    return obj


def to_builtins(obj: Any) -> Any:
    """Plain JSON-ready data for a Struct, with unknown blocks restored to their original form.

    A ``tool_use`` block always carries ``input``, ``{}`` for a tool without arguments.
    """
    return _unwrap(msgspec.to_builtins(obj))


def encode(obj: Any) -> bytes:
    """JSON bytes for a Struct, with unknown blocks restored to their original form."""
    return msgspec.json.encode(to_builtins(obj))


def message_blocks(message: Message) -> list[Block]:
    """The message's content as a list of blocks (a bare string becomes one text block)."""
    if isinstance(message.content, str):
        return [TextBlock(text=message.content)]
    return message.content


def system_text(request: MessagesRequest) -> str:
    """The system prompt as one string (blocks joined with blank lines)."""
    if request.system is None:
        return ""
    if isinstance(request.system, str):
        return request.system
    return "\n\n".join(b.text for b in request.system)


def output_schema(request: MessagesRequest) -> dict[str, JSON] | None:
    """The JSON schema the client wants the text to match (``output_config.format``), if any.

    Claude Code's title request sends ``{"type": "json_schema", "schema": {...}}``.
    """
    config = request.output_config
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return fmt["schema"]
    return None


def block_text(block: Block) -> str:
    """The text a model would read from a block; empty for blocks with no text."""
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, ToolResultBlock):
        if isinstance(block.content, str):
            return block.content
        if block.content:
            return "\n".join(block_text(b) for b in block.content)
        return ""
    if isinstance(block, ThinkingBlock):
        return block.thinking
    if isinstance(block, ToolUseBlock):
        return msgspec.json.encode(block.input).decode()
    return ""
