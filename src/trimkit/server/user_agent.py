"""Which client sent a request, from its ``User-Agent``, in words for the live view.

Known agents get their own name (``claude-cli/2.1.197 (external, sdk-cli)`` is
"Claude Code 2.1.197"); anything else shows its first product token, cut short, so
a strange header cannot fill the page.
"""

from __future__ import annotations

import re

FAMILIES = (
    ("claude-cli", "Claude Code"),
    ("opencode", "OpenCode"),
    ("anthropic/python", "anthropic SDK (Python)"),
    ("anthropic/js", "anthropic SDK (JS)"),
    ("anthropic-typescript", "anthropic SDK (JS)"),
    ("litellm", "LiteLLM"),
    ("python-httpx", "httpx"),
    ("python-requests", "requests"),
    ("python-urllib", "urllib"),
    ("curl", "curl"),
)
_PRODUCT = re.compile(r"([A-Za-z][A-Za-z0-9._-]{0,31})(?:/([0-9][A-Za-z0-9.+_-]{0,23}))?")
_VERSION_AFTER = re.compile(r"^[/ ]?([0-9][A-Za-z0-9.+_-]{0,23})")


def client_family(user_agent: str | None) -> str:
    """"Claude Code 2.1.197", "anthropic SDK (Python) 2.14.0", "curl 8.5.0", or the first product; "" if none."""
    if not user_agent:
        return ""
    lowered = user_agent.lower()
    for prefix, name in FAMILIES:
        at = lowered.find(prefix)
        if at != -1:
            version = _VERSION_AFTER.match(user_agent[at + len(prefix):])
            return f"{name} {version.group(1)}" if version else name
    product = _PRODUCT.match(user_agent.strip())
    if product is None:
        return "other"
    return f"{product.group(1)} {product.group(2)}" if product.group(2) else product.group(1)
