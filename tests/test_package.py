"""The package as installed: a wheel that carries the stages and prompts, a library that
imports nothing heavy, and third-party stages from entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "claude-code-request.json"
CHECKOUT_PATHS = {str(ROOT), str(ROOT / "src"), ""}


def run_python(code: str, *, path: list[Path] = (), cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter whose import path starts with ``path`` and
    leaves out the source checkout; the code prints one JSON document."""
    prelude = (
        "import sys\n"
        f"sys.path[:] = {[str(p) for p in path]!r} + [p for p in sys.path if p not in {sorted(CHECKOUT_PATHS)!r}]\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("TRIMKIT_")}
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


# ---------------------------------------------------------------- the wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from this checkout, offline (the build backend must be installed)."""
    pytest.importorskip("hatchling", reason="building offline needs the build backend (hatchling) installed")
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (built,) = out.glob("trimkit-*.whl")
    return built


def test_wheel_carries_the_stages_prompts_pages_hookspecs_and_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    stage_modules = {f"trimkit/{p.relative_to(ROOT)}" for p in (ROOT / "plugins").rglob("*.py")}
    templates = {f"trimkit/prompts/{p.name}" for p in (ROOT / "prompts").glob("*.j2")}
    assert {"trimkit/plugins/__init__.py", "trimkit/plugins/client_noise.py", "trimkit/plugins/budget/__init__.py",
            "trimkit/plugins/tools/compact.py"} <= stage_modules
    assert {"trimkit/prompts/small.j2", "trimkit/prompts/medium.j2", "trimkit/prompts/tools.j2",
            "trimkit/prompts/environment.j2"} <= templates
    pages = {f"trimkit/pages/{p.name}" for p in (ROOT / "pages").iterdir()}
    assert {"trimkit/pages/live.html", "trimkit/pages/report.html", "trimkit/pages/page.css",
            "trimkit/pages/live.js"} <= pages
    assert stage_modules | templates | pages | {"trimkit/hookspecs.py", "trimkit/__init__.py",
                                                "trimkit/agent_lines.txt"} <= names
    assert "[console_scripts]\ntrimkit = trimkit.cli:main" in scripts
    assert not any(n.startswith(("tests/", "benchmarks/", "plugins/", "prompts/", "pages/")) for n in names)


def test_installed_wheel_trims_with_its_own_stages_and_prompts(wheel, tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = run_python(
        f"""
        import json, sys
        import trimkit
        from trimkit.resources import pages_dir, prompts_dir
        from trimkit.report_html import RequestView, report_file
        result = trimkit.trim(open({str(EXAMPLE)!r}, "rb").read(), trimkit.ModelProfile.for_tier("small"))
        page = report_file(RequestView(id=1, at=0.0, report=result.report))
        print(json.dumps({{
            "trimkit": trimkit.__file__,
            "plugins": sys.modules["trimkit.plugins"].__file__,
            "stages": {{s.name: sys.modules[s.run.__module__].__file__ for s in trimkit.pipeline.default_pipeline().stages}},
            "prompts": str(prompts_dir()),
            "pages": str(pages_dir()),
            "page": page,
            "before": result.report.before.chars,
            "after": result.report.after.chars,
            "system": trimkit.wire.system_text(result.request),
        }}))
        """,
        path=[site],
        cwd=tmp_path,
    )
    site_dir = str(site.resolve())
    for key in ("trimkit", "plugins", "prompts", "pages"):
        assert shown[key].startswith(site_dir), (key, shown[key])
    assert set(shown["stages"]) >= {"client_noise", "system_prompt", "reminders", "tools", "budget"}
    assert all(file.startswith(site_dir) for file in shown["stages"].values()), shown["stages"]
    assert shown["after"] < shown["before"] / 10
    assert "You are a coding agent" in shown["system"]  # rendered from the wheel's small.j2
    assert '<tool name="Read">' in shown["system"]
    assert "<svg" in shown["page"] and "tools_dropped" in shown["page"]  # rendered from the wheel's pages/


# ---------------------------------------------------------------- nothing heavy on import

HEAVY = ("mlx", "mlx_lm", "litestar", "uvicorn", "httpx", "httpx2", "anthropic", "transformers", "torch", "numpy")


def test_the_library_loads_no_mlx_web_framework_or_http_client(tmp_path):
    shown = run_python(
        f"""
        import importlib, json, pkgutil, sys
        import trimkit
        result = trimkit.trim(open({str(EXAMPLE)!r}, "rb").read())
        import trimkit.config, trimkit.errors, trimkit.toolcalls, trimkit.forward, trimkit.integrations.asgi
        for found in pkgutil.walk_packages(trimkit.toolcalls.__path__, "trimkit.toolcalls."):
            importlib.import_module(found.name)
        assert result.report.after.chars < result.report.before.chars
        print(json.dumps(sorted(sys.modules)))
        """,
        path=[ROOT / "src"],
        cwd=tmp_path,
    )
    assert "trimkit.pipeline" in shown and "trimkit.plugins.tools" in shown
    assert {"trimkit.toolcalls.response", "trimkit.toolcalls.dialects.engine", "trimkit.toolcalls.dialects"} <= set(shown)
    loaded = [name for name in shown if name.split(".")[0] in HEAVY]
    assert loaded == []


# ---------------------------------------------------------------- who imports whom (docs/architecture.md)

ROLES = ("toolcalls", "constrain", "backends", "server", "config", "cli", "testing", "integrations")
MAY_IMPORT = {
    "library": {"library"},
    "toolcalls": {"library"},
    "constrain": {"library"},
    "plugins": {"library"},
    "config": {"library"},
    "backends": {"library", "constrain", "config"},
    "server": {"library", "toolcalls", "constrain", "backends", "config"},
    "cli": {"library", "toolcalls", "constrain", "backends", "config", "server"},
    "testing": {"library", "toolcalls", "constrain", "backends", "config", "server"},
    "integrations": {"library", "toolcalls"},
}
NO_HEAVY = ("mlx", "mlx_lm", "numpy", "litestar", "uvicorn", "httpx", "huggingface_hub")
MAY_NOT_IMPORT = {
    "library": NO_HEAVY,
    "toolcalls": NO_HEAVY,
    "constrain": NO_HEAVY,
    "plugins": NO_HEAVY,
    "config": NO_HEAVY,
    "backends": ("litestar", "uvicorn"),
    "server": ("mlx", "mlx_lm", "numpy", "httpx", "uvicorn"),
    "integrations": NO_HEAVY + ("starlette",),
}
SERVES_WITH_UVICORN = {"trimkit.server.listen"}
"""The one server module that knows the ASGI server it runs under (its connection limits)."""


def role_of(module: str) -> str:
    """``trimkit.server.app`` → ``server``; modules at the top of the package are the library."""
    parts = module.split(".")
    if parts[:2] == ["trimkit", "plugins"]:
        return "plugins"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROLES) else "library"


def source_modules():
    """(module name, role, every module it imports, at the top or inside a function)."""
    import ast

    files = [(p, ("trimkit",) + p.relative_to(ROOT / "src" / "trimkit").with_suffix("").parts)
             for p in (ROOT / "src" / "trimkit").rglob("*.py")]
    files += [(p, ("trimkit", "plugins") + p.relative_to(ROOT / "plugins").with_suffix("").parts)
              for p in (ROOT / "plugins").rglob("*.py")]
    for path, parts in files:
        package = parts[:-1]  # what a relative import starts from, for a package's __init__ too
        module = ".".join(package if parts[-1] == "__init__" else parts)
        imported = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.append(node.module)
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1])
                imported += [f"{base}.{node.module}"] if node.module else [f"{base}.{a.name}" for a in node.names]
        yield module, role_of(module), imported


