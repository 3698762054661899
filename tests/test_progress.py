"""Progress where it takes long: the model loading (a bar on a terminal, lines in a log) and a long prefill."""

from __future__ import annotations

import asyncio
import io
import logging
import re

import pytest

from trimkit.backends.base import BackendStatus, GenerationParams, Readiness
from trimkit.cli.progress import PLAIN_EVERY, report_loading

GB = 10**9


class Loading:
    """A backend whose status goes through the given (state, progress) steps, one per look."""

    name = "fake"

    def __init__(self, steps):
        self.steps = list(steps)

    def status(self) -> BackendStatus:
        state, progress, detail = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        return BackendStatus(state, detail=detail, progress=progress)


def loading_steps(total: int, parts: int):
    steps = [(Readiness.LOADING, None, "loading")]
    steps += [(Readiness.LOADING, (total * i // parts, total), "loading") for i in range(parts + 1)]
    return steps + [(Readiness.READY, None, "ok")]


def watch(backend, *, bar: bool) -> tuple[str, list[str]]:
    out, failures = io.StringIO(), []
    report_loading(backend, "big-model", 0.0, on_failure=failures.append, stream=out, interval=0.0,
                   bar=bar).join(10)
    return out.getvalue(), failures


def test_in_a_log_loading_writes_a_plain_line_each_quarter_then_ready():
    out, failures = watch(Loading(loading_steps(8 * GB, 100)), bar=False)
    lines = out.splitlines()
    assert [re.sub(r"\d+ s\)$", "N s)", line) for line in lines[:-1]] == [
        "trimkit: loading big-model: 25 % (2.0 GB of 8.0 GB, N s)",
        "trimkit: loading big-model: 50 % (4.0 GB of 8.0 GB, N s)",
        "trimkit: loading big-model: 75 % (6.0 GB of 8.0 GB, N s)",
    ]
    assert lines[-1].startswith("trimkit: big-model ready in ") and failures == []
    assert "\r" not in out and "\x1b" not in out  # no bar, no terminal codes in a log


def test_on_a_terminal_loading_draws_a_bar_that_is_gone_when_the_model_is_ready():
    out, _ = watch(Loading(loading_steps(8 * GB, 20)), bar=True)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "loading big-model" in shown and " GB" in shown  # the bar, counting bytes, was drawn
    assert "\x1b[2K" in out  # and erased
    assert shown.rstrip().splitlines()[-1].startswith("trimkit: big-model ready in ")


def test_a_failed_load_ends_the_display_with_its_reason():
    steps = [(Readiness.LOADING, (1, 4), "loading"), (Readiness.FAILED, None, "model m failed to load: broken")]
    out, failures = watch(Loading(steps), bar=False)
    assert out.strip().splitlines()[-1] == "trimkit serve: model m failed to load: broken"
    assert failures == ["model m failed to load: broken"]


def test_a_load_without_figures_still_says_it_is_loading(monkeypatch):
    monkeypatch.setattr("trimkit.cli.progress.PLAIN_EVERY", 0.0)
    steps = [(Readiness.LOADING, None, "loading")] * 3 + [(Readiness.READY, None, "ok")]
    out, _ = watch(Loading(steps), bar=False)
    assert re.search(r"^trimkit: loading big-model \(\d+ s\)$", out, re.M)
    assert PLAIN_EVERY > 0


def test_the_mlx_backend_reports_the_bytes_of_weights_it_has_read(tiny_model_dir):
    from trimkit.backends.mlx import MLXBackend

    backend = MLXBackend(str(tiny_model_dir)).wait_ready(60)
    try:
        done, total = backend.load_progress
        weights = sum(p.stat().st_size for p in tiny_model_dir.glob("*.safetensors"))
        assert done == total and 0.8 * weights <= total <= weights
        assert backend.load_seconds is not None and backend.status().progress is None  # ready: nothing to show
    finally:
        backend.close()


def test_a_long_prefill_reports_its_progress_in_the_log(tiny_model_dir, caplog):
    from trimkit.backends.mlx import MLXBackend

    backend = MLXBackend(str(tiny_model_dir), prefill_step_size=32).wait_ready(60)
    backend.prefill_report_seconds = 0.0  # every prefill is "long"; the lines are what is tested, not the clock
    messages = [{"role": "user", "content": "explain this code " * 60}]

    async def run():
        return [e async for e in backend.generate(messages, GenerationParams(max_tokens=2, temperature=0.0))]

    try:
        with caplog.at_level(logging.INFO, logger="trimkit.progress"):
            asyncio.run(run())
        prompt = backend.count_tokens(messages)
    finally:
        backend.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "trimkit.progress"]
    steps = [line for line in lines if " of " in line]
    assert len(steps) >= 3 and all(line.startswith("prefill: ") for line in lines)
    assert f"of {prompt:,} prompt tokens" in steps[0]
    assert lines[-1].startswith(f"prefill: {prompt:,} prompt tokens in ")


def test_a_short_prefill_logs_nothing(tiny_model_dir, caplog):
    from trimkit.backends.mlx import MLXBackend

    backend = MLXBackend(str(tiny_model_dir)).wait_ready(60)

    async def run():
        params = GenerationParams(max_tokens=2, temperature=0.0)
        return [e async for e in backend.generate([{"role": "user", "content": "hi"}], params)]

    try:
        with caplog.at_level(logging.INFO, logger="trimkit.progress"):
            asyncio.run(run())
    finally:
        backend.close()
    assert [r for r in caplog.records if r.name == "trimkit.progress"] == []


@pytest.mark.parametrize(("level", "shown"), [("warning", True), ("info", True), ("error", False)])
def test_serve_writes_progress_lines_at_every_level_but_error_and_critical(level, shown):
    from trimkit.cli.serve import configure_logging

    logger, progress = logging.getLogger("trimkit"), logging.getLogger("trimkit.progress")
    saved = (list(logger.handlers), logger.level, logger.propagate, progress.level)
    try:
        progress.setLevel(logging.INFO)  # as an earlier server in this process may have left it
        configure_logging(level)
        configure_logging(level)
        assert progress.isEnabledFor(logging.INFO) is shown
        assert logger.isEnabledFor(logging.INFO) is (level == "info")
        ours = [h for h in logger.handlers if getattr(h, "trimkit_serve", False)]
        assert len(ours) == 1  # one handler, however often it is called (an earlier server's replaced)
        assert [h for h in logger.handlers if h not in ours] == [
            h for h in saved[0] if not getattr(h, "trimkit_serve", False)]  # others' handlers kept
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
        progress.setLevel(saved[3])


def test_a_serve_that_refuses_to_start_leaves_the_processs_logging_alone(tmp_path, capsys):
    """Logging is set up once the server will serve, so a refusal (here: no key off loopback) run
    in-process leaves no handler on a stream that was stderr then, and trimkit's lines still propagate."""
    from trimkit.cli.main import main

    logger = logging.getLogger("trimkit")
    before = (list(logger.handlers), logger.level, logger.propagate)
    script = tmp_path / "script.json"
    script.write_text('["fine"]')
    assert main(["serve", "--host", "0.0.0.0", "--backend", "replay", "--script", str(script)]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err
    assert (list(logger.handlers), logger.level, logger.propagate) == before
