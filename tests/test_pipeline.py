"""The plugin API: finding, ordering, configuring and replacing stages, the hooks and the report."""

from __future__ import annotations

import json

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
