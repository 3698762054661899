"""The plugin API: finding, ordering, configuring and replacing stages, the hooks and the report."""

from __future__ import annotations

import json
from typing import Annotated

import msgspec
import pytest

from tests.fixtures import claude_code as cc
from trimkit import ConfigError, ModelProfile, Pipeline, Stage, decode_request, hookimpl
from trimkit.measure import Measure
from trimkit.render import prompt_text
from trimkit.resources import plugins_package
from trimkit.wire import TextBlock, system_text

BUILTIN_ORDER = list(plugins_package().BUILTIN)
CORE_ORDER = {"client_noise": 100, "system_prompt": 200, "reminders": 300, "tools": 400, "budget": 900}
FIRST = cc.first_request()
SMALL = ModelProfile.for_tier("small")
REMINDER_TAG = "<system-reminder>"


def stage_names(pipeline: Pipeline) -> list[str]:
    return [stage.name for stage in pipeline.stages]


class Probe:
    """A plugin with one stage that records the options it ran with."""

    def __init__(self, name: str = "probe", order: int = 500, options=None, tier_options=None):
        self.name, self.order = name, order
        self.options = options or {}
        self.tier_options = tier_options or {}
        self.seen: list[dict] = []

    @hookimpl
    def trimkit_register_stages(self):
        return [Stage(name=self.name, run=self.run, options=self.options,
                      tier_options=self.tier_options, order=self.order)]

    def run(self, state):
        self.seen.append(state.options)


class Nested(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    x: str = "stage"
    y: str = "stage"

    def __post_init__(self):
        if self.y == "bad":
            raise ValueError("y: no bad y")


class ExtraOptions:
    def __init__(self, options: dict):
        self.options = options

    @hookimpl
    def trimkit_extra_options(self):
        return self.options


# ---------------------------------------------------------------- stages and their order


def test_builtin_stages_run_in_their_default_order():
    pipeline = Pipeline(entry_points=False)
    assert stage_names(pipeline) == BUILTIN_ORDER
    orders = {stage.name: stage.order for stage in pipeline.stages}
    assert {name: orders[name] for name in CORE_ORDER} == CORE_ORDER
    assert [stage.order for stage in pipeline.stages] == sorted(orders.values())
    result = pipeline.trim(FIRST, SMALL)
    assert [s.name for s in result.report.stages] == BUILTIN_ORDER


def test_a_plugin_stage_slots_in_by_its_order_number():
    assert stage_names(Pipeline(plugins=[Probe(order=899)], entry_points=False)) == [
        *BUILTIN_ORDER[:-1], "probe", "budget"
    ]
    assert stage_names(Pipeline(plugins=[Probe(order=50)], entry_points=False))[0] == "probe"


def test_config_order_reorders_and_runs_only_the_named_stages():
    order = ["tools", "client_noise", "budget"]
    pipeline = Pipeline({"order": order}, entry_points=False)
    assert stage_names(pipeline) == order
    assert [s.name for s in pipeline.trim(FIRST, SMALL).report.stages] == order


@pytest.mark.parametrize("order", [["tools", "nosuch"], ["nosuch"]])
def test_an_unknown_name_in_order_is_a_config_error_naming_it(order):
    with pytest.raises(ConfigError, match="stages.order names unknown stage.*nosuch"):
        Pipeline({"order": order}, entry_points=False)


def test_a_stage_named_twice_in_order_is_a_config_error():
    with pytest.raises(ConfigError, match="stages.order names 'tools' twice"):
        Pipeline({"order": ["tools", "client_noise", "tools"]}, entry_points=False)


@pytest.mark.parametrize("key", ["order", "disabled"])
def test_order_and_disabled_must_be_lists(key):
    with pytest.raises(ConfigError, match=f"stages.{key} must be a list of stage names"):
        Pipeline({key: "tools"}, entry_points=False)


def test_disabled_stages_do_not_run():
    pipeline = Pipeline({"disabled": ["reminders", "tools"]}, entry_points=False)
    assert stage_names(pipeline) == [n for n in BUILTIN_ORDER if n not in ("reminders", "tools")]
    result = pipeline.trim(FIRST, SMALL)
    assert result.request.tools  # the tools stage would have moved them into the prompt
    assert any(REMINDER_TAG in block.text for block in result.request.messages[0].content)


def test_disabled_wins_over_order():
    pipeline = Pipeline({"order": ["tools", "reminders"], "disabled": ["reminders"]}, entry_points=False)
    assert stage_names(pipeline) == ["tools"]


def test_an_unknown_disabled_stage_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="stages.disabled names unknown stage.*nosuch"):
        Pipeline({"disabled": ["nosuch"]}, entry_points=False)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nosuch": {"x": 1}}, "stages.nosuch: no stage of that name"),
        ({"tools": {"alow": ["Read"]}}, "stages.tools.alow: unknown option"),
        ({"tools": {"small": {"alow": ["Read"]}}}, "stages.tools.small.alow: unknown option"),
        ({"budget": {"large": {"nope": 1}}}, "stages.budget.large.nope: unknown option"),
        ({"tools": ["Read"]}, "stages.tools must be a table"),
    ],
)
def test_unknown_tables_and_options_are_config_errors_naming_the_key(config, message):
    with pytest.raises(ConfigError) as error:
        Pipeline(config, entry_points=False)
    assert str(error.value) == message


