"""What points a client at a trimkit server, for the clients configured by a file.

OpenCode reads its configuration (an ``opencode.json``, or the same JSON in
``OPENCODE_CONFIG_CONTENT``): the ``anthropic`` provider's ``baseURL`` and ``apiKey``,
the served model declared under that provider with its context window and output
allowance (``limit``, which OpenCode compacts by), as ``model`` and as ``small_model``
(the one it asks for titles). OpenCode picks its system prompt by the model's name, so
the served name is used as it is. ``OPENCODE_OFFLINE`` turns off what would reach the
internet: update checks, models.dev's list, sharing and language-server downloads.

Used by ``trimkit launch opencode`` and by the recorder, which runs OpenCode the way
``launch`` does.
"""

from __future__ import annotations

from typing import Any

OPENCODE_SCHEMA = "https://opencode.ai/config.json"
OPENCODE_OFFLINE = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
}


def opencode_config(url: str, token: str, model_id: str, window: int, max_output: int) -> dict[str, Any]:
    """OpenCode's configuration for the trimkit server at ``url`` serving ``model_id``."""
    model = f"anthropic/{model_id}"
    return {
        "$schema": OPENCODE_SCHEMA,
        "provider": {
            "anthropic": {
                "options": {"baseURL": f"{url}/v1", "apiKey": token},
                "models": {model_id: {"name": f"{model_id} (trimkit)",
                                      "limit": {"context": window, "output": max_output}}},
            }
        },
        "model": model,
        "small_model": model,
        "autoupdate": False,
        "share": "disabled",
    }
