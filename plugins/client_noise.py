"""Placeholder: the client_noise stage (being written)."""

from trimkit import Stage, hookimpl


def run(state):
    pass


@hookimpl
def trimkit_register_stages():
    return [Stage(name="client_noise", run=run, order=100)]