# ---------------------------------------------------------------- options


def options_seen(pipeline: Pipeline, probe: Probe, tier: str) -> dict:
    pipeline.trim({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
                  ModelProfile.for_tier(tier))
    return probe.seen[-1]


def test_options_merge_from_stage_defaults_to_the_config_tier_table():
    probe = Probe(
        options={"a": "stage", "b": "stage", "c": "stage", "d": "stage", "e": "stage",
                 "nested": {"x": "stage", "y": "stage", "z": "stage", "w": "stage"}},
        tier_options={"small": {"b": "tier", "c": "tier", "d": "tier", "e": "tier", "nested": {"y": "tier"}}},
    )
    extra = ExtraOptions({"probe": {"c": "extra", "d": "extra", "e": "extra", "nested": {"z": "extra"}},
                          "other": {"a": "not mine"}})
    config = {"probe": {"d": "table", "e": "table", "nested": {"w": "table"}, "small": {"e": "tier table"}}}
    pipeline = Pipeline(config, plugins=[probe, extra], entry_points=False)

    assert options_seen(pipeline, probe, "small") == {
        "a": "stage", "b": "tier", "c": "extra", "d": "table", "e": "tier table",
        "nested": {"x": "stage", "y": "tier", "z": "extra", "w": "table"},
    }
    assert options_seen(pipeline, probe, "medium") == {
        "a": "stage", "b": "stage", "c": "extra", "d": "table", "e": "table",
        "nested": {"x": "stage", "y": "stage", "z": "extra", "w": "table"},
    }


def test_an_option_known_only_from_a_tier_default_may_be_set():
    probe = Probe(options={"a": 1}, tier_options={"small": {"only_small": 1}})
    pipeline = Pipeline({"probe": {"only_small": 2, "medium": {"only_small": 3}}}, plugins=[probe], entry_points=False)
    assert options_seen(pipeline, probe, "small") == {"a": 1, "only_small": 2}
    assert options_seen(pipeline, probe, "medium") == {"a": 1, "only_small": 3}


def test_a_nested_option_merges_one_level_deep_only():
    probe = Probe(options={"nested": {"x": {"deep": 1, "kept": 1}, "y": 1}})
    pipeline = Pipeline({"probe": {"nested": {"x": {"deep": 2}}}}, plugins=[probe], entry_points=False)
    assert options_seen(pipeline, probe, "small") == {"nested": {"x": {"deep": 2}, "y": 1}}


def test_the_later_registered_plugin_wins_for_extra_options():
    probe = Probe(options={"a": "stage"})
    first, second = ExtraOptions({"probe": {"a": "first"}}), ExtraOptions({"probe": {"a": "second"}})
    pipeline = Pipeline(plugins=[probe, first, second], entry_points=False)
    assert options_seen(pipeline, probe, "small") == {"a": "second"}


def test_extra_options_tune_a_builtin_stage():
    pipeline = Pipeline(plugins=[ExtraOptions({"tools": {"allow": ["Read", "Grep"]}})], entry_points=False)
    result = pipeline.trim(FIRST, ModelProfile.for_tier("large"))
    assert sorted(result.carry.tool_names) == ["Grep", "Read"]


def test_options_handed_to_a_stage_do_not_leak_into_the_next_trim():
    probe = Probe(options={"nested": {"x": 1}, "items": [1]})
    pipeline = Pipeline(plugins=[probe], entry_points=False)
    options_seen(pipeline, probe, "small")
    assert probe.options == {"nested": {"x": 1}, "items": [1]}
    assert options_seen(pipeline, probe, "small") == {"nested": {"x": 1}, "items": [1]}


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=0)] = 3
    step: float | int = 0.25
    names: tuple[str, ...] = ()
    nested: Nested = Nested()


