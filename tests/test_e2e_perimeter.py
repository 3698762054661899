"""The perimeter: with no network but loopback, trimkit and each client still do the work.

``unshare -rn`` gives a new network namespace (as an unprivileged user) whose only
interface is loopback, down until ``ip link set lo up``. ``trimkit launch`` starts the
server and the client inside it; the client writes a file through a scripted tool call.
Measured so, OpenCode 1.18 and Claude Code 2.1.197 and 2.1.332 (``-p`` mode, and the
terminal UI by hand) need no connection but the server (docs/launch.md).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.agents import run_launch, work_and_home, write_file_script
from tests.test_e2e_opencode import QUICK_TITLES, isolated_env, write_script

pytestmark = pytest.mark.e2e


def loopback_only() -> tuple[str, ...]:
    """The command prefix that runs a command in a new network namespace with only loopback up."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip is not installed")
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up && ip -o link"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        pytest.skip(f"no network namespaces here: {probe.stderr.strip()}")
    assert [line.split(":")[1].strip() for line in probe.stdout.splitlines()] == ["lo"]
    return ("unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh")


def test_opencode_round_trip_works_inside_a_loopback_only_network_namespace(opencode_bin, tmp_path):
    work, home = work_and_home(tmp_path)
    target = work / "hello.txt"
    env = isolated_env(home, work, TRIMKIT_OPENCODE_BIN=str(opencode_bin))
    done = run_launch("opencode", write_script(target), ["run", "create hello.txt containing hello world"], env,
                      work, tmp_path, prefix=loopback_only(), settings=QUICK_TITLES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_text() == "hello world"
    assert "Created hello.txt containing hello world." in done.stdout


def test_claude_code_round_trip_works_inside_a_loopback_only_network_namespace(claude_bin, tmp_path):
    work, home = work_and_home(tmp_path)
    target = work / "hello.txt"
    script = write_file_script("Write", "file_path", target)
    env = isolated_env(home, work, TRIMKIT_CLAUDE_BIN=str(claude_bin))
    done = run_launch("claude", script, ["-p", "create hello.txt containing hello world", "--allowedTools", "Write"],
                      env, work, tmp_path, prefix=loopback_only(), settings=QUICK_TITLES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_text() == "hello world"
    assert "Created hello.txt containing hello world." in done.stdout
