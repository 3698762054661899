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


BAD_SETTINGS = {
    "TOML nested 3,000 deep": ("x = " + "[" * 3000 + "]" * 3000 + "\n", "values are nested too deeply"),
    "a port past 65535": ("port = 70000\n", "'port' at {config} line 1 is invalid: Expected `int` <= 65535"),
    "a log level that is no level": ('log_level = "nonsense"\n', "'log_level' at {config} line 1 must be one of"),
    "an upstream URL that does not parse": ('upstream = "http://[::1"\n', "is not a valid URL: Invalid IPv6 URL"),
    "pings without a pause": ("ping_interval = 0\n", "'ping_interval' at {config} line 1 is invalid: Expected `float` >= 0.1"),
    "no body at all": ("max_body_bytes = 0\n", "'max_body_bytes' at {config} line 1 is invalid: Expected `int` >= 1"),
    "an endless timeout": ("upstream_timeout = inf\n", "'upstream_timeout' at {config} line 1 is invalid"),
    "a queue of minus one": ("max_queue = -1\n", "'max_queue' at {config} line 1 is invalid: Expected `int` >= 0"),
    "a tier that is no tier": ('tier = "huge"\n', "'tier' at {config} line 1 must be one of"),
    "no connections": ("max_connections = 0\n", "'max_connections' at {config} line 1 is invalid"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_a_setting_that_cannot_work_stops_serve_at_startup_in_one_line(tmp_path, case):
    toml, message = BAD_SETTINGS[case]
    config = tmp_path / "trimkit.toml"
    config.write_text(toml)
    (tmp_path / "turns.json").write_text('["hello"]')
    done = trimkit(["serve", "--backend", "replay", "--script", "turns.json", "--port", "1"], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("trimkit serve: ") and done.stderr.count("\n") == 1, done.stderr
    assert message.format(config=config) in done.stderr and "Traceback" not in done.stderr


def test_a_bad_value_from_a_flag_or_the_environment_says_what_is_wrong(tmp_path):
    flag = trimkit(["config", "--port", "70000"], tmp_path)
    upstream = trimkit(["config", "--upstream", "http://[::1"], tmp_path)
    assert flag.returncode == upstream.returncode == 2
    assert flag.stderr == "trimkit config: --port is invalid: Expected `int` <= 65535\n"
    assert upstream.stderr.startswith("trimkit config: upstream 'http://[::1' is not a valid URL")
