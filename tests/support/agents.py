"""What the end-to-end tests with real agent clients share: a probe plugin and a scripted write."""

from __future__ import annotations

from pathlib import Path

import trimkit


class TrimRecorder:
    """A plugin that keeps every trim the server does: the hook API used as a test probe."""

    def __init__(self):
        self.results: list[trimkit.TrimResult] = []

    @trimkit.hookimpl
    def trimkit_trimmed(self, result):
        self.results.append(result)


def write_file_script(tool: str, path_parameter: str, target: Path, content: str = "hello world") -> list[str]:
    """The replay backend's two turns for "create hello.txt": a write call in trimkit's convention, then a reply."""
    return [
        f"I'll create the file.\n<function_calls>\n<invoke name=\"{tool}\">\n"
        f"<parameter name=\"{path_parameter}\">{target}</parameter>\n"
        f"<parameter name=\"content\">{content}</parameter>\n</invoke>\n</function_calls>",
        f"Created {target.name} containing {content}.",
    ]


def work_and_home(tmp_path: Path) -> tuple[Path, Path]:
    """A project directory and a home directory for one run of a client."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    return work, home


def run_launch(client: str, script: list[str], client_args: list[str], env: dict[str, str], work: Path,
               tmp_path: Path, *, prefix: tuple[str, ...] = (), settings: tuple[str, ...] = ()):
    """``trimkit launch CLIENT --backend replay ... -- CLIENT_ARGS`` in ``work``, as a user runs it
    (after ``prefix``, such as a network namespace)."""
    import json
    import subprocess
    import sys

    from trimkit.testing import free_port

    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    command = [sys.executable, "-m", "trimkit.cli", "launch", client, "--backend", "replay", "--script", str(path),
               *settings, "--port", str(free_port()), "--", *client_args]
    return subprocess.run([*prefix, *command], cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=240)
