"""Stand-in models for tests of a server of several models: sizes on a meter, loads that can be held,
and model directories that are only sizes (:func:`fake_model`).

Each :class:`StandIn` counts its bytes in a shared :class:`Meter` while loaded (what
MLX's active memory would be), so a test can check that the meter never passes the cap.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from trimkit.backends.base import Backend, BackendStatus, Finished, Readiness, TextDelta
from trimkit.backends.catalog import Catalog, ModelSpec
from trimkit.backends.footprint import Footprint
from trimkit.backends.residency import ModelSet
from trimkit.profile import ModelProfile


class Meter:
    """What the stand-in models hold now, and the most they ever held at once."""

    def __init__(self):
        self.active = 0
        self.peak = 0

    def add(self, n: int) -> None:
        self.active += n
        self.peak = max(self.peak, self.active)


class StandIn(Backend):
    """A model whose weights are ``size`` bytes on the meter while loaded; ``gate`` holds its load."""

    name = "stand-in"

    def __init__(self, alias: str, size: int, meter: Meter, *, gate: threading.Event | None = None,
                 broken: bool = False):
        self.profile = ModelProfile(name=alias, context_window=4096, tier="small")
        self.size, self.meter, self.gate, self.broken = size, meter, gate, broken
        self.loaded = self.loading = False
        self.load_calls = 0

    def status(self) -> BackendStatus:
        if self.broken and self.load_calls:
            return BackendStatus(Readiness.FAILED, detail="failed to load model: the files are damaged")
        if self.loading:
            return BackendStatus(Readiness.LOADING)
        return BackendStatus(Readiness.READY if self.loaded else Readiness.UNLOADED)

    def load(self) -> None:
        self.load_calls += 1
        if self.broken or self.loaded:
            return
        self.loading = True

        def finish():
            if self.gate is not None:
                self.gate.wait(30)
            self.meter.add(self.size)
            self.loaded, self.loading = True, False

        threading.Thread(target=finish, daemon=True).start() if self.gate is not None else finish()

    def unload(self) -> None:
        assert self.loaded
        self.meter.add(-self.size)
        self.loaded = False

    def memory_bytes(self) -> int:
        return self.size if self.loaded else 0

    async def generate(self, messages, params):
        yield TextDelta("ok")
        yield Finished(finish="stop", input_tokens=1, output_tokens=1)


FAMILIES_BY_PLACE = {0: ("opus", "sonnet"), 1: ("haiku",)}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stand_in_set(sizes: dict[str, int], cap: int, *, pinned=(), ttl=None, gates=None,
                 broken=()) -> tuple[ModelSet, Meter, Clock]:
    """A set of stand-ins of ``sizes`` bytes under ``cap``; the first takes opus and sonnet, the
    second (when there is one) haiku. ``gates`` hold loads by name; ``broken`` ones fail to load."""
    meter, clock = Meter(), Clock()
    specs = [ModelSpec(alias=name, model=name, names=frozenset({name}), footprint=Footprint(size, 0),
                       pinned=name in pinned, families=frozenset(FAMILIES_BY_PLACE.get(i, ())))
             for i, (name, size) in enumerate(sizes.items())]
    catalog = Catalog(specs, specs[0], ["claude-*"], managed=True)
    gates = gates or {}
    models = ModelSet(catalog, lambda r: StandIn(r.name, sizes[r.name], meter, gate=gates.get(r.name),
                                                 broken=r.name in broken),
                      cap=cap, idle_ttl=ttl, probe=lambda: meter.active, clock=clock)
    return models, meter, clock


def fake_model(path: Path, weights: int, *, layers: int = 4, kv_heads: int = 2, head_dim: int = 64,
               window: int = 32_768, dtype: str = "bfloat16") -> Path:
    """A model directory as far as sizes go: a config and a weights file of ``weights`` bytes (sparse)."""
    path.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "llama", "num_hidden_layers": layers, "num_attention_heads": kv_heads * 2,
              "num_key_value_heads": kv_heads, "head_dim": head_dim, "hidden_size": 256, "intermediate_size": 512,
              "max_position_embeddings": window, "torch_dtype": dtype}
    (path / "config.json").write_text(json.dumps(config))
    with open(path / "model.safetensors", "wb") as weights_file:
        weights_file.truncate(weights)
    return path
