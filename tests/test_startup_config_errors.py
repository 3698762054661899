"""A bad stage option stops ``trimkit config``, ``inspect`` and ``serve`` at startup:
one line naming the key, exit status 2, no traceback (the real commands, in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "claude-code-request.json"

BAD_TABLES = {
    "a word for a number": ('[stages.budget]\ndrop_step = "lots"\n',
                            "stages.budget.drop_step: expected `int | float`, got `str`", 2),
    "a negative count": ("[stages.system_prompt.small]\nmax_recent_commits = -1\n",
                         "stages.system_prompt.small.max_recent_commits: expected `int` >= 0", 2),
    "a wrong type": ('[stages.tools]\ninclude_examples = "no"\n',
                     "stages.tools.include_examples: expected `bool`, got `str`", 2),
    "an unknown option": ("[stages.budget]\ndrop_steps = 2\n", "stages.budget.drop_steps: unknown option", 2),
}
COMMANDS = {
    "config": ["config"],
    "inspect": ["inspect", str(EXAMPLE)],
    "serve": ["serve", "--backend", "replay", "--script", "turns.json", "--port", "1"],
}


def trimkit(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIMKIT_")}
    env["HOME"] = str(cwd)
    return subprocess.run(
        [sys.executable, "-m", "trimkit.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_a_bad_stage_option_is_one_line_and_exit_status_2(tmp_path, command, case):
    toml, message, line = BAD_TABLES[case]
    config = tmp_path / "trimkit.toml"
    config.write_text(toml)
    (tmp_path / "turns.json").write_text('["hello"]')
    done = trimkit(COMMANDS[command], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"trimkit {command}: {message} at {config} line {line}\n"
    assert done.stdout == ""


def test_the_same_commands_start_with_a_good_stage_table(tmp_path):
    (tmp_path / "trimkit.toml").write_text("[stages.budget]\ndrop_step = 2\n")
    shown = trimkit(["config"], tmp_path)
    assert shown.returncode == 0 and "drop_step = 2" in shown.stdout
    inspected = trimkit(["inspect", str(EXAMPLE)], tmp_path)
    assert inspected.returncode == 0 and inspected.stdout.splitlines()[0].startswith("stage")
