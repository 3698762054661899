"""Backends turn rendered chat messages into a stream of model text.

Only :mod:`.base` and :mod:`.replay` are imported eagerly; the MLX backend is
imported when it is chosen, so the library never loads MLX by itself.
"""
