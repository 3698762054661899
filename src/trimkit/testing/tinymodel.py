"""A tiny random MLX model that mlx-lm loads and runs for real, for tests and benchmarks.

``build_tiny_model(dir)`` writes a complete model directory: a ``llama``
``config.json``, ``model.safetensors`` made by mlx-lm's own llama ``Model`` class
(random weights from a fixed seed), a byte-level BPE ``tokenizer.json`` trained
with ``tokenizers`` on the few lines of text below, and a ``tokenizer_config.json``
with a ChatML chat template. ``mlx_lm.load(dir)`` then works offline. Its output
is noise, but every path a real model takes (chat template, prefill, KV cache,
sampling, streaming detokenization) runs.

The context window is 65,536 tokens: the tokenizer is trained on little text, so
an untrimmed Claude Code request (about 88 KB) comes to roughly 30,000 tokens,
and it must fit next to its trimmed form for the time-to-first-token comparison.
RoPE positions cost nothing to allow.

The same directory serves the real engines the tests start
(:mod:`trimkit.testing.engines`): ``config.json`` names the architecture and dtype,
which vLLM and ``transformers`` need, and the head size is 32 by default because
vLLM's CPU attention supports no smaller one. llama.cpp gets the model as a GGUF
file (:mod:`trimkit.testing.gguf_export`).

Command line: ``python -m trimkit.testing.tinymodel DIR``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
CONTEXT_WINDOW = 65_536

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TRAINING_TEXT = r'''
You are an interactive command line tool that helps users with software engineering tasks.
Use the instructions below and the tools available to you to assist the user.
The user will primarily request you to perform software engineering tasks: solving bugs,
adding new functionality, refactoring code, explaining code, and more.
<system-reminder>
As you answer the user's questions, you can use the following context:
# claudeMd
Codebase and user instructions are shown below. Be sure to adhere to these instructions.
# currentDate
Today's date is 2025-06-01.
</system-reminder>
Here is useful information about the environment you are running in:
<env>
Working directory: /home/user/project
Is directory a git repo: Yes
Platform: linux
OS Version: Linux 6.8.0
</env>
gitStatus: This is the git status at the start of the conversation.
Current branch: main
Recent commits:
a1b2c3d Fix the parser for nested blocks
{"type": "object", "properties": {"file_path": {"type": "string", "description": "The absolute path to the file to read"},
 "offset": {"type": "number", "description": "The line number to start reading from"},
 "limit": {"type": "integer", "minimum": 1}, "replace_all": {"type": "boolean", "default": false}},
 "required": ["file_path"], "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}
{"name": "Bash", "input_schema": {"command": "ls -la", "timeout": 120000, "items": [1, 2, 3], "enum": ["a", "b"]}}
def read_file(path: str, offset: int = 0, limit: int | None = None) -> list[str]:
    """Return the lines of a file, numbered from one."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()[offset:]
    if limit is not None:
        lines = lines[:limit]
    return [f"{number:6}\t{line}" for number, line in enumerate(lines, start=1)]

class Parser:
    def __init__(self, text):
        self.text = text
        self.position = 0

    def parse(self):
        for index, char in enumerate(self.text):
            if char == "<" and self.text.startswith("</", index):
                return self.text[self.position:index]
        raise ValueError("unterminated block")

