"""The budget stage: fit the context window and the prefill-time target, then cap ``max_tokens``.

The logic lives in :mod:`trimkit.plugins.budget.fitting` (the order of the work),
:mod:`~trimkit.plugins.budget.cuts` (where to cut), :mod:`~trimkit.plugins.budget.conversation`
(what may be dropped together), :mod:`~trimkit.plugins.budget.tool_results` (long results
cut head and tail) and :mod:`~trimkit.plugins.budget.options` (the options and the limits
they set). This stage reads its options, passes the profile and ``state.cached_tokens``,
and records what it cut. It alone decides the prompt's limit
and ``max_tokens``: later stages and the server read its decision from
``state.carry.budget`` (a :class:`~trimkit.stage.BudgetResult`). A server lets it
count the prompt exactly, ask what the backend has cached and remember where it cut
through the profile (``ModelProfile.count_prompt``, ``ModelProfile.cached_prefix``,
``ModelProfile.recent_cuts``).
"""

from trimkit import Stage, hookimpl
from .fitting import fit
from .options import BudgetOptions


def run(state):
    if not state.options.enabled:
        return
    fitted = fit(state.request, state.profile, state.options, state.cached_tokens, state.measure)
    state.request = fitted.request
    state.removed("tool_results", fitted.result_chars_cut)
    state.removed("turns", fitted.turn_chars_dropped)
    state.carry.budget = fitted.result()


@hookimpl
def trimkit_register_stages():
    return [
        Stage(
            name="budget",
            run=run,
            options=BudgetOptions,
            tier_options={
                "small": BudgetOptions(tool_result_max_tokens=4000),
                "medium": BudgetOptions(tool_result_max_tokens=8000),
                "large": BudgetOptions(tool_result_max_tokens=16000),
            },
            order=900,
        )
    ]
