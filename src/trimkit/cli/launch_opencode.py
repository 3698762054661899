"""``trimkit launch opencode``: OpenCode on a local model, in one command.

The server side is ``trimkit launch claude``'s (:func:`~.launch.running_server`: the
running trimkit server, or a child ``trimkit serve`` stopped again afterwards). OpenCode
gets its configuration (:func:`trimkit.client_settings.opencode_config`) in
``OPENCODE_CONFIG_CONTENT``, which it merges over the user's own ``opencode.json``
files, so everything else they set stays, and runs with nothing reaching the internet:
OpenCode 1.18 then needs no connection but the server (measured in a loopback-only
network namespace; see docs/launch.md).

``--print-config`` prints the same configuration as an ``opencode.json`` instead.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from ..client_settings import OPENCODE_OFFLINE, opencode_config
from ..config import Config
from .launch import DEFAULT_WAIT, Served, client_environment, configured_server, find_client, run_client, running_server

OPENCODE_BIN_ENV = "TRIMKIT_OPENCODE_BIN"
INSTALL_OPENCODE = "npm install -g opencode-ai"


def launched_config(served: Served) -> dict[str, Any]:
    return opencode_config(served.url, served.token, served.model_id, served.window, served.max_output)


def opencode_env(served: Served) -> dict[str, str]:
    """The environment OpenCode runs with: the configuration, and nothing reaching out."""
    return {"OPENCODE_CONFIG_CONTENT": json.dumps(launched_config(served)), **OPENCODE_OFFLINE}


def find_opencode() -> str:
    return find_client("OpenCode", "opencode", OPENCODE_BIN_ENV, INSTALL_OPENCODE)


def print_config(config: Config, out: TextIO) -> int:
    """The configuration as an ``opencode.json`` on ``out`` (what it points at on stderr)."""
    served, about = configured_server(config)
    print(json.dumps(launched_config(served), indent=2), file=out)
    print(f"trimkit: OpenCode on {about}; save this as opencode.json, or in ~/.config/opencode/", file=sys.stderr)
    return 0


def launch_opencode(config: Config, opencode_args: list[str], *, wait: float = DEFAULT_WAIT) -> int:
    opencode = find_opencode()
    with running_server(config, wait) as served:
        return run_client([opencode, *opencode_args], client_environment(opencode_env(served)))