class TypedProbe(Probe):
    """A third-party stage that declares its options as a Struct, with a tier default."""

    def __init__(self):
        super().__init__(options=Limits, tier_options={"small": Limits(count=1)})


def test_with_plugins_lays_a_configuration_over_the_pipelines_table_by_table():
    base = Pipeline({"budget": {"drop_step": 0.25, "small": {"default_max_tokens": 100}}, "disabled": ["reminders"]})
    built = base.with_plugins(config={"budget": {"small": {"min_output_tokens": 50}}, "disabled": []})
    options = built.options_for("budget", "small")
    assert (options.drop_step, options.default_max_tokens, options.min_output_tokens) == (0.25, 100, 50)
    assert "reminders" in stage_names(built) and "reminders" not in stage_names(base)
    assert base.options_for("budget", "small").min_output_tokens != 50


def test_a_typed_stage_gets_its_options_struct_converted_from_the_configuration():
    probe = TypedProbe()
    config = {"probe": {"names": ["a", "b"], "nested": {"y": "table"}, "large": {"step": 2}}}
    pipeline = Pipeline(config, plugins=[probe], entry_points=False)
    assert options_seen(pipeline, probe, "small") == Limits(count=1, names=("a", "b"), nested=Nested(y="table"))
    assert options_seen(pipeline, probe, "large") == Limits(step=2, names=("a", "b"), nested=Nested(y="table"))
    assert probe.seen[-1] is pipeline.options_for("probe", "large")
    with pytest.raises(AttributeError):
        probe.seen[-1].count = 5  # frozen: one trim cannot change the next one's options


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"step": "lots"}, "stages.probe.step: expected `int | float`, got `str`"),
        ({"count": -1}, "stages.probe.count: expected `int` >= 0"),
        ({"count": True}, "stages.probe.count: expected `int`, got `bool`"),
        ({"names": ["a", 1]}, "stages.probe.names[1]: expected `str`, got `int`"),
        ({"nested": {"z": 1}}, "stages.probe.nested.z: unknown option"),
        ({"nested": {"y": "bad"}}, "stages.probe.nested.y: no bad y"),
        ({"large": {"count": "3"}}, "stages.probe.large.count: expected `int`, got `str`"),
        ({"cont": 1}, "stages.probe.cont: unknown option"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_its_key_when_the_pipeline_is_built(table, message):
    with pytest.raises(ConfigError) as error:
        Pipeline({"probe": table}, plugins=[TypedProbe()], entry_points=False)
    assert str(error.value) == message
    assert error.value.key == message.split(":")[0].split("[")[0]


def test_a_bad_extra_option_names_the_plugin_hook():
    with pytest.raises(ConfigError) as error:
        Pipeline(plugins=[TypedProbe(), ExtraOptions({"probe": {"count": -2}})], entry_points=False)
    assert str(error.value) == "stages.probe.count (from a plugin's trimkit_extra_options): expected `int` >= 0"
    assert error.value.key == "stages.probe.count"


def test_a_plain_dict_stage_has_its_keys_checked_but_not_its_values():
    probe = Probe(options={"count": 3})
    with pytest.raises(ConfigError, match="stages.probe.cont: unknown option"):
        Pipeline({"probe": {"cont": 1}}, plugins=[probe], entry_points=False)
    pipeline = Pipeline({"probe": {"count": "lots"}}, plugins=[probe], entry_points=False)
    assert options_seen(pipeline, probe, "small") == {"count": "lots"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"budget": {"drop_step": "lots"}}, "stages.budget.drop_step: expected `int | float`, got `str`"),
        ({"budget": {"large": {"min_output_tokens": -1}}}, "stages.budget.large.min_output_tokens: expected `int` >= 1"),
        ({"tools": {"medium": {"include_examples": "no"}}}, "stages.tools.medium.include_examples: expected `bool`, got `str`"),
        ({"system_prompt": {"mode": "shrink"}}, "stages.system_prompt.mode: invalid enum value 'shrink'"),
        ({"reminders": {"actions": {"todo": "shred"}}}, "stages.reminders.actions.todo: invalid enum value 'shred'"),
    ],
)
def test_every_builtin_stage_checks_its_options_for_every_tier_when_built(config, message):
    with pytest.raises(ConfigError) as error:
        Pipeline(config, entry_points=False)
    assert str(error.value) == message


