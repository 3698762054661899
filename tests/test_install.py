"""``uv tool install .`` gives a working ``trimkit`` command, server included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def uv_binary() -> str | None:
    local = Path(sys.executable).parent / "uv"
    return str(local) if local.exists() else shutil.which("uv")


@pytest.mark.slow
def test_uv_tool_install_gives_a_trimkit_that_trims_and_serves(tmp_path):
    uv = uv_binary()
    if uv is None:
        pytest.skip("uv is not installed (it comes with the test extra)")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(UV_TOOL_DIR=str(tmp_path / "tools"), UV_TOOL_BIN_DIR=str(tmp_path / "bin"), UV_NO_PROGRESS="1")
    installed = subprocess.run(
        [uv, "tool", "install", "--python", sys.executable, str(ROOT)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    trimkit = tmp_path / "bin" / "trimkit"

    shown = subprocess.run([str(trimkit), "inspect", str(ROOT / "examples" / "claude-code-request.json")],
                           env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "tools offered to the model: " in shown.stdout

    tool_python = next((tmp_path / "tools" / "trimkit").glob("bin/python"))
    probe = subprocess.run(
        [str(tool_python), "-c", "import litestar, uvicorn, mlx.core, mlx_lm, trimkit.server; print('ok')"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert probe.stdout.strip() == "ok", probe.stderr[-2000:]
