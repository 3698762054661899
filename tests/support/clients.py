"""The official ``anthropic`` SDK as a test's client: strict, without retries, with a timeout.

``max_retries=0`` makes a failure show at once instead of after the SDK's back-off;
``_strict_response_validation=True`` makes the SDK reject any response that is not
exactly the API's shape; the explicit timeout bounds a hang (the SDK's default for a
large ``max_tokens`` is ten minutes).
"""

from __future__ import annotations

from typing import Any

import anthropic

CLIENT_KEY = "client-key"  # a key of the client's, which trimkit must not forward upstream
TIMEOUT = 60.0


def sdk(url: str, api_key: str | None = CLIENT_KEY, *, timeout: float = TIMEOUT, **options: Any) -> anthropic.Anthropic:
    """A strict synchronous client of the server at ``url``; ``auth_token=`` and the like go in ``options``."""
    return anthropic.Anthropic(base_url=url, api_key=api_key, max_retries=0, timeout=timeout,
                               _strict_response_validation=True, **options)


def async_sdk(url: str, api_key: str | None = CLIENT_KEY, *, timeout: float = TIMEOUT,
              **options: Any) -> anthropic.AsyncAnthropic:
    """The asynchronous twin of :func:`sdk`."""
    return anthropic.AsyncAnthropic(base_url=url, api_key=api_key, max_retries=0, timeout=timeout,
                                    _strict_response_validation=True, **options)


def created_and_streamed(client: anthropic.Anthropic, **request: Any) -> tuple[Any, Any]:
    """The same request made with ``create`` and with ``stream``: both final messages, to compare."""
    created = client.messages.create(**request)
    with client.messages.stream(**request) as stream:
        streamed = stream.get_final_message()
    return created, streamed