def test_builtin_stages_read_typed_options():
    pipeline = Pipeline(entry_points=False)
    for stage in pipeline.stages:
        for tier in ("small", "medium", "large"):
            options = pipeline.options_for(stage, tier)
            assert isinstance(options, msgspec.Struct) and isinstance(options, stage.options), stage.name


# ---------------------------------------------------------------- running one stage


def test_run_stage_runs_one_stage_as_trim_runs_it():
    pipeline = Pipeline({"tools": {"small": {"allow": ["Read"]}}}, entry_points=False)
    alone = pipeline.run_stage("tools", FIRST, SMALL)
    assert [s.name for s in alone.report.stages] == ["tools"]
    assert alone.carry.tool_names == ["Read"] and alone.request.tools is None
    assert alone.report.removed == alone.report.stages[0].removed and "tools_dropped" in alone.report.removed
    assert alone.original == decode_request(FIRST)
    assert [m for m in alone.request.messages] == alone.original.messages  # the other stages did not run
    assert pipeline.trim(FIRST, SMALL).carry.tool_names == ["Read"]


def test_run_stage_lays_options_over_the_tiers_and_checks_them():
    pipeline = Pipeline(entry_points=False)
    assert pipeline.run_stage("tools", FIRST, SMALL, options={"allow": ["Grep"]}).carry.tool_names == ["Grep"]
    with pytest.raises(ConfigError, match="stages.tools.allow: expected `array`, got `str`"):
        pipeline.run_stage("tools", FIRST, SMALL, options={"allow": "Grep"})


def test_run_stage_runs_a_disabled_stage_and_calls_no_observer():
    observer = Observer()
    pipeline = Pipeline({"disabled": ["tools"]}, plugins=[observer], entry_points=False)
    assert pipeline.run_stage("tools", FIRST, SMALL).request.tools is None
    assert observer.results == []
    with pytest.raises(ConfigError, match="no stage named 'nosuch'"):
        pipeline.run_stage("nosuch", FIRST, SMALL)


def test_run_stage_applies_prepare_profile():
    result = Pipeline(plugins=[PromoteToLarge()], entry_points=False).run_stage("tools", FIRST, SMALL)
    assert result.profile.tier == "large" and len(result.carry.tool_names) > 6


# ---------------------------------------------------------------- replacing stages


