"""trimkit as a LiteLLM proxy guardrail: trims Anthropic ``/v1/messages`` requests, reads calls back.

LiteLLM's proxy changes a request before it is sent through a callback's
``async_pre_call_hook``; a *custom guardrail* is such a callback that the proxy
builds from its ``config.yaml`` with the options written there, which is how
LiteLLM's own prompt-compression integrations are configured. In ``config.yaml``::

    guardrails:
      - guardrail_name: trimkit
        litellm_params:
          guardrail: trimkit.integrations.litellm.TrimkitGuardrail
          mode: [pre_call, post_call]
          default_on: true
          models:                        # LiteLLM model names, as clients send them
            claude-sonnet-4-5: {model: Qwen3-Coder-30B-A3B-Instruct-4bit, context_window: 32768}
          stages: {}                     # optional: trimkit.toml's [stages] table

``models`` takes :class:`~trimkit.forward.ModelOptions` (``model``, ``tier``,
``context_window``, ``convention``, ``dialect``) per name or ``fnmatch`` pattern;
the whole configuration is checked when the proxy starts. See ``docs/litellm.md``.

On the way in (``pre_call``), a ``/v1/messages`` request for a configured model is
trimmed (:class:`~trimkit.forward.Forwarder`) and its Anthropic fields replaced by
the trimmed request's; LiteLLM's own keys are left alone, and the report's sizes
go into ``litellm_metadata["trimkit"]``, where LiteLLM's logging sees them. A
request that does not fit even trimmed is refused with a 400 in the API's
wording; one trimkit cannot read goes on as it came, for LiteLLM to answer.

On the way back (``post_call``), the answer's text is read for tool calls
(:mod:`trimkit.toolcalls.messages`), streaming or not: with the ``xml``
convention the upstream was given no tools, and its model writes its calls as
markup, which become ``tool_use`` blocks with the client's names and typed
arguments. Requests of other kinds (``/chat/completions``, embeddings, …) are not
touched.

Install with ``pip install 'trimkit[litellm]'``: this module imports LiteLLM.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, AsyncIterator, Mapping

from fastapi import HTTPException
from litellm.integrations.custom_guardrail import CustomGuardrail

from ..errors import ConfigError, PromptTooLong, RequestDecodeError
from ..forward import REQUEST_FIELDS, Forwarded, Forwarder, ModelOptions
from ..toolcalls.dialects import Dialect, dialect_named
from ..toolcalls.messages import MessageStreamReader, read_message

log = logging.getLogger("trimkit.integrations")

CALL_TYPES = frozenset({"anthropic_messages"})
KEPT_FIELDS = frozenset({"model", "stream", "metadata"})
"""Request fields LiteLLM routes and accounts by: the client's, never replaced."""
PENDING_LIMIT = 4096
"""Trims remembered for the way back; older ones are forgotten (a request whose answer never came)."""


class TrimkitGuardrail(CustomGuardrail):
    """The guardrail LiteLLM builds from ``config.yaml``; see the module docstring.

    ``models`` and ``stages`` are :class:`~trimkit.forward.Forwarder`'s; every other
    keyword is LiteLLM's (``guardrail_name``, ``event_hook``, ``default_on``).
    """

    def __init__(self, models: Mapping[str, ModelOptions | Mapping[str, Any]] | None = None,
                 stages: Mapping[str, Any] | None = None, **kwargs: Any):
        self.forwarder = Forwarder(models or {}, stages=stages)
        self.dialects: dict[str, Dialect] = {}
        for name, options in self.forwarder.models.items():
            try:
                self.dialects[name] = dialect_named(options.dialect)
            except KeyError as exc:
                raise ConfigError(f"models.{name}.dialect: {exc.args[0]}", key=f"models.{name}.dialect") from None
        self._pending: OrderedDict[str, Forwarded] = OrderedDict()
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ the way in

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: str) -> dict:
        if call_type not in CALL_TYPES:
            return data
        try:
            forwarded = self.forwarder.trim({key: data[key] for key in REQUEST_FIELDS if key in data})
        except PromptTooLong as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        except (RequestDecodeError, RecursionError):
            return data
        if forwarded is None:
            return data
        for key in REQUEST_FIELDS - KEPT_FIELDS:
            if key in forwarded.body:
                data[key] = forwarded.body[key]
            else:
                data.pop(key, None)
        report = forwarded.result.report
        metadata = data.get("litellm_metadata")
        if isinstance(metadata, dict):
            metadata["trimkit"] = {"chars_before": report.before.chars, "chars_after": report.after.chars,
                                   "tokens_before": report.before.tokens, "tokens_after": report.after.tokens,
                                   "tier": report.tier, "ms": round(report.ms, 3)}
        log.info("trimmed a request for %s: %s", data.get("model"), report.summary())
        call = data.get("litellm_call_id")
        if call:
            self._pending[call] = forwarded
            while len(self._pending) > PENDING_LIMIT:
                self._pending.popitem(last=False)
        return data

    # ------------------------------------------------------------------ the way back

    def _reading(self, data: Mapping[str, Any]) -> Forwarded | None:
        return self._pending.pop(data.get("litellm_call_id") or "", None)

    def _dialect(self, forwarded: Forwarded) -> Dialect:
        found = self.forwarder.options_for(forwarded.result.original.model)
        return self.dialects[found[0]] if found else dialect_named(forwarded.options.dialect)

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
        forwarded = self._reading(data)
        if forwarded is None or not isinstance(response, dict):
            return response
        return read_message(response, forwarded.tools, dialect=self._dialect(forwarded), thinking=forwarded.thinking)

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict: Any, response: Any,
                                                      request_data: dict) -> AsyncIterator[Any]:
        forwarded = self._reading(request_data)
        if forwarded is None:
            async for chunk in response:
                yield chunk
            return
        reader = MessageStreamReader(forwarded.tools, dialect=self._dialect(forwarded), thinking=forwarded.thinking)
        async for chunk in response:
            if isinstance(chunk, (bytes, bytearray)):
                out = reader.feed_sse(bytes(chunk))
            elif isinstance(chunk, str):
                out = reader.feed_sse(chunk.encode())
            elif isinstance(chunk, dict):
                for event in reader.feed(chunk):
                    yield event
                continue
            else:
                yield chunk
                continue
            if out:
                yield out
        tail = reader.close_sse()
        if tail:
            yield tail

    async def async_post_call_failure_hook(self, request_data: dict, original_exception: Exception,
                                           user_api_key_dict: Any, *args: Any, **kwargs: Any) -> None:
        self._reading(request_data)
