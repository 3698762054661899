"""Fixtures for the whole suite, and the hypothesis profiles the property tests run under.

``TRIMKIT_HYPOTHESIS_PROFILE`` picks the profile (``--hypothesis-profile`` overrides it):

- ``ci`` (the default): the same examples on every run (``derandomize``), no example
  database, no deadline. A red run is then a bug that reproduces, never bad luck or a
  busy machine, and the suite takes the same time each run.
- ``dev``: fresh random examples each run, failures remembered in ``.hypothesis/`` and
  replayed first; fewer examples, for quick feedback while changing code.
- ``thorough``: ten times ``ci``'s examples, random, for hunting bugs before a release
  (``TRIMKIT_HYPOTHESIS_PROFILE=thorough pytest -k "not e2e"``).

No profile has a deadline: how long an example takes depends on the machine's load,
and a test must not fail on a timing. Tests set ``max_examples`` only where one
example is costly (a live server), so that the profile decides the rest.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

CI_EXAMPLES = 200
UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}  # a busy machine is no failure

settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, database=None, print_blob=True, **UNTIMED)
settings.register_profile("dev", max_examples=CI_EXAMPLES // 4, **UNTIMED)
settings.register_profile("thorough", max_examples=CI_EXAMPLES * 10, **UNTIMED)
settings.load_profile(os.environ.get("TRIMKIT_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random MLX model directory (see trimkit.testing.tinymodel), built once per run.

    Tests that use it are skipped where MLX is not installed (``mlx[cpu]`` on Linux).
    """
    pytest.importorskip("mlx.core", reason="MLX is not installed")
    pytest.importorskip("mlx_lm", reason="mlx-lm is not installed")
    from trimkit.testing.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def _client_command(name: str):
    from trimkit.testing.clients import CLIENTS, ClientUnavailable, install

    try:
        return install(CLIENTS[name], "pinned")
    except ClientUnavailable as exc:
        pytest.skip(f"{name} cannot be installed here: {exc}")


@pytest.fixture(scope="session")
def claude_bin():
    """Claude Code's command at the pinned version, installed from npm into the cache once
    (``TRIMKIT_CLAUDE_BIN`` names another binary)."""
    return _client_command("claude-code")


@pytest.fixture(scope="session")
def opencode_bin():
    """OpenCode's command at the pinned version, installed from npm into the cache once
    (``TRIMKIT_OPENCODE_BIN`` names another binary)."""
    return _client_command("opencode")


class RecordedClients:
    """Recordings of the real clients, made into the cache on first use (see trimkit.testing.recorder)."""

    def __init__(self):
        self._made: dict[tuple[str, str], object] = {}

    def get(self, client: str, version: str):
        """The recordings of ``client`` at ``version`` (``pinned`` or ``newest``); skips when npm cannot install it."""
        from trimkit.testing.clients import CLIENTS, ClientUnavailable
        from trimkit.testing.recorder import load_client_recordings, record_client

        key = (client, version)
        if key not in self._made:
            try:
                self._made[key] = load_client_recordings(record_client(CLIENTS[client], version))
            except ClientUnavailable as exc:
                self._made[key] = exc
        made = self._made[key]
        if isinstance(made, Exception):
            pytest.skip(f"{client} {version} cannot be recorded here: {made}")
        return made


@pytest.fixture(scope="session")
def recorded_clients():
    """Requests recorded from real Claude Code (pinned and newest) and OpenCode, kept in the cache."""
    return RecordedClients()


