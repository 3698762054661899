"""Placeholder: the budget stage (being written)."""

from trimkit import Stage, hookimpl


def run(state):
    pass


@hookimpl
def trimkit_register_stages():
    return [Stage(name="budget", run=run, order=900)]
