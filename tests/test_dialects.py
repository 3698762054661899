"""Choosing a tool-call dialect from a chat template or vocabulary, and the dialect interface."""

from __future__ import annotations

import pytest

from trimkit.toolcalls.dialects import DEFAULT, DIALECTS, dialect_for, dialect_named

# One line of each family's chat template, in the published format (written here, not copied).
TEMPLATES = {
    "harmony": "{{- '<|start|>assistant<|channel|>final<|message|>' + message.content + '<|end|>' }}",
    "gemma4": "{{- '<|tool_call>call:' + function['name'] + '{' -}}{{- '}<tool_call|>' -}}",
    "minimax_m2": "{{- '<minimax:tool_call>' ~ '\\n' }}<invoke name=\"{{ name }}\">",
    "deepseek": "{{'<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['function']['name'] + '<｜tool▁sep｜>'}}",
    "glm47": "{{ '<tool_call>' + tc.name }}{% for k, v in args.items() %}<arg_key>{{ k }}</arg_key><arg_value>{{ v }}</arg_value>{% endfor %}",
    "mistral": "{{- '[TOOL_CALLS][' }}{{ tool_calls | tojson }}",
    "qwen3_coder": "{{- '<tool_call>\\n<function=' + tool_call.name + '>\\n' }}",
    "llama3_json": "{{- '<|python_tag|>' + tool_call.name + '.call(' }}",
    "hermes": "{{- '<tool_call>\\n{\"name\": \"' }}{{- tool_call.name }}{{- '\", \"arguments\": ' }}",
}


@pytest.mark.parametrize("name", TEMPLATES)
def test_each_family_template_picks_its_dialect(name):
    assert dialect_for(TEMPLATES[name], {}).name == name


def test_a_template_without_tool_markup_gets_trimkits_xml():
    chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    assert dialect_for(chatml, {"<|im_start|>": 1, "<|im_end|>": 2}) is DEFAULT
    assert dialect_for(None) is DEFAULT and DEFAULT.name == "xml"


@pytest.mark.parametrize(
    "vocab, name",
    [
        ({"<|channel|>", "<|message|>", "<|call|>"}, "harmony"),
        ({"<|tool_call>", "<tool_call|>"}, "gemma4"),
        ({"[TOOL_CALLS]", "[ARGS]"}, "mistral"),
        ({"<arg_key>", "<tool_call>"}, "glm47"),
        ({"<｜tool▁calls▁begin｜>"}, "deepseek"),
    ],
)
def test_the_vocabulary_decides_when_the_template_does_not(vocab, name):
    assert dialect_for("{{ messages }}", vocab).name == name


def test_dialects_are_found_by_name_and_an_unknown_name_lists_the_known_ones():
    for dialect in DIALECTS:
        assert dialect_named(dialect.name) is dialect
        assert dialect.call_markers and all(dialect.call_markers)
    with pytest.raises(KeyError, match="qwen3_coder"):
        dialect_named("nope")


def test_every_dialect_makes_an_independent_reader():
    for dialect in DIALECTS:
        one, two = dialect.reader(["Bash"], thinking_open=False), dialect.reader(["Bash"], thinking_open=False)
        assert one.feed("plain words") + one.finish() == ["plain words"]
        assert two.finish() == []


@pytest.mark.parametrize("name", ["gemma4", "glm47", "minimax_m2", "qwen3_coder", "mistral", "hermes"])
def test_detection_agrees_with_mlx_lm(name):
    tokenizer_utils = pytest.importorskip("mlx_lm.tokenizer_utils")
    expected = {"hermes": "json_tools"}.get(name, name)

    class Tokenizer:
        chat_template = TEMPLATES[name] + ("{{ tool_call.name }}" if name == "hermes" else "")

        def get_vocab(self):
            return {}

    assert tokenizer_utils._infer_tool_parser(Tokenizer()) == expected
    assert dialect_for(Tokenizer.chat_template).name == name