@pytest.fixture
def no_user_config(tmp_path, monkeypatch):
    """No trimkit.toml, user config or TRIMKIT_* variable of the machine's reaches the code under test.

    HOME and the working directory become ``tmp_path``, which is returned.
    """
    for name in [n for n in os.environ if n.startswith("TRIMKIT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


_skipped_at_collection: list[str] = []


def pytest_collectreport(report):
    if report.skipped:
        _skipped_at_collection.append(report.nodeid)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """A run whose selected files all need something missing here (MLX, say) passes with its
    skips, as a skipped test does, instead of ending with pytest's "no tests collected" (5)."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and _skipped_at_collection:
        session.exitstatus = pytest.ExitCode.OK


def _built_once(tmp_path_factory, folder: str, builder_name: str):
    """``get(name)``: a tiny random model of that family made by ``builder_name`` (trimkit.testing),
    built once per run."""
    pytest.importorskip("mlx.core", reason="MLX is not installed")
    pytest.importorskip("mlx_lm", reason="mlx-lm is not installed")
    from trimkit.testing import families, grammar_models

    builder = getattr(families, builder_name, None) or getattr(grammar_models, builder_name)
    root = tmp_path_factory.mktemp(folder)
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = builder(root / name, name)
        return built[name]

    return get


@pytest.fixture(scope="session")
def family_model(tmp_path_factory):
    """``family_model(name)``: a tiny random model of that family (trimkit.testing.families), built once per run."""
    return _built_once(tmp_path_factory, "families", "build_family_model")


@pytest.fixture(scope="session")
def family_closing_model(tmp_path_factory):
    """``family_closing_model(name)``: that family's tiny random model whose values and reasoning end
    (trimkit.testing.grammar_models.build_family_closing_model), built once per run."""
    return _built_once(tmp_path_factory, "closing-families", "build_family_closing_model")


@pytest.fixture(scope="session")
def family_template(family_model):
    """``family_template(name)``: that family's chat template as the server renders it."""
    from trimkit.backends.mlx import load_chat_tokenizer

    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_chat_tokenizer(family_model(name))[1]
        return loaded[name]

    return get


# ---------------------------------------------------------------- real engines (marker: engines)


class Supervised:
    """One engine for the whole run, started on first use and again if a test killed it."""

    def __init__(self, start):
        self.start = start
        self.engine = None

    def get(self):
        from trimkit.testing.engines import EngineUnavailable

        if self.engine is not None and self.engine.alive():
            return self.engine
        if self.engine is not None:
            self.engine.stop()
        try:
            self.engine = self.start()
        except EngineUnavailable as exc:
            pytest.skip(f"engine cannot be had on this machine: {exc}")
        return self.engine

    def stop(self):
        if self.engine is not None:
            self.engine.stop()


@pytest.fixture(scope="session")
def engine_model_dir(tmp_path_factory):
    """The tiny model every engine here loads; its end-of-turn token is pushed down, so each
    answer runs to ``max_tokens`` (usage is exact and a stream lasts long enough to interrupt)."""
    from trimkit.testing.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("engine-model"), eos_bias=-30)


@pytest.fixture(scope="session")
def engine_gguf(engine_model_dir, tmp_path_factory):
    from trimkit.testing.gguf_export import write_gguf

    return write_gguf(engine_model_dir, tmp_path_factory.mktemp("engine-gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def _llama_supervisor(engine_gguf, tmp_path_factory):
    from trimkit.testing.engines import start_llama_server

    logs = tmp_path_factory.mktemp("llama-logs")
    supervisor = Supervised(lambda: start_llama_server(engine_gguf, log_dir=logs))
    yield supervisor
    supervisor.stop()


@pytest.fixture(scope="session")
def _vllm_supervisor(engine_model_dir, tmp_path_factory):
    from trimkit.testing.engines import start_vllm

    logs = tmp_path_factory.mktemp("vllm-logs")
    supervisor = Supervised(lambda: start_vllm(engine_model_dir, *VLLM_TOOL_OPTIONS, log_dir=logs))
    yield supervisor
    supervisor.stop()


VLLM_TOOL_OPTIONS = ("--enable-auto-tool-choice", "--tool-call-parser", "hermes")


@pytest.fixture
def llama_engine(_llama_supervisor):
    """llama.cpp's llama-server on 127.0.0.1 (built once into the cache; see trimkit.testing.engines)."""
    return _llama_supervisor.get()


@pytest.fixture
def vllm_engine(_vllm_supervisor):
    """vLLM's CPU build on 127.0.0.1 (installed once into the cache; see trimkit.testing.engines)."""
    return _vllm_supervisor.get()
