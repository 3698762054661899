"""Helpers for tests and benchmarks: run a live trimkit server on 127.0.0.1.

``LiveServer`` runs the app under uvicorn on a background thread with its own
event loop, on a free port, and stops it on exit; ``live_app`` does so for the
trimkit app. ``spawn_server`` starts ``trimkit serve`` as a separate process and
``spawn_mlx_lm_server`` mlx-lm's own server, each waiting until ``/health`` answers;
``stop_server`` stops either.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``with LiveServer(app) as server: server.url`` — uvicorn on a thread.

    ``settings`` (the app's) give the connection limits and timeouts that ``trimkit
    serve`` would use (:mod:`trimkit.server.listen`); without them, plain uvicorn.
    """

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 30, settings=None):
        import uvicorn

        if settings is not None:
            from trimkit.server.listen import uvicorn_server

            self.server = uvicorn_server(app, settings, host=host, port=port, log_level="warning")
        else:
            self.server = uvicorn.Server(uvicorn.Config(
                app, host=host, port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
            ))
        self.config = self.server.config
        self.thread = threading.Thread(target=self.server.run, name="trimkit-live-server", daemon=True)
        self.timeout = timeout
        self.host = host

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("trimkit test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def live_app(kind: str, backend=None, *, pipeline=None, **settings) -> LiveServer:
    """``with live_app("replay", backend, api_key="k") as server:`` — the trimkit app on a free port.

    ``kind`` is the settings' backend name; ``backend`` (built from the settings when
    None) stays the caller's to close. Imports the server only when called, so this
    module stays light.
    """
    from trimkit.server import ServerSettings, create_app

    chosen = ServerSettings(backend=kind, **settings)
    return LiveServer(create_app(chosen, backend=backend, pipeline=pipeline), settings=chosen)


def wait_for_health(url: str, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"trimkit serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url}/health did not answer within {timeout} s")


def spawn_and_wait(command: Sequence[str], port: int, *, env: dict | None = None,
                   cwd: str | Path | None = None, timeout: float = 60, what: str = "server") -> tuple[subprocess.Popen, str]:
    """Start ``command`` (a server listening on 127.0.0.1:``port``) and wait until ``/health`` answers."""
    proc = subprocess.Popen(
        list(command),
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, timeout, proc)
    except Exception as exc:
        proc.kill()
        output = proc.communicate(timeout=5)[0]
        raise RuntimeError(f"{what} did not become healthy ({exc}):\n{output}") from None
    return proc, url


def spawn_server(args: Sequence[str], *, env: dict | None = None, cwd: str | Path | None = None,
                 timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """Start ``trimkit serve ARGS --port FREE`` and wait for it; returns (process, base url)."""
    port = free_port()
    command = [sys.executable, "-m", "trimkit.cli", "serve", "--port", str(port), *args]
    return spawn_and_wait(command, port, env=env, cwd=cwd, timeout=timeout, what="trimkit serve")


def spawn_mlx_lm_server(model_dir: str | Path, *options: str, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """``python -m mlx_lm server --model MODEL_DIR OPTIONS`` on a free port; returns (process, base url).

    Offline, with an empty Hugging Face cache, so its model listing shows only the
    served model and nothing is fetched.
    """
    port = free_port()
    cache = tempfile.mkdtemp(prefix="trimkit-empty-hf-cache-")
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": cache, "HF_HOME": cache}
    command = [sys.executable, "-m", "mlx_lm", "server", "--model", str(model_dir), "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "WARNING", *options]
    return spawn_and_wait(command, port, env=env, timeout=timeout, what="mlx_lm.server")


def stop_server(proc: subprocess.Popen) -> str:
    """Stop a spawned server (SIGTERM, then SIGKILL after 10 s); returns its output."""
    proc.terminate()
    try:
        return proc.communicate(timeout=10)[0] or ""
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0] or ""
