"""Placeholder: the system_prompt stage (being written)."""

from trimkit import Stage, hookimpl


def run(state):
    pass


@hookimpl
def trimkit_register_stages():
    return [Stage(name="system_prompt", run=run, order=200)]
