"""``trimkit doctor``: is this machine ready to serve a local model to Claude Code?

Checks the platform, memory, MLX, the server's packages, the configured model (a
directory or the local Hugging Face cache; nothing is downloaded and no connection
is opened), Claude Code, the configured port, and trims a small built-in
Claude-Code-shaped request through the configured pipeline. Every problem names
the command that fixes it. Exit status 0 when there is no problem, 1 otherwise.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..backends.catalog import several_models
from ..backends.locate import locate_model
from ..backends.memory import Memory, default_memory_cap, gb, memory
from .main import REINSTALL
from ..config import Config, ServerSettings
from ..errors import ConfigError

GB = 1e9
Status = Literal["ok", "problem", "info"]


@dataclass(frozen=True)
class Suggestion:
    """A model for machines with at least ``min_memory_gb`` of memory."""

    min_memory_gb: int
    model: str
    weights_gb: float
    context_window: int
    needs_gb: float  # weights plus the KV cache of a full window, roughly


# Current MLX coding models in mlx-community, largest first. Qwen3-Coder-30B-A3B is a
# mixture of experts with 3 B active parameters: it prefills several times faster than
# a dense 14 B or 32 B model, so it is the choice wherever it fits. The context window
# is what fits beside the weights (about 96 KB of KV cache per token for the 30B-A3B,
# 192 KB for the 14 B, 56 KB for the 7 B), not the model's maximum.
SUGGESTIONS: tuple[Suggestion, ...] = (
    Suggestion(96, "mlx-community/Qwen3-Coder-30B-A3B-Instruct-8bit", 32.5, 131_072, 46),
    Suggestion(64, "mlx-community/Qwen3-Coder-30B-A3B-Instruct-8bit", 32.5, 65_536, 39),
    Suggestion(48, "mlx-community/Qwen3-Coder-30B-A3B-Instruct-4bit", 17.2, 65_536, 24),
    Suggestion(32, "mlx-community/Qwen3-Coder-30B-A3B-Instruct-4bit", 17.2, 32_768, 21),
    Suggestion(24, "mlx-community/Qwen2.5-Coder-14B-Instruct-4bit", 8.3, 32_768, 15),
    Suggestion(16, "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit", 4.3, 32_768, 6.2),
    Suggestion(8, "mlx-community/Qwen2.5-Coder-3B-Instruct-4bit", 1.8, 32_768, 3.0),
    Suggestion(0, "mlx-community/Qwen2.5-Coder-1.5B-Instruct-4bit", 0.9, 16_384, 1.4),
)
# A model whose weights take more than this share of memory leaves too little for the rest.
MAX_WEIGHTS_SHARE = 0.75


def suggest(total_bytes: int | None) -> Suggestion:
    total_gb = (total_bytes or 0) / GB
    return next(s for s in SUGGESTIONS if total_gb >= s.min_memory_gb)


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None  # the command that fixes a problem

    def line(self) -> str:
        label = {"ok": "ok", "problem": "PROBLEM", "info": "info"}[self.status]
        text = f"{label:<8} {self.name:<10} {self.detail}"
        return f"{text}; run: {self.fix}" if self.fix else text


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(c.status == "problem" for c in self.checks)

    def add(self, name: str, status: Status, detail: str, fix: str | None = None) -> Check:
        check = Check(name, status, detail, fix if status == "problem" else None)
        self.checks.append(check)
        return check

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks], **self.facts}


# ---------------------------------------------------------------- the machine


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


# ---------------------------------------------------------------- the checks


def check_platform(report: Report) -> None:
    system = f"{platform.system()} {platform.release()} {platform.machine()}"
    python = platform.python_version()
    report.facts["platform"] = {"system": system, "python": python}
    note = "" if _is_apple_silicon() else " (MLX runs on the CPU here; on Apple silicon it uses the GPU)"
    report.add("platform", "ok", f"{system}, Python {python}{note}")


def check_memory(report: Report) -> Memory | None:
    mem = memory()
    if mem is None:
        report.add("memory", "info", "could not read the amount of memory")
        return None
    cap = default_memory_cap(mem.total)
    report.facts["memory"] = {"total_bytes": mem.total, "available_bytes": mem.available, "default_cap_bytes": cap}
    available = f", {gb(mem.available)} available" if mem.available is not None else ""
    report.add("memory", "ok", f"{gb(mem.total)} total{available}; several models share at most {gb(cap)} "
                               "(memory_cap)")
    return mem


def check_mlx(report: Report) -> None:
    try:
        import mlx.core as mx

        device = str(mx.default_device())
    except Exception as exc:  # ImportError, or a broken install raising on load
        report.add("mlx", "problem", f"MLX cannot be imported ({exc})", REINSTALL)
        return
    report.facts["mlx"] = {"version": _version("mlx"), "device": device}
    if importlib.util.find_spec("mlx_lm") is None:
        report.add("mlx", "problem", f"MLX {_version('mlx')} on {device}, but mlx-lm is not installed", REINSTALL)
        return
    report.add("mlx", "ok", f"mlx {_version('mlx')}, mlx-lm {_version('mlx-lm')}, device {device}")


def check_server_packages(report: Report) -> None:
    missing = [name for name in ("litestar", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        report.add("packages", "problem", f"the server needs {', '.join(missing)}", REINSTALL)
    else:
        report.add("packages", "ok", f"litestar {_version('litestar')}, uvicorn {_version('uvicorn')}")


def use_model_command(suggestion: Suggestion, config_path: Path | None) -> str:
    """Fetch the suggested model and name it in the config file trimkit reads."""
    target = shlex.quote(str(config_path) if config_path else "trimkit.toml")
    lines = f'model = "{suggestion.model}"\\ncontext_window = {suggestion.context_window}\\n'
    return f"hf download {suggestion.model} && printf '{lines}' >> {target}"


def check_model(report: Report, settings: ServerSettings, config_path: Path | None, mem: Memory | None) -> None:
    suggestion = suggest(mem.total if mem else None)
    report.facts["suggestion"] = asdict(suggestion)
    for_memory = f"for {gb(mem.total)} of memory" if mem else "(memory unknown)"
    report.add(
        "suggest", "info",
        f"{for_memory}: {suggestion.model} with context_window = {suggestion.context_window:,} "
        f"(weights {suggestion.weights_gb:g} GB, about {suggestion.needs_gb:g} GB in use)",
    )
    if settings.backend != "mlx":
        report.add("model", "info", f"the {settings.backend} backend needs no local model")
        return
    switch = use_model_command(suggestion, config_path)
    if several_models(settings):
        check_models(report, settings, config_path)
        return
    if not settings.model:
        report.add("model", "problem", "no model is configured", switch)
        return
    location = locate_model(settings.model)
    report.facts["model"] = {"id": settings.model, "path": str(location.path) if location.path else None}
    if location.path is None:
        report.add("model", "problem", str(location.problem), location.fix or switch)
        return
    weights = location.weights_bytes
    where = "in the Hugging Face cache" if location.cached else "a local directory"
    detail = f"{settings.model}: {where}, weights {gb(weights)}"
    if mem and weights > MAX_WEIGHTS_SHARE * mem.total:
        report.add("model", "problem", f"{detail}, too large for {gb(mem.total)} of memory", switch)
    else:
        report.add("model", "ok", detail)


def check_models(report: Report, settings: ServerSettings, config_path: Path | None) -> None:
    """Several models: each is here and fits the memory cap alone; which Claude families go where."""
    from ..backends import model_set
    from ..config.settings import FAMILIES

    edit = f"${{EDITOR:-vi}} {shlex.quote(str(config_path) if config_path else 'trimkit.toml')}"
    try:
        models = model_set(settings, strict=False)
    except ConfigError as exc:
        report.add("model", "problem", str(exc), edit)
        return
    rows = []
    for resident in models.residents:
        spec = resident.spec
        if spec.path is None:
            location = locate_model(spec.model)
            report.add("model", "problem", f"{spec.alias}: {location.problem}", location.fix or edit)
            continue
        if resident.plan.too_big:
            report.add("model", "problem", resident.plan.too_big, edit)
            continue
        families = "/".join(f for f in FAMILIES if f in spec.families)
        rows.append(f"{spec.alias}{f' ({families})' if families else ''} {gb(resident.reservation())}")
    report.facts["models"] = [{"alias": r.name, "families": sorted(r.spec.families), "bytes": r.reservation(),
                               "context_window": r.window} for r in models.residents]
    cap = f"a {gb(models.cap)} memory cap" if models.cap else "no memory cap"
    report.add("model", "ok", f"{len(models.residents)} models under {cap}: {', '.join(rows)}")


def claude_install_command() -> str:
    from .launch import INSTALL_CLAUDE_CODE

    if shutil.which("npm"):
        return INSTALL_CLAUDE_CODE
    if sys.platform == "darwin" and shutil.which("brew"):
        return f"brew install node && {INSTALL_CLAUDE_CODE}"
    return f"install Node.js 18 or later (https://nodejs.org), then {INSTALL_CLAUDE_CODE}"


def check_claude(report: Report) -> None:
    from .launch import CLAUDE_BIN_ENV, ClientNotFound, find_claude

    try:
        found = find_claude()
    except ClientNotFound as exc:
        fix = claude_install_command() if CLAUDE_BIN_ENV not in os.environ else f"unset {CLAUDE_BIN_ENV}"
        report.add("claude", "problem", exc.problem, fix)
        return
    npm = "npm " + ("found" if shutil.which("npm") else "not found")
    report.add("claude", "ok", f"Claude Code at {found} ({npm})")


def check_port(report: Report, settings: ServerSettings) -> None:
    from .launch import PortTaken, base_url, server_health

    url = base_url(settings.host, settings.port)
    try:
        health = server_health(url)
    except PortTaken:
        report.add("port", "problem", f"port {settings.port} is taken by another program",
                   f"trimkit launch claude --port {settings.port + 1}")
        return
    if health is None:
        report.add("port", "ok", f"{url} is free for trimkit serve")
    else:
        report.add("port", "info", f"a trimkit server runs at {url}: {health.model} ({health.status})")


def self_test_request() -> dict[str, Any]:
    """A small request of Claude Code's shape: billing header, agent prompt, reminders, tools."""
    described = "Run a shell command in the project directory and return its output. " * 40
    schema = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to run"},
            "timeout": {"type": "number", "description": "Milliseconds before the command is stopped"},
        },
        "required": ["command"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    }
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 64000,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.0; cc_entrypoint=cli; cch=00000"},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {
                "type": "text",
                "text": "You are an interactive CLI tool that helps users with software engineering tasks. "
                * 30
                + "\n\nHere is useful information about the environment you are running in:\n<env>\n"
                "Working directory: /home/user/project\nIs directory a git repo: Yes\nPlatform: linux\n</env>",
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "tools": [
            {"name": name, "description": described, "input_schema": schema}
            for name in ("Bash", "BashOutput", "KillShell", "NotebookEdit", "WebFetch", "WebSearch")
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<system-reminder>\nAs you answer the user's questions, you can use the following "
                        "context:\n# claudeMd\nRun the tests with `pytest -q`.\n# currentDate\nToday's date is "
                        "2026-01-01.\n</system-reminder>",
                    },
                    {"type": "text", "text": "list the files in this directory",
                     "cache_control": {"type": "ephemeral"}},
                ],
            }
        ],
    }


