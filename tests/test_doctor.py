"""``trimkit doctor`` on this machine: problems come with the command that fixes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.models import fake_model
from trimkit.config import load_config
from trimkit.cli.doctor import SUGGESTIONS, Check, memory, suggest
from trimkit.testing import free_port

EXPECTED_CHECKS = ["platform", "memory", "mlx", "packages", "config", "suggest", "model", "port", "claude", "self-test"]


def doctor(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``trimkit doctor`` with no config, an empty HF cache, offline, and nothing on PATH."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRIMKIT_", "HF_", "XDG_"))}
    base.update(HOME=str(home), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1", PATH=str(home / "bin"))
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "trimkit.cli", "doctor", "--port", str(free_port()), *args],
                          cwd=home, env=base, capture_output=True, text=True, timeout=120)


def problems(stdout: str) -> dict[str, str]:
    return {line.split()[1]: line for line in stdout.splitlines() if line.startswith("PROBLEM")}


def test_no_model_and_no_claude_code_are_problems_with_their_fixes(tmp_path):
    done = doctor(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    found = problems(done.stdout)
    assert set(found) == {"model", "claude"}
    assert found["claude"].endswith("; run: install Node.js 18 or later (https://nodejs.org), then "
                                    "npm install -g @anthropic-ai/claude-code")
    assert "no model is configured; run: hf download mlx-community/" in found["model"]
    assert "2 problems found" in done.stdout
    assert "Traceback" not in done.stderr


def test_the_model_fix_names_the_model_in_the_config_file(tmp_path):
    """Running the fix (all but the download) configures the suggested model."""
    fix = problems(doctor(tmp_path).stdout)["model"].split("; run: ", 1)[1]
    download, configure = fix.split(" && ")
    subprocess.run(["sh", "-c", configure], cwd=tmp_path, check=True)
    config = load_config(tmp_path / "trimkit.toml", env={})
    suggested = download.removeprefix("hf download ")
    assert config.settings.model == suggested
    assert config.settings.context_window in {s.context_window for s in SUGGESTIONS if s.model == suggested}


def test_json_output(tmp_path):
    done = doctor(tmp_path, "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["ok"] is False
    assert [c["name"] for c in report["checks"]] == EXPECTED_CHECKS
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["model"]["status"] == "problem" and by_name["model"]["fix"].startswith("hf download ")
    assert by_name["self-test"]["status"] == "ok" and report["self_test"]["ratio"] > 2
    assert report["memory"]["total_bytes"] > 0
    assert report["suggestion"]["model"].startswith("mlx-community/")
    assert all(c["fix"] is None for c in report["checks"] if c["status"] != "problem")


def test_an_uncached_model_names_the_download(tmp_path):
    problem = problems(doctor(tmp_path, "--model", "mlx-community/not-here-4bit").stdout)["model"]
    assert problem.endswith("mlx-community/not-here-4bit is not in the local Hugging Face cache; "
                            "run: hf download mlx-community/not-here-4bit")


def test_several_models_show_their_families_and_share_of_the_cap_and_a_missing_one_its_download(tmp_path):
    small = fake_model(tmp_path / "models" / "small-coder", 2 * 10**9)
    big = fake_model(tmp_path / "models" / "big-coder", 9 * 10**9)
    done = doctor(tmp_path, "--json", "--models", f"{small},{big}", "--memory-cap", "40GB", "--context-window", "8192")
    report = json.loads(done.stdout)
    model = next(c for c in report["checks"] if c["name"] == "model")
    assert model["status"] == "ok"
    assert model["detail"].startswith("2 models under a 40.0 GB memory cap: small-coder (haiku) 2.")
    assert "big-coder (opus/sonnet) 9." in model["detail"]
    assert [(m["alias"], m["context_window"]) for m in report["models"]] == [("small-coder", 8192), ("big-coder", 8192)]

    done = doctor(tmp_path, "--models", f"{big},mlx-community/not-here-4bit", "--memory-cap", "5GB")
    found = [line for line in done.stdout.splitlines() if line.startswith("PROBLEM  model")]
    assert any(line.endswith("not-here-4bit: mlx-community/not-here-4bit is not in the local Hugging Face cache; "
                             "run: hf download mlx-community/not-here-4bit") for line in found)
    assert any("model big-coder needs about" in line and "memory cap is 5.0 GB" in line for line in found)


def test_a_broken_config_file_is_a_problem(tmp_path):
    (tmp_path / "trimkit.toml").write_text("prot = 1\n")
    done = doctor(tmp_path)
    assert done.returncode == 1
    assert problems(done.stdout)["config"].endswith(f"; run: ${{EDITOR:-vi}} {tmp_path / 'trimkit.toml'}")


def test_nothing_wrong_is_exit_zero(tmp_path, tiny_model_dir):
    claude = tmp_path / "bin" / "claude"
    claude.parent.mkdir()
    claude.write_text("#!/bin/sh\nexit 0\n")
    claude.chmod(0o755)
    done = doctor(tmp_path, "--model", str(tiny_model_dir))
    assert done.returncode == 0, done.stdout
    assert not problems(done.stdout)
    assert f"ok       claude     Claude Code at {claude}" in done.stdout
    assert "no problems found" in done.stdout


def test_problem_lines_end_with_the_command():
    check = Check("model", "problem", "no model is configured", "hf download x")
    assert check.line().endswith("no model is configured; run: hf download x")
    assert Check("mlx", "ok", "fine").line() == "ok       mlx        fine"


def test_suggestions_fit_the_memory_they_are_suggested_for():
    for s in SUGGESTIONS:
        if s.min_memory_gb:
            assert s.needs_gb <= 0.75 * s.min_memory_gb, s
    assert [s.min_memory_gb for s in SUGGESTIONS] == sorted((s.min_memory_gb for s in SUGGESTIONS), reverse=True)
    assert suggest(None) == SUGGESTIONS[-1]
    assert suggest(int(36e9)).model == "mlx-community/Qwen3-Coder-30B-A3B-Instruct-4bit"
    assert suggest(int(16e9)).model == "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit"


def test_memory_is_read_on_this_machine():
    found = memory()
    assert found is not None and found.total > 0
    if found.available is not None:
        assert 0 < found.available <= found.total
