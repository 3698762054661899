"""trimkit inside other proxies.

* :mod:`trimkit.integrations.asgi`: ASGI middleware that trims ``/v1/messages``
  bodies before a Starlette, FastAPI or Litestar proxy sees them;
* :mod:`trimkit.integrations.litellm`: a LiteLLM proxy guardrail that trims
  Anthropic requests and reads tool calls written as text back into ``tool_use``
  blocks (needs ``pip install 'trimkit[litellm]'``).

Both are thin: the work is the library's (:mod:`trimkit.forward` on the way in,
:mod:`trimkit.toolcalls.messages` on the way back). Neither is imported here, so
importing this package loads neither LiteLLM nor anything else.
"""
