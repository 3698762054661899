"""Placeholder: the tools stage (being written)."""

from trimkit import Stage, hookimpl


def run(state):
    pass


@hookimpl
def trimkit_register_stages():
    return [Stage(name="tools", run=run, order=400)]
