"""The command's one error path: every expected failure is one line on stderr and a status that names its kind.

Each test runs the real ``trimkit`` command in a subprocess, in an empty home with
no config and no ``TRIMKIT_*`` variables, and checks the whole of stderr.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trimkit.cli.errors import Exit
from trimkit.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "claude-code-request.json"


def command_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIMKIT_", "HF_", "XDG_"))}
    env.update(HOME=str(home), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1")
    return env


def trimkit(home: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trimkit.cli", *args], input=stdin, capture_output=True,
                          cwd=home, env=command_env(home), timeout=120)


def one_line(done: subprocess.CompletedProcess, command: str) -> str:
    """The single stderr line of a failed command, without its ``trimkit <command>: `` prefix."""
    err = done.stderr.decode()
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith(f"trimkit {command}: "), err
    return err.removeprefix(f"trimkit {command}: ").rstrip("\n")


def test_the_exit_statuses_are_distinct():
    assert len({int(status) for status in Exit}) == len(Exit.__members__)


def test_inspect_reports_a_bad_stage_option_in_one_line(tmp_path):
    (tmp_path / "trimkit.toml").write_text('[stages.system_prompt]\nmode = "weird"\n')
    done = trimkit(tmp_path, "inspect", str(EXAMPLE))
    assert done.returncode == Exit.USAGE and done.stdout == b""
    assert "stages.system_prompt.mode" in one_line(done, "inspect")


def test_inspect_reports_an_unknown_stage_option_with_its_line(tmp_path):
    (tmp_path / "trimkit.toml").write_text('port = 9000\n\n[stages.budget]\nnot_an_option = 10\n')
    done = trimkit(tmp_path, "inspect", str(EXAMPLE))
    assert done.returncode == Exit.USAGE
    assert one_line(done, "inspect") == (
        f"stages.budget.not_an_option: unknown option at {tmp_path / 'trimkit.toml'} line 4"
    )


def test_inspect_tells_an_unreadable_request_from_one_that_cannot_fit(tmp_path):
    bad = trimkit(tmp_path, "inspect", "-", stdin=b'{"model": ')
    huge = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "word " * 300_000}]}
    long = trimkit(tmp_path, "inspect", "-", stdin=json.dumps(huge).encode())
    assert bad.returncode == Exit.INPUT
    assert one_line(bad, "inspect").startswith("not a valid Messages request: invalid JSON body")
    assert long.returncode == Exit.TOO_LONG
    assert one_line(long, "inspect").startswith("prompt is too long: ")


def test_config_reports_a_bad_file_in_one_line_with_usage_status(tmp_path):
    (tmp_path / "trimkit.toml").write_text("prot = 1\n")
    done = trimkit(tmp_path, "config")
    assert done.returncode == Exit.USAGE
    assert one_line(done, "config").startswith("unknown key 'prot'")


def test_serve_reports_settings_it_cannot_use_in_one_line(tmp_path):
    no_script = trimkit(tmp_path, "serve", "--backend", "replay", "--port", str(free_port()))
    no_key = trimkit(tmp_path, "serve", "--backend", "replay", "--host", "0.0.0.0", "--port", str(free_port()))
    bad_url = trimkit(tmp_path, "serve", "--backend", "openai", "--upstream", "gpu-box:8000")
    assert no_script.returncode == no_key.returncode == bad_url.returncode == Exit.USAGE
    assert one_line(no_script, "serve") == "the replay backend needs --script FILE (a JSON array of model turns)"
    assert one_line(no_key, "serve").startswith("refusing to listen on 0.0.0.0 without an API key")
    assert one_line(bad_url, "serve").startswith("upstream 'gpu-box:8000' is not an http:// or https:// URL")


def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path):
    script = tmp_path / "script.json"
    script.write_text('["hi"]')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = trimkit(tmp_path, "serve", "--backend", "replay", "--script", str(script), "--port", str(port))
    assert done.returncode == Exit.USAGE
    line = one_line(done, "serve")
    assert line.startswith(f"cannot listen on 127.0.0.1:{port}: ") and line.endswith("choose another port with --port PORT)")


# ---------------------------------------------------------------- output closed early (| head)


def with_closed_stdout(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the command with a stdout pipe whose reading end is already closed, as after ``| head -1`` exits."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "trimkit.cli", *args], stdout=write, stderr=subprocess.PIPE,
                              cwd=home, env=command_env(home), timeout=120)
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [
        ("doctor", "--json", "--port", "0"),
        ("config", "--json"),
        ("inspect", str(EXAMPLE), "--show"),
        ("launch", "claude", "--print-env", "--backend", "replay", "--port", "0"),
    ],
    ids=["doctor", "config", "inspect", "launch"],
)
def test_a_reader_that_went_away_ends_the_command_quietly(tmp_path, args):
    args = tuple(str(free_port()) if a == "0" else a for a in args)
    done = with_closed_stdout(tmp_path, *args)
    assert done.stderr.decode() == ""
    assert done.returncode == Exit.BROKEN_PIPE
