"""Placeholder: the reminders stage (being written)."""

from trimkit import Stage, hookimpl


def run(state):
    pass


@hookimpl
def trimkit_register_stages():
    return [Stage(name="reminders", run=run, order=300)]
