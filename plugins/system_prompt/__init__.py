"""The system_prompt stage: a compact system prompt per size tier for a recognised agent prompt.

Claude Code's own system prompt is about 6,000 characters of guidance written for a
frontier model. For small and medium models it is replaced by ``prompts/<tier>.j2``,
which speaks only of the tools the client offers, then keeps every line of the original
that is neither a fact trimkit reads nor the agent's own known text (text the user
appended, an output style, project instructions, a section a newer version added:
see :mod:`trimkit.agent_context`), and ends with the environment facts and the git
snapshot (``prompts/environment.j2``). The large tier keeps the original text (as a
list of blocks). Either way ``state.carry.recognized_agent`` gets the agent's name
(``trimkit inspect`` shows it). A system prompt that is not recognised (an SDK user's
own) is left exactly as it came.

Options: :class:`SystemPromptOptions`.

The same system prompt arrives every turn, so the work is memoized on its text.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

import msgspec

from trimkit import Stage, hookimpl
from trimkit.agent_context import Environment, KnownLines, facts_in_tools
from trimkit.memo import memoized
from trimkit.templates import render_template, template_names
from trimkit.wire import TextBlock
from .recognition import recognize

FALLBACK_TEMPLATE = "medium.j2"
CACHE_CHARS = 16 * 1024 * 1024
"""Characters of client text each memoized step keeps results for (a system prompt repeats every turn)."""
Count = Annotated[int, msgspec.Meta(ge=0)]


class SystemPromptOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to treat a recognised agent system prompt (``[stages.system_prompt]``).

    * ``mode``: ``"auto"`` replaces a recognised prompt when the tier has a template
      (small and medium by default) and keeps it otherwise; ``"keep"`` never replaces
      it; ``"replace"`` always does, with ``medium.j2`` when the tier names no template.
    * ``template``: the template in ``prompts/`` to render (none, or ``""``, keeps the
      original).
    * ``max_git_status_lines``: status lines kept in the snapshot; the rest become one
      marker line.
    * ``max_recent_commits``: recent commits kept in the snapshot, newest first.
    * ``known_text``: more text to treat as the agent's own (each line of it), for an
      agent or a version the built-in catalogue does not know.
    """

    mode: Literal["auto", "keep", "replace"] = "auto"
    template: str | None = None
    max_git_status_lines: Count = 30
    max_recent_commits: Count = 10
    known_text: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.template and self.template not in template_names():
            raise ValueError(f"template: no {self.template!r} in prompts/ (it has {', '.join(template_names())})")

    @property
    def chosen_template(self) -> str | None:
        """The template to render under ``mode``, or None to keep the original prompt."""
        if self.mode == "keep":
            return None
        if self.mode == "replace":
            return self.template or FALLBACK_TEMPLATE
        return self.template or None


TOOL_ROLES = ("read", "edit", "write", "bash", "glob", "grep", "todowrite", "webfetch")


class OfferedTools(NamedTuple):
    """The client's own name for each kind of tool it offers, ``""`` for those it does not.

    Templates name tools through it (``tools.read`` is ``Read`` for Claude Code and
    ``read`` for OpenCode), so a compact prompt never speaks of a tool the model does
    not have.
    """

    read: str = ""
    edit: str = ""
    write: str = ""
    bash: str = ""
    glob: str = ""
    grep: str = ""
    todowrite: str = ""
    webfetch: str = ""

    @classmethod
    def of(cls, names: tuple[str, ...]) -> "OfferedTools":
        by_role: dict[str, str] = {}
        for name in names:
            if name.lower() in TOOL_ROLES:
                by_role.setdefault(name.lower(), name)
        return cls(**by_role)


class Prepared(NamedTuple):
    """A recognised prompt: the agent's name and the replacement (None where the tier keeps the original)."""

    agent: str
    replacement: TextBlock | None


@memoized(CACHE_CHARS)
def _known(template: str | None, known_text: tuple[str, ...]) -> KnownLines:
    """The catalogue, ``known_text``, and the lines of the compact prompt itself: a prompt
    trimkit wrote reads as known, so trimming it again changes nothing."""
    own = []
    if template:
        for names in ((), tuple(role.capitalize() for role in TOOL_ROLES), TOOL_ROLES):
            own.append(render_template(template, env=None, git=None, environment="", agent="",
                                       kept="", tools=OfferedTools.of(names)))
    return KnownLines.with_text((*known_text, *own))


@memoized(CACHE_CHARS)
def prepare(
    texts: tuple[str, ...],
    template: str | None,
    max_git_status_lines: int,
    max_recent_commits: int,
    tool_names: tuple[str, ...] = (),
    known_text: tuple[str, ...] = (),
    tool_facts: tuple[tuple[str, str], ...] = (),
) -> Prepared | None:
    """Recognise the system prompt made of ``texts`` and render what replaces it, if anything.

    ``tool_facts`` are facts the client stated only in tool descriptions; they fill in
    what the prompt did not say."""
    agent = recognize("\n\n".join(texts), _known(template, known_text))
    if agent is None:
        return None
    if not template:
        return Prepared(agent.agent, None)
    env = agent.environment.merged(Environment(**dict(tool_facts)))
    git = env.git.truncated(max_git_status_lines, max_recent_commits) if env.git else None
    environment = render_template("environment.j2", env=env, git=git).strip("\n")
    text = render_template(
        template, env=env, git=git, environment=environment, agent=agent.agent,
        kept=agent.kept, tools=OfferedTools.of(tool_names),
    )
    return Prepared(agent.agent, TextBlock(text=text.strip("\n")))


def run(state) -> None:
    system = state.request.system
    if not system:
        return
    texts = (system,) if isinstance(system, str) else tuple(block.text for block in system)
    options = state.options
    tools = state.request.tools or ()
    prepared = prepare(
        texts, options.chosen_template, options.max_git_status_lines, options.max_recent_commits,
        tuple(tool.name for tool in tools if tool.type in (None, "custom")), options.known_text,
        facts_in_tools(tool.description for tool in tools),
    )
    if prepared is None:
        return
    state.carry.recognized_agent = prepared.agent
    if prepared.replacement is not None:
        state.request = msgspec.structs.replace(state.request, system=[prepared.replacement])
        before = sum(map(len, texts)) + 2 * (len(texts) - 1)
        state.removed("system_prompt", max(0, before - len(prepared.replacement.text)))
    elif isinstance(system, str):
        state.request = msgspec.structs.replace(state.request, system=[TextBlock(text=system)])


@hookimpl
def trimkit_register_stages():
    return [
        Stage(
            name="system_prompt",
            run=run,
            options=SystemPromptOptions,
            tier_options={
                "small": SystemPromptOptions(template="small.j2", max_recent_commits=3),
                "medium": SystemPromptOptions(template="medium.j2"),
            },
            order=200,
        )
    ]
