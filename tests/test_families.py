"""Family-shaped tiny models: their tokens, forced generation through the MLX backend, reasoning
opened by the prompt, and a prompt that grows turn by turn in either convention."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("mlx_lm")

from tests.fixtures import claude_code as cc
from trimkit.backends.base import Finished, GenerationParams, TextDelta
from trimkit.backends.mlx import MLXBackend
from trimkit.render import Chat
from trimkit.testing.families import FAMILIES, Call, Reply, Script, family, markup, plain, session_prompts

NAMES = sorted(FAMILIES)


@pytest.fixture(scope="module")
def backends(family_model):
    """``backends(name)``: an MLX backend on that family's tiny model, forcing what its Script holds."""
    made: dict[str, tuple[MLXBackend, Script]] = {}

    def get(name: str) -> tuple[MLXBackend, Script]:
        if name not in made:
            script = Script(family_model(name))
            made[name] = (MLXBackend(str(family_model(name)), logits_processors=script).wait_ready(30), script)
        return made[name]

    yield get
    for backend, _ in made.values():
        backend.close()


def generate(backend: MLXBackend, chat) -> tuple[str, Finished]:
    async def run():
        return [e async for e in backend.generate(chat, GenerationParams(max_tokens=400, temperature=1.0))]

    events = asyncio.run(run())
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1]


def hello_chat(thinking: bool | None = None) -> Chat:
    return Chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}], thinking=thinking)


@pytest.mark.parametrize("name", NAMES)
def test_the_tokenizer_has_the_family_markers_as_single_tokens(name, backends):
    backend, _ = backends(name)
    fam = family(name)
    for token in fam.special_tokens + fam.added_tokens:
        assert len(backend.tokenizer.encode(token, add_special_tokens=False)) == 1, token
    assert set(fam.special_tokens) <= backend.special_tokens
    assert not set(fam.added_tokens) & backend.special_tokens  # Qwen's <tool_call> is a marker, not special


@pytest.mark.parametrize("name", NAMES)
def test_the_backend_recognises_each_familys_tool_format(name, backends):
    from trimkit.toolcalls.dialects import dialect_for

    backend, _ = backends(name)
    assert dialect_for(backend.chat_template, backend.vocab).name == family(name).dialect
    assert backend.renders_tools


@pytest.mark.parametrize("name", NAMES)
def test_forced_generation_says_the_scripted_reply_token_for_token(name, backends):
    backend, script = backends(name)
    fam = family(name)
    end = fam.eos[0]
    value = f"a {end} b </parameter> c"  # an end-of-turn token's text inside a value must not end the turn
    reply = Reply(text="I'll read it.", calls=(Call("Read", {"file_path": value, "limit": 3}),),
                  thinking="The file first.")
    segments = fam.write(reply, thinking=True)
    script.push(segments)
    text, finished = generate(backend, hello_chat(True))
    spoken = "".join(s.text for s in segments)
    assert spoken.endswith(segments[-1].text) and text == spoken[: -len(segments[-1].text)]
    assert value in text
    assert finished.finish == "stop"
    assert script.pending == 0


def test_an_empty_script_leaves_generation_alone(backends):
    backend, script = backends("qwen3_coder")
    assert script.pending == 0
    _, finished = generate(backend, hello_chat())
    assert finished.output_tokens >= 1


def test_special_token_text_in_plain_segments_is_spelled_out(family_model):
    script = Script(family_model("qwen3_coder"))
    marker, spelled = script.tokenizer.token_to_id("<|im_end|>"), script.tokenizer.encode("<|im_end|>").ids
    script.push([markup("<|im_end|>")], [plain("<|im_end|>")])
    first, second = script([1]), script([2])
    assert first[0].tokens == [marker] and spelled == [marker]
    assert second[0].tokens != [marker] and len(second[0].tokens) > 1
    assert script.decode(second[0].tokens) == "<|im_end|>"
    assert script.prompts == [[1], [2]]


OPENS_THINKING = {  # family: (thinking on, thinking off)
    "gemma4": (False, False),  # the model opens <|channel>thought itself; off, the prompt closes it
    "gpt_oss": (False, False),  # harmony's analysis channel is the model's to open
    "glm47": (True, False),
    "minimax_m2": (True, True),  # always opens <think>
    "qwen3_coder": (False, False),
    "qwen3": (True, False),
    "qwen2_5_coder": (False, False),
    "devstral": (False, False),
    "llama3": (False, False),
    "deepseek": (True, False),
}


@pytest.mark.parametrize("name", NAMES)
def test_opens_thinking_reads_the_generation_prompt(name, backends):
    backend, _ = backends(name)
    assert (backend.opens_thinking(hello_chat(True)), backend.opens_thinking(hello_chat(False))) == OPENS_THINKING[name]


def test_a_think_tag_quoted_by_the_user_opens_nothing(backends):
    backend, _ = backends("qwen3_coder")
    chat = Chat([{"role": "user", "content": "what does <think> do?"}])
    assert not backend.opens_thinking(chat)


# --------------------------------------------------------------------------- prefix stability

TURNS = 20


@pytest.mark.parametrize("native", [True, False], ids=["native", "xml"])
@pytest.mark.parametrize("name", NAMES)
def test_each_turn_renders_the_previous_turn_unchanged(name, native, family_template):
    """Turn N+1's prompt starts with turn N's conversation, byte for byte, in either convention.

    Only the generation prompt may differ from how the answer is later shown (GLM-4.7 opens
    ``<think>`` where the history shows ``</think>``): a few tokens, not the conversation.
    """
    prompts = session_prompts(family_template(name), cc.session_prefixes(TURNS), native=native)
    held = sum(after.startswith(bare) for (_, bare), (after, _) in zip(prompts, prompts[1:]))
    assert held == TURNS
    assert all(full.startswith(bare) and len(full) - len(bare) < 100 for full, bare in prompts)
