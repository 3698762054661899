"""The README is executable: its code examples run, and its two set-up commands work in a fresh clone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_examples() -> list[str]:
    return re.findall(r"<!-- readme-test -->\n```python\n(.*?)```", README, flags=re.S)


def setup_commands() -> list[str]:
    first_block = re.search(r"```console\n(.*?)```", README, flags=re.S)
    assert first_block, "the README opens with a console block"
    return [line for line in first_block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_setup_commands():
    assert README.index("```console") < README.index("\n## ")
    commands = setup_commands()
    assert len(commands) == 2
    assert "trimkit inspect examples/claude-code-request.json" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_readme_example_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_examples()[index], f"README.md example {index + 1}", "exec"), {"__name__": "readme"})


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TRIMKIT_IN_README_CLONE") == "1", reason="already inside the clone")
def test_setup_commands_work_in_a_fresh_clone(tmp_path):
    """Clone the committed tree and run both commands exactly as written.

    The second command runs the clone's test suite; to keep this test's time
    bounded, PYTEST_ADDOPTS narrows that run to a few quick test files (the command
    itself is unchanged).
    """
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "trimkit"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    first, second = setup_commands()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p)

    shown = subprocess.run(first, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-3000:]
    assert "tools offered to the model: " in shown.stdout
    assert "smaller" in shown.stdout

    env.update(
        TRIMKIT_IN_README_CLONE="1",
        PYTEST_ADDOPTS="-q -p no:cacheprovider tests/test_readme.py tests/test_fixtures.py tests/test_trim_sizes.py",
    )
    tested = subprocess.run(second, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert re.search(r"\d+ passed", tested.stdout)
