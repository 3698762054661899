"""The layout in figures, an earlier commit and this checkout side by side in one run.

    python benchmarks/bench_layout.py [REV]      # REV defaults to 4670077, before the layout by role

Prints, for REV and for the working tree: Python modules per role, the largest
module, and the files a request passes through from the endpoint to the response.
That last figure is measured, not read off a diagram: the example Claude-Code
request (stream and not) goes through the app in-process on the replay backend,
once to warm caches, then once with a profiler on every thread, and every
trimkit file whose functions ran is counted.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REV = "4670077"
ROLES = ("toolcalls", "backends", "server", "config", "cli", "testing")
# Before the layout by role these top-level modules held another role's work.
OLD_ROLES = {
    "agent_prompts": "stages", "budget": "stages", "compact_tools": "stages", "reminders": "stages",
    "response": "toolcalls", "toolcall_parser": "toolcalls", "coerce": "toolcalls",
    "capture": "server", "settings": "config", "config": "config",
    "cli": "cli", "doctor": "cli", "launch": "cli", "loading": "cli",
    "testing": "testing", "tinymodel": "testing",
}

TRACE = r'''
import json, pathlib, sys, threading
root = pathlib.Path(sys.argv[1]).resolve()
from litestar.testing import TestClient
try:
    from trimkit.server import ServerSettings, create_app
except ImportError:
    from trimkit.settings import ServerSettings
    from trimkit.server import create_app
from trimkit.backends.replay import ReplayBackend
from trimkit.profile import ModelProfile

turn = 'Listing.\n<function_calls>\n<invoke name="Bash">\n<parameter name="command">ls</parameter>\n</invoke>\n</function_calls>'
backend = ReplayBackend([turn], loop=True, profile=ModelProfile(name="replay", context_window=200_000, tier="small"))
app = create_app(ServerSettings(backend="replay"), backend=backend)
seen, active = {}, [None]

def profiler(frame, event, arg):
    if active[0] is not None and event == "call":
        seen.setdefault(active[0], set()).add(frame.f_code.co_filename)

threading.setprofile(profiler)
sys.setprofile(profiler)
with TestClient(app) as client:
    for stream in (False, True):
        request = json.loads((root / "examples" / "claude-code-request.json").read_text())
        request.update(stream=stream, max_tokens=64)
        assert client.post("/v1/messages", json=request).status_code == 200
        active[0] = "stream" if stream else "json"
        assert client.post("/v1/messages", json=request).status_code == 200
        active[0] = None
out = {}
for kind, files in seen.items():
    out[kind] = sorted(str(pathlib.Path(f).resolve().relative_to(root)) for f in files
                       if f.endswith(".py") and pathlib.Path(f).resolve().is_relative_to(root))
print(json.dumps(out))
'''


def role_of(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    if parts[0] == "plugins":
        return "stages"
    inside = parts[2:]  # below src/trimkit/
    if len(inside) > 1 and inside[0] in ROLES:
        return inside[0]
    return OLD_ROLES.get(inside[0], "library")


def modules(tree: Path) -> dict[str, int]:
    """Every Python module of the package and the stages, with its line count."""
    files = [*(tree / "src" / "trimkit").rglob("*.py"), *(tree / "plugins").rglob("*.py")]
    return {str(f.relative_to(tree)): len(f.read_text().splitlines()) for f in files}


def request_path(tree: Path) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", TRACE, str(tree)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"}, timeout=300)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout)


def checkout(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    rev = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_REV
    with tempfile.TemporaryDirectory() as tmp:
        trees = {rev: checkout(rev, Path(tmp)), "now": ROOT}
        found = {name: (modules(tree), request_path(tree)) for name, tree in trees.items()}
    (old_mods, old_path), (new_mods, new_path) = found[rev], found["now"]
    roles = sorted(set(map(role_of, old_mods)) | set(map(role_of, new_mods)))
    old_roles, new_roles = Counter(map(role_of, old_mods)), Counter(map(role_of, new_mods))
    print(f"{'':<34}{rev:>12}{'now':>12}")
    for role in roles:
        print(f"modules, {role:<25}{old_roles[role]:>12}{new_roles[role]:>12}")
    top = [m for m in new_mods if len(Path(m).parts) == 3 and m.startswith("src/")]
    old_top = [m for m in old_mods if len(Path(m).parts) == 3 and m.startswith("src/")]
    print(f"{'modules at the top of src/trimkit':<34}{len(old_top):>12}{len(top):>12}")
    print(f"{'  of which not library':<34}{sum(role_of(m) != 'library' for m in old_top):>12}"
          f"{sum(role_of(m) != 'library' for m in top):>12}")
    old_big, new_big = max(old_mods.items(), key=lambda kv: kv[1]), max(new_mods.items(), key=lambda kv: kv[1])
    print(f"{'lines in the largest module':<34}{old_big[1]:>12}{new_big[1]:>12}   ({old_big[0]} → {new_big[0]})")
    for kind in ("json", "stream"):
        print(f"{'files a request passes, ' + kind:<34}{len(old_path[kind]):>12}{len(new_path[kind]):>12}")
    for kind in ("stream",):
        old_by, new_by = Counter(map(role_of, old_path[kind])), Counter(map(role_of, new_path[kind]))
        for role in sorted(set(old_by) | set(new_by)):
            print(f"{'  ' + role:<34}{old_by[role]:>12}{new_by[role]:>12}")
    print()
    print(f"a streamed request passes, now ({len(new_path['stream'])} files):")
    for path in new_path["stream"]:
        print(f"  {role_of(path):<10} {path}")


if __name__ == "__main__":
    main()
