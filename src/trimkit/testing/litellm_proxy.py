"""A real LiteLLM proxy on 127.0.0.1, with trimkit's guardrail in its config, for tests and benchmarks.

LiteLLM's proxy (``litellm[proxy]``) pins hundreds of packages that must never meet
the project's, so it lives in a virtual environment of its own, made once under the
cache directory (``$XDG_CACHE_HOME/trimkit-tests/litellm-<version>``, or
``~/.cache/trimkit-tests/…``; ``TRIMKIT_LITELLM_CACHE`` overrides), about two
minutes and 750 MB the first time. trimkit goes into it as a wheel built from this
checkout, without its dependencies (the guardrail needs the library only: msgspec,
pluggy and jinja2, installed with LiteLLM); :func:`install_trimkit` does that once
per test run, so the proxy always runs the code under test, never a stale copy.

The version is pinned: the newest ``litellm`` whose ``[proxy]`` extra installs
from PyPI as this machine sees it (1.109 and later require ``litellm-proxy-extras``
and ``litellm-enterprise`` releases it does not have).

:func:`start_litellm` writes a ``config.yaml`` (from :func:`proxy_config`, or
YAML text such as the one in ``docs/litellm.md``), starts ``litellm`` in its own
process group on a free port, offline (``LITELLM_LOCAL_MODEL_COST_MAP``: no price
list fetched), with a master key, and waits for ``/health/liveliness``.
:func:`trimkit_guardrail` is the ``guardrails:`` entry that loads trimkit.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .engines import EngineUnavailable, _pip_download, _run, cached_build, stop_process_group
from .servers import free_port

LITELLM_VERSION = "1.108.7"
START_TIMEOUT = 180


def litellm_dir() -> Path:
    explicit = os.environ.get("TRIMKIT_LITELLM_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trimkit-tests" / f"litellm-{LITELLM_VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"


def install_litellm() -> Path:
    """The Python of the cached LiteLLM environment, made on first use."""

    def build(tmp: Path) -> None:
        log = tmp / "build.log"
        _pip_download([f"litellm=={LITELLM_VERSION}"], tmp / "probe", "reaching PyPI for litellm", log)
        _run([sys.executable, "-m", "venv", str(tmp / "venv")], "creating LiteLLM's virtual environment", log=log)
        python = str(tmp / "venv" / "bin" / "python")
        _run([python, "-m", "pip", "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}",
              "msgspec>=0.19", "pluggy>=1.5", "jinja2>=3.1"], "installing litellm[proxy]", log=log)

    return cached_build(litellm_dir(), build) / "venv" / "bin" / "python"


def install_trimkit(python: str | Path, root: Path) -> None:
    """Build a wheel of the checkout at ``root`` and install it into ``python``'s environment, without dependencies.

    The caller names its checkout: an installed trimkit (CI installs it, not in place)
    cannot tell where the source tree it came from lies.
    """
    if not (root / "pyproject.toml").is_file():
        raise EngineUnavailable(f"no trimkit checkout at {root} to install into LiteLLM's environment")
    with tempfile.TemporaryDirectory(prefix="trimkit-wheel-") as out:
        _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, str(root)],
             "building trimkit's wheel")
        (wheel,) = Path(out).glob("trimkit-*.whl")
        _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel)],
             "installing trimkit into LiteLLM's environment")


def trimkit_guardrail(models: Mapping[str, Any], *, stages: Mapping[str, Any] | None = None,
                      name: str = "trimkit") -> dict[str, Any]:
    """The ``guardrails:`` entry of a LiteLLM ``config.yaml`` that loads trimkit (docs/litellm.md)."""
    params: dict[str, Any] = {"guardrail": "trimkit.integrations.litellm.TrimkitGuardrail",
                              "mode": ["pre_call", "post_call"], "default_on": True, "models": dict(models)}
    if stages:
        params["stages"] = dict(stages)
    return {"guardrail_name": name, "litellm_params": params}


@dataclass
class LiteLLMProxy:
    proc: subprocess.Popen
    url: str
    master_key: str
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        stop_process_group(self.proc)


def proxy_config(models: list[dict[str, Any]], guardrails: list[dict[str, Any]] = (),
                master_key: str | None = None) -> dict[str, Any]:
    """A ``config.yaml`` (as a dict) with deterministic routing for tests: no retries, and no
    cooldown after a failure (one failed request must not make the next one a 429)."""
    return {
        "model_list": models,
        "guardrails": list(guardrails),
        "litellm_settings": {"num_retries": 0, "request_timeout": 900, "drop_params": True},
        "router_settings": {"disable_cooldowns": True, "num_retries": 0},
        "general_settings": {"master_key": master_key or "sk-trimkit-" + secrets.token_hex(16)},
    }


def start_litellm(python: str | Path, config: Mapping[str, Any] | str, *, master_key: str | None = None,
                  workdir: Path | None = None, timeout: float = START_TIMEOUT) -> LiteLLMProxy:
    """``litellm --config`` on a free port, ready; ``config`` is a dict (:func:`proxy_config`) or YAML text.

    ``master_key`` is the key clients use: the config's own when it is a dict, else
    given here, and passed as ``LITELLM_MASTER_KEY`` (for ``os.environ/LITELLM_MASTER_KEY``).
    """
    workdir = Path(workdir or tempfile.mkdtemp(prefix="trimkit-litellm-"))
    if not isinstance(config, str):
        master_key = config["general_settings"]["master_key"]
        config = json.dumps(config, indent=2)  # JSON is YAML
    master_key = master_key or "sk-trimkit-" + secrets.token_hex(16)
    config_path = workdir / "config.yaml"
    config_path.write_text(config)
    port = free_port()
    log = workdir / f"litellm-{port}.log"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("LITELLM_", "OPENAI_"))}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_MASTER_KEY=master_key, NO_DOCS="True",
               PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        proc = subprocess.Popen(  # the module, not the console script: a script names the build's temporary path
            [str(python), "-m", "litellm.proxy.proxy_cli", "--config", str(config_path), "--host", "127.0.0.1",
             "--port", str(port), "--num_workers", "1"],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proxy = LiteLLMProxy(proc, f"http://127.0.0.1:{port}", master_key, log)
    try:
        _wait_alive(proxy, timeout)
    except BaseException:
        proxy.stop()
        raise
    return proxy


def _wait_alive(proxy: LiteLLMProxy, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proxy.alive():
            raise RuntimeError(f"litellm exited with {proxy.proc.returncode}:\n{proxy.output()[-4000:]}")
        try:
            with urllib.request.urlopen(proxy.url + "/health/liveliness", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"litellm did not answer within {timeout:g} s:\n{proxy.output()[-4000:]}")