function add(a, b) { return a + b; }
const result = await fetch(url, { method: "POST", headers: { "content-type": "application/json" } });
$ git diff --stat && npm test -- --watch=false
## Usage
- When making changes to files, first understand the file's code conventions.
- IMPORTANT: never commit changes unless the user explicitly asks you to.
<tool_call><function=Write><parameter=file_path>/tmp/hello.txt</parameter><parameter=content>hello world</parameter></function></tool_call>
The quick brown fox jumps over the lazy dog. 0123456789 !?#%&*()[]{}:;,.'"-_=+/\|~`^@
'''


def train_tokenizer(
    vocab_size: int,
    *,
    special_tokens: tuple[str, ...] = SPECIAL_TOKENS,
    added_tokens: tuple[str, ...] = (),
    text: str = TRAINING_TEXT,
    style: str = "byte_level",
):
    """A BPE tokenizer trained on ``text`` (deterministic).

    ``special_tokens`` are single tokens marked special (a chat template's role
    markers); ``added_tokens`` are single tokens that are not special, as
    Qwen's ``<tool_call>`` and ``<think>`` are. ``style`` is ``"byte_level"``
    (GPT-2-style bytes, as Llama 3, Qwen and most others; mlx-lm streams it with
    its BPE detokenizer) or ``"spm"`` (SentencePiece-style ``▁`` words with byte
    fallback, as Gemma; mlx-lm streams it with its SPM detokenizer).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if style == "spm":
        tokenizer = _spm_tokenizer(vocab_size, special_tokens, text)
    else:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(special_tokens),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    if added_tokens:
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in added_tokens])
    return tokenizer


def _spm_tokenizer(vocab_size: int, special_tokens: tuple[str, ...], text: str):
    """SentencePiece-style BPE: spaces become ``▁``, unknown bytes fall back to ``<0xNN>`` tokens."""
    import json as _json

    from tokenizers import Tokenizer, decoders, models, normalizers, trainers

    bytes_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tokenizer = Tokenizer(models.BPE(byte_fallback=True))
    tokenizer.normalizer = normalizers.Replace(" ", "\u2581")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        show_progress=False,
        max_token_length=16,
    )
    tokenizer.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    # The trainer knows nothing of byte fallback: put the 256 byte tokens after the
    # learnt ones, so any character at all can be encoded.
    data = _json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    for token in bytes_tokens:
        vocab.setdefault(token, len(vocab))
    return Tokenizer.from_str(_json.dumps(data))


def model_config(
    *, layers: int, hidden: int, heads: int, head_dim: int, vocab: int, eos_token_id: int | list[int]
) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": max(1, heads // 2),
        "head_dim": head_dim,
        "vocab_size": vocab,
        "max_position_embeddings": CONTEXT_WINDOW,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "eos_token_id": eos_token_id,
        "torch_dtype": "float32",
    }


def build_tiny_model(
    path: str | Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 1,
    head_dim: int = 32,
    vocab: int = 768,
    seed: int = 0,
    eos_bias: float = 0.0,
) -> Path:
    """Write a tiny random llama model that ``mlx_lm.load(path)`` loads; returns ``path``.

    Prefill of a long prompt on a CPU is almost all attention: score matrices of
    prompt length squared, times ``layers * heads``, each score costing about
    ``head_dim`` multiply-adds and one exponential. Hence one head by default, of
    the smallest size every engine here runs (32: vLLM's CPU attention kernels
    start there; MLX and llama.cpp take any).

    ``eos_bias`` > 0 makes the model end its turns after a few tokens, for clients
    that treat a ``max_tokens`` stop as an error: hidden dimension 0 becomes a
    constant channel (1 in every token's embedding, untouched by the layers), and
    the end-of-sequence token's (tied) output row gets ``1 + eos_bias`` there, so
    its logit is raised by about ``eos_bias`` over every other token's. A negative
    ``eos_bias`` lowers it instead: the model then always runs to ``max_tokens``,
    so a test can stop an engine while its answer is still streaming.
    """
    return write_chatml_model(path, train_tokenizer(vocab), layers=layers, hidden=hidden, heads=heads,
                              head_dim=head_dim, vocab=vocab, seed=seed, eos_bias=eos_bias)


def write_chatml_model(path: str | Path, tokenizer, **shape) -> Path:
    """:func:`write_model` with this model's ChatML template and special tokens: the tiny model
    around another tokenizer that has them (``shape`` as :func:`write_model` takes it)."""
    return write_model(
        path,
        tokenizer,
        tokenizer_config={"bos_token": None, "eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN},
        chat_template=CHAT_TEMPLATE,
        eos_tokens=(EOS_TOKEN,),
        **shape,
    )


def write_model(
    path: str | Path,
    tokenizer,
    *,
    tokenizer_config: dict,
    chat_template: str,
    eos_tokens: tuple[str, ...],
    layers: int,
    hidden: int,
    heads: int,
    head_dim: int,
    vocab: int,
    seed: int,
    eos_bias: float = 0.0,
) -> Path:
    """Write a model directory around ``tokenizer``: config, random weights, tokenizer files.

    ``eos_tokens`` are the tokens that end a turn (the first is the one ``eos_bias``
    favours); ``config.json`` lists them all, as checkpoints with several do.
    ``tokenizer_config`` holds the bos/eos/pad entries and any other keys.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path / "tokenizer.json"))
    eos_ids = [tokenizer.token_to_id(token) for token in eos_tokens]
    vocab = max(vocab, tokenizer.get_vocab_size())

    config = model_config(
        layers=layers, hidden=hidden, heads=heads, head_dim=head_dim, vocab=vocab,
        eos_token_id=eos_ids[0] if len(eos_ids) == 1 else eos_ids,
    )
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                **tokenizer_config,
                "model_max_length": CONTEXT_WINDOW,
                "clean_up_tokenization_spaces": False,
                "chat_template": chat_template,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )

    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    weights = dict(tree_flatten(model.parameters()))
    if eos_bias:
        weights = _with_eos_bias(weights, eos_ids[0], eos_bias)
    mx.save_safetensors(str(path / "model.safetensors"), weights, metadata={"format": "mlx"})
    return path


def _with_eos_bias(weights: dict, eos_id: int, bias: float) -> dict:
    import mlx.core as mx

    out = dict(weights)
    embed = out["model.embed_tokens.weight"]
    column = mx.ones((embed.shape[0], 1), dtype=embed.dtype)
    column[eos_id] = 1.0 + bias
    out["model.embed_tokens.weight"] = mx.concatenate([column, embed[:, 1:]], axis=1)
    for name, weight in weights.items():
        if name.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
            out[name] = mx.concatenate([mx.zeros_like(weight[:1]), weight[1:]], axis=0)
    norm = out["model.norm.weight"]
    out["model.norm.weight"] = mx.concatenate([mx.ones((1,), dtype=norm.dtype), norm[1:]])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trimkit.testing.tinymodel", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="directory to write the model into")
    for name, parameter in inspect.signature(build_tiny_model).parameters.items():
        if parameter.kind is parameter.KEYWORD_ONLY:
            kind = type(parameter.default)
            parser.add_argument("--" + name.replace("_", "-"), type=kind, default=parameter.default)
    options = vars(parser.parse_args(argv))
    start = time.perf_counter()
    path = build_tiny_model(options.pop("dir"), **options)
    print(f"wrote {path} in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
