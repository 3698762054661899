"""Seconds from ``git clone`` to the first trimmed output, following the README as written.

    python benchmarks/bench_quickstart.py

Clones this repository into a temporary directory and runs the README's first
set-up command there (a new virtual environment, ``pip install .``, ``trimkit
inspect`` on the example request), timing each step. Package downloads come from
pip's cache when it is warm; the figure says which.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    block = re.search(r"```console\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line for line in block.group(1).splitlines() if line.strip()]


def main() -> None:
    commands = readme_commands()
    print(f"README set-up commands: {len(commands)}")
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "trimkit"
        started = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        cloned = time.perf_counter()
        done = subprocess.run(commands[0], shell=True, cwd=clone, capture_output=True, text=True)
        finished = time.perf_counter()
        if done.returncode != 0:
            sys.exit(f"the first command failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        total_line = next(line for line in done.stdout.splitlines() if line.startswith("total:"))
    print(f"git clone:                 {cloned - started:6.1f} s")
    print(f"venv + pip install + inspect: {finished - cloned:6.1f} s")
    print(f"clone to first trimmed output: {finished - started:6.1f} s")
    print(f"first output: {total_line}")


if __name__ == "__main__":
    main()
