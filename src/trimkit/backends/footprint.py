"""How much memory a model will hold once loaded, told from its files before it is.

Loading puts the weight files in memory as they are (an MLX checkpoint's tensors are
stored in the dtype and quantization they are used in), so their size is the
weights' size. Serving adds the KV cache: keys and values of every layer for every
token of the context, ``2 × layers × kv_heads × head_dim × bytes`` per token, read
from ``config.json``. The figure is an upper bound for models whose layers do not all
keep the whole context (sliding windows, recurrent layers), which is the safe side.

Prefilling a chunk of the prompt needs working memory too, gone when the chunk is
done: the feed-forward activations of its tokens, and, where attention is not a fused
kernel (MLX on the CPU), the attention scores of the chunk against the whole context,
``heads × chunk × context`` in float32, twice (scores and their softmax). Measured on
the CPU with a random model: a 4,000-token prompt in 2,048-token chunks peaks at 1.3
times that figure, an 8,400-token one at 1.7 times, so twice is kept. On Metal
MLX's fused attention keeps no scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..profile import DEFAULT_CONTEXT_WINDOW

BYTES_PER_DTYPE = {"float32": 4, "float64": 8}
"""KV cache bytes per value; models computing in anything else (bfloat16, float16, quantized) keep 2."""


SCORE_BYTES = 4  # attention scores are computed in float32
LIVE_ACTIVATIONS = 3  # feed-forward tensors alive at once per token (input, gate and up projections)


@dataclass(frozen=True)
class Footprint:
    """What a model directory says about the memory it needs."""

    weights_bytes: int
    kv_bytes_per_token: int
    max_window: int = DEFAULT_CONTEXT_WINDOW
    heads: int = 0
    hidden: int = 0
    intermediate: int = 0

    def kv_bytes(self, window: int) -> int:
        """The KV cache of one conversation of ``window`` tokens."""
        return self.kv_bytes_per_token * window

    def prefill_bytes(self, window: int, chunk: int, *, scores: bool) -> int:
        """Working memory of prefilling a ``chunk`` of a ``window``-token context (``scores``: not fused)."""
        chunk = min(chunk, window)
        working = LIVE_ACTIVATIONS * chunk * (self.hidden + self.intermediate) * SCORE_BYTES
        if scores:
            working += 2 * self.heads * chunk * window * SCORE_BYTES
        return working


def weights_bytes(path: Path) -> int:
    """The size of the model's weight files (``*.safetensors``; links followed, as in the Hugging Face cache)."""
    total = 0
    for file in path.glob("*.safetensors"):
        try:
            total += file.stat().st_size
        except OSError:
            continue
    return total


def kv_bytes_per_token(config: dict) -> int:
    """Bytes of keys and values one token adds to the cache, from a model's ``config.json``."""
    text = config.get("text_config") or config
    layers = int(text.get("num_hidden_layers") or text.get("n_layer") or text.get("num_layers") or 0)
    heads = int(text.get("num_attention_heads") or text.get("n_head") or 1)
    kv_heads = int(text.get("num_key_value_heads") or heads)
    hidden = int(text.get("hidden_size") or text.get("n_embd") or 0)
    head_dim = int(text.get("head_dim") or (hidden // heads if heads else 0))
    dtype = str(text.get("torch_dtype") or config.get("torch_dtype") or "bfloat16")
    return 2 * layers * kv_heads * head_dim * BYTES_PER_DTYPE.get(dtype, 2)


def read_footprint(path: Path) -> Footprint:
    """The footprint of the model in directory ``path``; zeros for what its files do not say."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    if not isinstance(config, dict):
        config = {}
    text = config.get("text_config") or config
    window = text.get("max_position_embeddings") or config.get("max_position_embeddings") or DEFAULT_CONTEXT_WINDOW
    try:
        per_token = kv_bytes_per_token(config)
        heads = int(text.get("num_attention_heads") or text.get("n_head") or 0)
        hidden = int(text.get("hidden_size") or text.get("n_embd") or 0)
        intermediate = int(text.get("intermediate_size") or text.get("n_inner") or 0)
    except (TypeError, ValueError):
        per_token = heads = hidden = intermediate = 0
    return Footprint(weights_bytes(path), per_token, int(window), heads, hidden, intermediate)


def scores_materialized() -> bool:
    """Whether MLX holds whole attention score matrices when prefilling: on the CPU it does; the
    GPU's attention is a fused kernel. Imports ``mlx.core`` (light) to ask for the device."""
    try:
        import mlx.core as mx
    except ImportError:
        return True
    return mx.default_device().type == mx.cpu