def test_each_role_imports_only_the_roles_below_it():
    wrong = []
    for module, role, imported in source_modules():
        for name in imported:
            if name.split(".")[0] == "trimkit" and name != "trimkit" and role_of(name) not in MAY_IMPORT[role] | {role}:
                wrong.append(f"{module} ({role}) imports {name} ({role_of(name)})")
            elif name.split(".")[0] in MAY_NOT_IMPORT.get(role, ()) and not (
                    module in SERVES_WITH_UVICORN and name.split(".")[0] in ("uvicorn", "h11")):
                wrong.append(f"{module} ({role}) imports {name}")
    assert wrong == []


def test_the_import_rules_know_every_module():
    roles = {role for _, role, _ in source_modules()}
    assert roles == set(MAY_IMPORT)


# ---------------------------------------------------------------- entry points

ACME_STAGE = '''
import msgspec
import trimkit
from trimkit.wire import TextBlock


def run(state):
    system = state.request.system or []
    if isinstance(system, str):
        system = [TextBlock(text=system)]
    state.request = msgspec.structs.replace(state.request, system=[*system, TextBlock(text="ACME WAS HERE")])


@trimkit.hookimpl
def trimkit_register_stages():
    return [trimkit.Stage(name="acme", run=run, order=450)]
'''