class PlainReminders:
    """A replacement for the built-in ``reminders`` stage that only marks the request."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def trimkit_register_stages(self):
        return [Stage(name="reminders", run=self.run, order=300)]

    def run(self, state):
        self.calls += 1
        system = state.request.system or []
        state.request = msgspec.structs.replace(state.request, system=[*system, TextBlock(text="REPLACED")])


def test_a_blocked_builtin_is_replaced_by_a_stage_of_the_same_name():
    replacement = PlainReminders()
    pipeline = Pipeline(block=["reminders"], plugins=[replacement], entry_points=False)
    assert stage_names(pipeline) == BUILTIN_ORDER
    assert pipeline.pm.get_plugin("reminders") is None
    result = pipeline.trim(FIRST, SMALL)
    assert replacement.calls == 1
    assert "REPLACED" in system_text(result.request)
    # the built-in would have taken every reminder out of the first message on the small tier
    assert any(REMINDER_TAG in block.text for block in result.request.messages[0].content)
    builtin = Pipeline(entry_points=False).trim(FIRST, SMALL)
    assert not any(REMINDER_TAG in block.text for block in builtin.request.messages[0].content)


def test_a_replacement_without_blocking_the_builtin_is_a_config_error():
    with pytest.raises(ConfigError, match="two plugins provide a stage named 'reminders'"):
        Pipeline(plugins=[PlainReminders()], entry_points=False)


def test_two_plugins_with_the_same_stage_name_are_a_config_error():
    with pytest.raises(ConfigError, match="two plugins provide a stage named 'probe'"):
        Pipeline(plugins=[Probe(), Probe()], entry_points=False)


def test_blocking_a_builtin_without_a_replacement_removes_its_stage():
    pipeline = Pipeline(block=["tools"], entry_points=False)
    assert stage_names(pipeline) == [n for n in BUILTIN_ORDER if n != "tools"]


# ---------------------------------------------------------------- the other hooks


class PromoteToLarge:
    def __init__(self):
        self.seen: list[ModelProfile] = []

    @hookimpl
    def trimkit_prepare_profile(self, profile):
        self.seen.append(profile)
        profile.tier = "large"
        profile.context_window = 200_000


def test_prepare_profile_changes_the_tier_of_one_trim_not_the_callers_profile():
    plugin = PromoteToLarge()
    caller = ModelProfile.for_tier("small")
    result = Pipeline(plugins=[plugin], entry_points=False).trim(FIRST, caller)
    assert (caller.tier, caller.context_window) == ("small", 32_768)
    assert plugin.seen[0] is not caller
    assert result.profile.tier == result.report.tier == "large"
    large = Pipeline(entry_points=False).trim(FIRST, ModelProfile.for_tier("large"))
    assert result.carry.tool_names == large.carry.tool_names
    assert len(result.carry.tool_names) > len(Pipeline(entry_points=False).trim(FIRST, caller).carry.tool_names)


class Observer:
    def __init__(self):
        self.results = []

    @hookimpl
    def trimkit_trimmed(self, result):
        self.results.append(result)


def test_trimmed_observers_see_each_finished_result():
    observer = Observer()
    pipeline = Pipeline(plugins=[observer], entry_points=False)
    first = pipeline.trim(FIRST, SMALL)
    second = pipeline.trim(cc.title_request("fix the cart"), SMALL)
    assert observer.results == [first, second]
    assert [s.name for s in observer.results[0].report.stages] == BUILTIN_ORDER
    assert observer.results[0].request.tools is None
    assert observer.results[0].report.after.chars < observer.results[0].report.before.chars


# ---------------------------------------------------------------- the report


@pytest.fixture(scope="module")
def first_result():
    return Pipeline(entry_points=False).trim(FIRST, SMALL)


def test_report_has_one_entry_per_stage_chained_before_to_after(first_result):
    report = first_result.report
    assert [s.name for s in report.stages] == BUILTIN_ORDER
    assert (report.stages[0].chars_before, report.stages[0].tokens_before) == (report.before.chars, report.before.tokens)
    assert (report.stages[-1].chars_after, report.stages[-1].tokens_after) == (report.after.chars, report.after.tokens)
    for stage, following in zip(report.stages, report.stages[1:]):
        assert (stage.chars_after, stage.tokens_after) == (following.chars_before, following.tokens_before)
    assert all(s.ms >= 0 for s in report.stages)
    assert report.ms == pytest.approx(sum(s.ms for s in report.stages))
    assert (report.tier, report.exact_tokens) == ("small", False)


def test_report_sizes_are_the_requests_measured_afresh(first_result):
    report = first_result.report
    assert (report.before.chars, report.before.tokens) == Measure(SMALL).request(decode_request(FIRST))
    assert (report.after.chars, report.after.tokens) == Measure(SMALL).request(first_result.request)
    assert abs(report.after.chars - len(prompt_text(first_result.request))) < 50


def test_report_names_what_each_stage_removed(first_result):
    removed = {s.name: s.removed for s in first_result.report.stages}
    assert set(removed["client_noise"]) == {"billing_header", "cache_control"}
    assert removed["client_noise"]["billing_header"] == len(cc.billing_header("0001"))
    assert {"project", "date", "skills", "agents"} <= set(removed["reminders"])
    assert {"tools_dropped", "tool_descriptions"} <= set(removed["tools"])
    assert removed["budget"] == {}
    assert all(isinstance(v, int) and v > 0 for r in removed.values() for v in r.values())


def test_as_dict_is_the_inspect_json_shape(first_result):
    data = json.loads(json.dumps(first_result.as_dict()))
    assert set(data) == {"before", "after", "stages", "tier", "exact_tokens", "request"}
    assert data["before"] == {"chars": first_result.report.before.chars, "tokens": first_result.report.before.tokens}
    assert set(data["after"]) == {"chars", "tokens"}
    for stage in data["stages"]:
        assert set(stage) == {"name", "chars_before", "chars_after", "tokens_before", "tokens_after", "ms", "removed"}
    assert [s["name"] for s in data["stages"]] == BUILTIN_ORDER
    assert decode_request(data["request"]) == first_result.request
