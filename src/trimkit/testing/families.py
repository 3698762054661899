"""Tiny models in the shape of the model families people run, and generation forced to a script.

Each :class:`Family` is what trimkit needs to know to act like one family of models
(Gemma 4, gpt-oss, GLM-4.7, MiniMax-M2, Qwen3-Coder, Qwen3.6, Qwen2.5-Coder, Devstral,
Llama 3.x, DeepSeek-V3.1): the tokenizer's special tokens, the chat template (in
``chat_templates/``, written for these tests in each family's published format), the
tokens that end a turn, and how the model writes a reply — its reasoning, its text and
its tool calls — in that family's markup.

:func:`build_family_model` writes a tiny random model (see :mod:`.tinymodel`) whose
tokenizer carries the family's special tokens and whose ``tokenizer_config.json`` holds
its template. :class:`Script` then makes that model "say" exactly a scripted reply: a
logits processor lets only the next scripted token through, so tokenization, special
tokens, mlx-lm's streaming detokenizer and trimkit's reader are the real ones, while the
words are the test's. A reply is a list of :class:`Segment` s: markup, in which special
tokens are special, and plain text (a value a model writes), in which the text of a
special token is spelled out in ordinary tokens, as a model writing prose would.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..pipeline import Pipeline
from ..profile import ModelProfile
from ..render import chat_messages, native_chat
from .tinymodel import TRAINING_TEXT, train_tokenizer, write_model

TEMPLATES = Path(__file__).with_name("chat_templates")


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """What the model means to say: reasoning, then text, then tool calls."""

    text: str = ""
    calls: tuple[Call, ...] = ()
    thinking: str = ""


@dataclass(frozen=True)
class Segment:
    text: str
    markup: bool = True  # False: special-token text inside it is spelled out, not a special token


def markup(text: str) -> Segment:
    return Segment(text, True)


def plain(text: str) -> Segment:
    return Segment(text, False)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Family:
    """One family's tokens, template and way of writing replies.

    ``special_tokens`` are marked special in the tokenizer, ``added_tokens`` are single
    tokens that are not special (Qwen's ``<tool_call>``). ``eos`` lists the tokens that end
    a turn; the first is the tokenizer's ``eos_token``. ``dialect`` names the reader that
    should take this family's output (``trimkit.toolcalls.dialects``). ``reasons`` says
    whether the family writes reasoning at all; ``single_call`` that it makes one call a
    turn.
    """

    name: str
    template_file: str
    dialect: str
    special_tokens: tuple[str, ...]
    eos: tuple[str, ...]
    bos: str | None = None
    pad: str | None = None
    added_tokens: tuple[str, ...] = ()
    style: str = "byte_level"
    reasons: bool = True
    single_call: bool = False
    writer: Callable[["Family", Reply, bool], list[Segment]] = field(default=None, repr=False)  # type: ignore[assignment]
    sample: str = ""

    @property
    def chat_template(self) -> str:
        return (TEMPLATES / self.template_file).read_text(encoding="utf-8")

    def write(self, reply: Reply, *, thinking: bool) -> list[Segment]:
        """The raw output of a model of this family meaning ``reply``, ending with its end token.

        ``thinking`` is the request's setting, which the template turns into an open or a
        closed reasoning section in the prompt: families whose template closes it write no
        reasoning then; families that always reason (gpt-oss, MiniMax-M2) write it anyway.
        """
        return self.writer(self, reply, thinking)

    def sloppy(self, call: Call) -> list[Segment]:
        """A call as a small model slips on it: JSON written the Python way (single quotes,
        ``False``, a trailing comma) where the family's arguments are JSON, else the tool's
        name in the wrong case."""
        return SLOPPY[self.name](call)


# --------------------------------------------------------------------------- writers


def _gemma_value(value: Any) -> str:
    if isinstance(value, str):
        return '<|"|>' + value + '<|"|>'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_gemma_value(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_gemma_value(v) for v in value) + "]"
    return json.dumps(value)


def _gemma_call(call: Call) -> list[Segment]:
    out = [markup(f"<|tool_call>call:{call.name}{{")]
    for i, (key, value) in enumerate(sorted(call.arguments.items())):
        out.append(markup(("," if i else "") + key + ":"))
        if isinstance(value, str):
            out += [markup('<|"|>'), plain(value), markup('<|"|>')]
        else:
            out.append(markup(_gemma_value(value)))
    out.append(markup("}<tool_call|>"))
    return out


def _thought_and_text(reply: Reply, thinking: bool, open: str, close: str) -> list[Segment]:
    """The reasoning between the family's markers (when thinking is on and there is some), then the text."""
    out = [markup(open), plain(reply.thinking), markup(close)] if thinking and reply.thinking else []
    return out + ([plain(reply.text)] if reply.text else [])


def _opened_thought_and_text(reply: Reply, thinking: bool, close: str) -> list[Segment]:
    """For a prompt that already opened the reasoning: the reasoning (a stand-in when the reply has
    none, since the marker must be closed), its closing marker, then the text."""
    out = [plain(reply.thinking or "Let me think."), markup(close)] if thinking else []
    return out + ([plain(reply.text)] if reply.text else [])


def write_gemma4(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    out = _thought_and_text(reply, thinking, "<|channel>thought\n", "<channel|>")
    for call in reply.calls:
        out += _gemma_call(call)
    out.append(markup("<|tool_response>" if reply.calls else "<turn|>"))
    return out


def write_harmony(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    out = [markup("<|channel|>analysis<|message|>"), plain(reply.thinking or "Let me think."), markup("<|end|>")]
    if reply.calls:
        call = reply.calls[0]
        out += [
            markup(f"<|start|>assistant<|channel|>commentary to=functions.{call.name} <|constrain|>json<|message|>"),
            plain(_json(call.arguments)),
            markup("<|call|>"),
        ]
    else:
        out += [markup("<|start|>assistant<|channel|>final<|message|>"), plain(reply.text), markup("<|return|>")]
    return out


def write_glm47(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    out = _opened_thought_and_text(reply, thinking, "</think>")  # the prompt ends with <think>
    for call in reply.calls:
        out.append(markup("<tool_call>" + call.name))
        for key, value in call.arguments.items():
            out += [markup(f"<arg_key>{key}</arg_key><arg_value>"),
                    plain(value if isinstance(value, str) else _json(value)), markup("</arg_value>")]
        out.append(markup("</tool_call>"))
    out.append(markup("<|observation|>" if reply.calls else "<|user|>"))
    return out


def _invoke(call: Call) -> list[Segment]:
    out = [markup(f'<invoke name="{call.name}">\n')]
    for key, value in call.arguments.items():
        out += [markup(f'<parameter name="{key}">'), plain(value if isinstance(value, str) else _json(value)),
                markup("</parameter>\n")]
    out.append(markup("</invoke>\n"))
    return out


def write_minimax(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    out = _opened_thought_and_text(reply, True, "\n</think>\n\n")  # the prompt opened <think>
    if reply.calls:
        out.append(markup("\n<minimax:tool_call>\n"))
        for call in reply.calls:
            out += _invoke(call)
        out.append(markup("</minimax:tool_call>"))
    out.append(markup("[e~["))
    return out


def _qwen_calls(calls: Sequence[Call], lead: str) -> list[Segment]:
    out: list[Segment] = []
    for i, call in enumerate(calls):
        out.append(markup((lead if i == 0 else "\n") + f"<tool_call>\n<function={call.name}>\n"))
        for key, value in call.arguments.items():
            text = value if isinstance(value, str) else _json(value)
            out += [markup(f"<parameter={key}>\n"), plain(text), markup("\n</parameter>\n")]
        out.append(markup("</function>\n</tool_call>"))
    return out


def write_qwen3_coder(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    out: list[Segment] = [plain(reply.text)] if reply.text else []
    out += _qwen_calls(reply.calls, "\n" if reply.text else "")
    out.append(markup("<|im_end|>"))
    return out


def write_qwen3(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    out = _opened_thought_and_text(reply, thinking, "\n</think>\n\n")  # the prompt ends with <think>\n
    out += _qwen_calls(reply.calls, "\n\n" if reply.text else "")
    out.append(markup("<|im_end|>"))
    return out


def write_hermes(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    out: list[Segment] = [plain(reply.text)] if reply.text else []
    for i, call in enumerate(reply.calls):
        lead = "\n" if (i or reply.text) else ""
        out += [markup(lead + "<tool_call>\n"), plain(_json({"name": call.name, "arguments": call.arguments})),
                markup("\n</tool_call>")]
    out.append(markup("<|im_end|>"))
    return out


def write_devstral(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    out = _thought_and_text(reply, thinking, "[THINK]", "[/THINK]")
    for call in reply.calls:
        out += [markup(f"[TOOL_CALLS]{call.name}[ARGS]"), plain(_json(call.arguments))]
    out.append(markup("</s>"))
    return out


def write_llama3(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    if reply.calls:
        call = reply.calls[0]
        return [plain(_json({"name": call.name, "parameters": call.arguments})), markup("<|eot_id|>")]
    return [plain(reply.text), markup("<|eot_id|>")]


def write_deepseek(family: Family, reply: Reply, thinking: bool) -> list[Segment]:
    out = _opened_thought_and_text(reply, thinking, "</think>")  # the prompt ends with <think>
    if reply.calls:
        out.append(markup("<｜tool▁calls▁begin｜>"))
        for call in reply.calls:
            out += [markup(f"<｜tool▁call▁begin｜>{call.name}<｜tool▁sep｜>"), plain(_json(call.arguments)),
                    markup("<｜tool▁call▁end｜>")]
        out.append(markup("<｜tool▁calls▁end｜>"))
    out.append(markup("<｜end▁of▁sentence｜>"))
    return out


# --------------------------------------------------------------------------- slips


def _python_dict(arguments: dict[str, Any]) -> str:
    """``{'key': 'value', 'flag': True,}``: single quotes, Python literals and a trailing comma."""
    body = ", ".join(f"'{k}': {v!r}" for k, v in arguments.items())
    return "{" + body + ",}"


def _wrong_case(call: Call) -> Call:
    return Call(call.name.lower() if call.name != call.name.lower() else call.name.upper(), call.arguments)


SLOPPY: dict[str, Callable[[Call], list[Segment]]] = {
    "gemma4": lambda call: _gemma_call(_wrong_case(call)) + [markup("<|tool_response>")],
    "gpt_oss": lambda call: [
        markup(f"<|channel|>commentary to=functions.{call.name} <|constrain|>json<|message|>"),
        plain(_python_dict(call.arguments)), markup("<|call|>"),
    ],
    "glm47": lambda call: write_glm47(FAMILIES["glm47"], Reply(calls=(_wrong_case(call),)), False),
    "minimax_m2": lambda call: write_minimax(FAMILIES["minimax_m2"], Reply(calls=(_wrong_case(call),)), False),
    "qwen3_coder": lambda call: write_qwen3_coder(FAMILIES["qwen3_coder"], Reply(calls=(_wrong_case(call),)), False),
    "qwen3": lambda call: write_qwen3(FAMILIES["qwen3"], Reply(calls=(_wrong_case(call),)), False),
    "qwen2_5_coder": lambda call: [
        markup("<tool_call>\n"),
        plain("{'name': '" + call.name + "', 'arguments': " + _python_dict(call.arguments) + "}"),
        markup("\n</tool_call>"), markup("<|im_end|>"),
    ],
    "devstral": lambda call: [markup(f"[TOOL_CALLS]{call.name}[ARGS]"), plain(_python_dict(call.arguments)),
                              markup("</s>")],
    "llama3": lambda call: [
        plain("{'name': '" + call.name + "', 'parameters': " + _python_dict(call.arguments) + "}"),
        markup("<|eot_id|>"),
    ],
    "deepseek": lambda call: [
        markup(f"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{call.name}<｜tool▁sep｜>"),
        plain(_python_dict(call.arguments)), markup("<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"),
    ],
}

# --------------------------------------------------------------------------- the families

QWEN_ADDED = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>")
CHATML = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="gemma4", template_file="gemma4.jinja", dialect="gemma4", style="spm",
            special_tokens=("<pad>", "<eos>", "<bos>", "<|turn>", "<turn|>", "<|tool>", "<tool|>", "<|tool_call>",
                            "<tool_call|>", "<|tool_response>", "<tool_response|>", '<|"|>', "<|channel>",
                            "<channel|>", "<|think|>", "<|image|>"),
            eos=("<turn|>", "<eos>", "<|tool_response>"), bos="<bos>", pad="<pad>",
            writer=write_gemma4,
            sample='<|turn>model\n<|tool_call>call:Read{file_path:<|"|>/tmp/a.py<|"|>}<tool_call|>',
        ),
        Family(
            name="gpt_oss", template_file="gpt_oss.jinja", dialect="harmony",
            special_tokens=("<|startoftext|>", "<|endoftext|>", "<|start|>", "<|end|>", "<|message|>", "<|channel|>",
                            "<|constrain|>", "<|return|>", "<|call|>"),
            eos=("<|return|>", "<|call|>", "<|endoftext|>"), pad="<|endoftext|>", single_call=True,
            writer=write_harmony,
            sample="<|channel|>commentary to=functions.Read <|constrain|>json<|message|>{\"file_path\": \"/tmp\"}",
        ),
        Family(
            name="glm47", template_file="glm47.jinja", dialect="glm47",
            special_tokens=("<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
                            "<|observation|>", "<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>",
                            "</arg_key>", "<arg_value>", "</arg_value>", "<tool_response>", "</tool_response>"),
            eos=("<|endoftext|>", "<|user|>", "<|observation|>"), pad="<|endoftext|>",
            writer=write_glm47,
            sample="<tool_call>Read<arg_key>file_path</arg_key><arg_value>/tmp/a.py</arg_value></tool_call>",
        ),
        Family(
            name="minimax_m2", template_file="minimax_m2.jinja", dialect="minimax_m2",
            special_tokens=("]~!b[", "]~b]", "[e~[", "<think>", "</think>", "<minimax:tool_call>",
                            "</minimax:tool_call>"),
            eos=("[e~[",), writer=write_minimax,
            sample='<invoke name="Read">\n<parameter name="file_path">/tmp/a.py</parameter>\n</invoke>',
        ),
        Family(
            name="qwen3_coder", template_file="qwen3_coder.jinja", dialect="qwen3_coder",
            special_tokens=CHATML, added_tokens=QWEN_ADDED, eos=("<|im_end|>", "<|endoftext|>"),
            pad="<|endoftext|>", reasons=False, writer=write_qwen3_coder,
            sample="<tool_call>\n<function=Read>\n<parameter=file_path>\n/tmp/a.py\n</parameter>\n</function>",
        ),
        Family(
            name="qwen3", template_file="qwen3.jinja", dialect="qwen3_coder",
            special_tokens=CHATML, added_tokens=QWEN_ADDED, eos=("<|im_end|>", "<|endoftext|>"),
            pad="<|endoftext|>", writer=write_qwen3,
            sample="<think>\nLet me think.\n</think>\n\n<tool_call>\n<function=Read>\n<parameter=file_path>",
        ),
        Family(
            name="qwen2_5_coder", template_file="qwen2_5_coder.jinja", dialect="hermes",
            special_tokens=CHATML, added_tokens=QWEN_ADDED[:4], eos=("<|im_end|>", "<|endoftext|>"),
            pad="<|endoftext|>", reasons=False, writer=write_hermes,
            sample='<tool_call>\n{"name": "Read", "arguments": {"file_path": "/tmp/a.py"}}\n</tool_call>',
        ),
        Family(
            name="devstral", template_file="devstral.jinja", dialect="mistral",
            special_tokens=("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                            "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[ARGS]", "[SYSTEM_PROMPT]",
                            "[/SYSTEM_PROMPT]", "[THINK]", "[/THINK]"),
            eos=("</s>",), bos="<s>", pad="<unk>", writer=write_devstral,
            sample='[TOOL_CALLS]Read[ARGS]{"file_path": "/tmp/a.py"}',
        ),
        Family(
            name="llama3", template_file="llama3.jinja", dialect="llama3_json",
            special_tokens=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                            "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"),
            eos=("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"), bos="<|begin_of_text|>",
            pad="<|finetune_right_pad_id|>", reasons=False, single_call=True, writer=write_llama3,
            sample='{"name": "Read", "parameters": {"file_path": "/tmp/a.py"}}',
        ),
        Family(
            name="deepseek", template_file="deepseek.jinja", dialect="deepseek",
            special_tokens=("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
                            "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>",
                            "<｜tool▁call▁end｜>", "<｜tool▁sep｜>", "<｜tool▁outputs▁begin｜>",
                            "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>",
                            "<｜▁pad▁｜>"),
            added_tokens=("<think>", "</think>"), eos=("<｜end▁of▁sentence｜>",), bos="<｜begin▁of▁sentence｜>",
            pad="<｜▁pad▁｜>", writer=write_deepseek,
            sample='<｜tool▁call▁begin｜>Read<｜tool▁sep｜>{"file_path": "/tmp/a.py"}<｜tool▁call▁end｜>',
        ),
    )
}


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"no family {name!r}; known: {', '.join(FAMILIES)}") from None


# --------------------------------------------------------------------------- building


def session_prompts(template, requests: Iterable[dict], *, native: bool,
                    thinking: str = "adaptive") -> list[tuple[str, str]]:
    """Each request of a session trimmed for a small model whose window never cuts, then rendered with
    a family's chat ``template``: (the prompt, the prompt without the generation prompt), from which
    tests and benchmarks see whether each turn's prompt extends the one before."""
    pipeline = Pipeline()
    profile = ModelProfile.for_tier("small", native_tools=native, context_window=1_000_000, prefill_tps=1e9)
    out = []
    for request in requests:
        result = pipeline.trim({**request, "thinking": {"type": thinking}}, profile)
        chat = native_chat(result.request) if native else chat_messages(result.request)
        out.append((template.text(chat), template.text(chat, generation_prompt=False)))
    return out


def build_family_model(
    path: str | Path,
    name: str,
    *,
    layers: int = 1,
    hidden: int = 64,
    heads: int = 1,
    head_dim: int = 16,
    vocab: int = 768,
    seed: int = 0,
    eos_bias: float = 0.0,
) -> Path:
    """Write a tiny random model of family ``name`` to ``path``; ``mlx_lm.load(path)`` loads it.

    ``eos_bias`` as in :func:`~.tinymodel.build_tiny_model` (it also gives the model the
    constant channel that :func:`~.grammar_models.bias_tokens` raises other tokens with)."""
    fam = family(name)
    text = TRAINING_TEXT + "\n" + fam.sample + "\n"
    tokenizer = train_tokenizer(
        vocab, special_tokens=fam.special_tokens, added_tokens=fam.added_tokens, text=text, style=fam.style
    )
    return write_model(
        path,
        tokenizer,
        tokenizer_config={"bos_token": fam.bos, "eos_token": fam.eos[0], "pad_token": fam.pad},
        chat_template=fam.chat_template,
        eos_tokens=fam.eos,
        layers=layers, hidden=hidden, heads=heads, head_dim=head_dim, vocab=vocab, seed=seed, eos_bias=eos_bias,
    )


# --------------------------------------------------------------------------- forcing


class ForcedTokens:
    """An mlx-lm logits processor that lets only the next token of ``tokens`` through.

    Every other logit becomes -inf, so any sampler picks the scripted token. When the
    script is spent it forces ``end`` (an end-of-turn token), so generation stops.
    """

    def __init__(self, tokens: Sequence[int], end: int):
        self.tokens = list(tokens)
        self.end = end
        self.step = 0

    def __call__(self, history, logits):
        import mlx.core as mx

        target = self.tokens[self.step] if self.step < len(self.tokens) else self.end
        self.step += 1
        allowed = mx.arange(logits.shape[-1]) == target
        return mx.where(allowed, mx.zeros_like(logits), mx.full(logits.shape, -float("inf"), logits.dtype))


def encode_segments(tokenizer, segments: Sequence[Segment]) -> list[int]:
    """Token ids for ``segments`` with the model's own tokenizer (a ``tokenizers.Tokenizer``)."""
    ids: list[int] = []
    for segment in segments:
        if not segment.text:
            continue
        tokenizer.encode_special_tokens = not segment.markup
        try:
            ids += tokenizer.encode(segment.text, add_special_tokens=False).ids
        finally:
            tokenizer.encode_special_tokens = False
    return ids


class Script:
    """Replies to force, one per generation, in order: ``MLXBackend(logits_processors=script)``.

    ``push`` queues a reply (a list of segments, or a string of markup); each generation
    takes the next one. With the queue empty, ``responder`` (if set) is asked for a reply
    to the prompt's text, as a client that sends requests of its own choosing needs;
    otherwise the generation is left alone. ``prompts`` records each generation's prompt
    token ids, for tests that look at what was sent.
    """

    def __init__(self, model_dir: str | Path, end: str | None = None,
                 responder: Callable[[str], Sequence[Segment] | str] | None = None):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        config = json.loads((Path(model_dir) / "config.json").read_text())
        eos = config["eos_token_id"]
        self.end = self.tokenizer.token_to_id(end) if end else (eos[0] if isinstance(eos, list) else eos)
        self._queue: deque[list[int]] = deque()
        self._lock = threading.Lock()
        self.prompts: list[list[int]] = []
        self.responder = responder

    def _encode(self, reply: Sequence[Segment] | str) -> list[int]:
        segments = [markup(reply)] if isinstance(reply, str) else list(reply)
        return encode_segments(self.tokenizer, segments)

    def push(self, *replies: Sequence[Segment] | str) -> "Script":
        with self._lock:
            self._queue.extend(self._encode(reply) for reply in replies)
        return self

    @property
    def pending(self) -> int:
        return len(self._queue)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __call__(self, prompt: Sequence[int]) -> list:
        with self._lock:
            self.prompts.append(list(prompt))
            if self._queue:
                return [ForcedTokens(self._queue.popleft(), self.end)]
            if self.responder is not None:
                return [ForcedTokens(self._encode(self.responder(self.decode(prompt))), self.end)]
            return []

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)
