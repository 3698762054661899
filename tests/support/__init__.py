"""Helpers shared by the test files: reading event streams, the official SDK as a strict client,
live servers with scripted backends, and a clean environment for the command.

Each was once copied into several test files; a fix made here reaches all of them.
Live servers and the tiny model stay in :mod:`trimkit.testing`, which benchmarks use too.
"""