def check_pipeline(report: Report, config: Config, settings: ServerSettings) -> None:
    from ..pipeline import Pipeline
    from ..profile import ModelProfile
    from ..render import prompt_text

    profile = ModelProfile.for_tier(settings.tier or "small")
    try:
        result = Pipeline(settings.stages).trim(self_test_request(), profile)
    except Exception as exc:
        where = f" (stages from {config.sources.get('stages')})" if config else ""
        report.add("self-test", "problem", f"the pipeline failed: {type(exc).__name__}: {exc}{where}", "trimkit config")
        return
    before, after = result.report.before, result.report.after
    ratio = before.chars / max(after.chars, 1)
    report.facts["self_test"] = {"chars_before": before.chars, "chars_after": after.chars, "ratio": round(ratio, 2)}
    if "list the files in this directory" not in prompt_text(result.request):
        report.add("self-test", "problem", "the trimmed request lost the user's words", "trimkit config")
        return
    report.add(
        "self-test", "ok",
        f"trimmed a Claude Code request {before.chars:,} → {after.chars:,} chars ({ratio:.1f}× smaller), "
        f"{before.tokens:,} → {after.tokens:,} tokens in {result.report.ms:.2f} ms, tier {result.report.tier}",
    )


def run_checks(args: Any) -> Report:
    from ..config import ConfigFileError, load_config, overrides_from_args

    report = Report()
    check_platform(report)
    mem = check_memory(report)
    check_mlx(report)
    check_server_packages(report)
    try:
        config = load_config(args.config, overrides=overrides_from_args(args))
    except ConfigFileError as exc:
        path = shlex.quote(str(exc.path)) if exc.path else "trimkit.toml"
        report.add("config", "problem", str(exc).splitlines()[0], f"${{EDITOR:-vi}} {path}")  # without the quoted line
        config = None
    else:
        report.add("config", "ok", f"config file {config.path}" if config.path else "no config file; defaults")
    if config is not None:
        settings = config.settings
        check_model(report, settings, config.path, mem)
        check_port(report, settings)
    check_claude(report)
    if config is not None:
        check_pipeline(report, config, config.settings)
    return report


def cmd_doctor(args: Any) -> int:
    report = run_checks(args)
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=2)
        print()
    else:
        print("\n".join(c.line() for c in report.checks))
        problems = sum(c.status == "problem" for c in report.checks)
        print(f"\n{problems} problem{'s' * (problems != 1)} found" if problems else "\nno problems found")
    return 0 if report.ok else 1