def test_a_stage_from_an_entry_point_in_the_trimkit_group_runs(tmp_path):
    (tmp_path / "acme_stage.py").write_text(ACME_STAGE)
    info = tmp_path / "acme_stage-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme_stage\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[trimkit]\nacme = acme_stage\n")
    (info / "RECORD").write_text("")
    shown = run_python(
        """
        import json
        import trimkit
        request = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
        out = {}
        for label, pipeline in (("loaded", trimkit.Pipeline()), ("blocked", trimkit.Pipeline(block=["acme"]))):
            result = pipeline.trim(request, trimkit.ModelProfile.for_tier("small"))
            out[label] = {
                "stages": [s.name for s in pipeline.stages],
                "report": [s.name for s in result.report.stages],
                "system": trimkit.wire.system_text(result.request),
            }
        out["default"] = trimkit.wire.system_text(trimkit.trim(request).request)
        out["no_entry_points"] = [s.name for s in trimkit.Pipeline(entry_points=False).stages]
        print(json.dumps(out))
        """,
        path=[tmp_path, ROOT / "src"],
        cwd=tmp_path,
    )
    loaded, blocked = shown["loaded"], shown["blocked"]
    assert "acme" in loaded["stages"] and loaded["report"] == loaded["stages"]
    assert loaded["stages"].index("tools") < loaded["stages"].index("acme") < loaded["stages"].index("budget")
    assert "ACME WAS HERE" in loaded["system"]
    assert "ACME WAS HERE" in shown["default"]
    assert "acme" not in blocked["stages"] and "acme" not in shown["no_entry_points"]
    assert "ACME WAS HERE" not in blocked["system"]
    assert [s for s in loaded["stages"] if s != "acme"] == blocked["stages"]


# ---------------------------------------------------------------- a source checkout


def test_trimkit_plugins_imports_from_a_source_checkout(tmp_path):
    shown = run_python(
        """
        import json
        import trimkit.plugins
        from trimkit.plugins.tools import section
        print(json.dumps({"package": trimkit.plugins.__file__, "module": section.__file__,
                          "stages": list(trimkit.plugins.BUILTIN)}))
        """,
        path=[ROOT / "src"], cwd=tmp_path,
    )
    assert shown["package"] == str(ROOT / "plugins" / "__init__.py")
    assert shown["module"] == str(ROOT / "plugins" / "tools" / "section.py")
    assert shown["stages"] == ["client_noise", "system_prompt", "reminders", "tools", "output_format", "budget"]


PUBLIC_FOR_STAGES = {"trimkit", "trimkit.wire", "trimkit.rewrite", "trimkit.convention", "trimkit.render", "trimkit.memo",
                     "trimkit.measure", "trimkit.templates", "trimkit.agent_context"}


def test_stages_import_only_the_public_library_and_their_own_package():
    """The list hookspecs.py gives a third-party stage; the built-ins keep to it too."""
    import ast

    for path in (ROOT / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.startswith("trimkit"):
                assert node.module in PUBLIC_FOR_STAGES, f"{path.relative_to(ROOT)} imports {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("trimkit"), f"{path.relative_to(ROOT)} imports {alias.name}"
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                raise AssertionError(f"{path.relative_to(ROOT)} reaches outside its package")
