"""Rendering the jinja2 templates in ``prompts/``.

One shared environment: templates are compiled once and cached by jinja2. A
missing variable is an error (``StrictUndefined``) rather than silently empty
text in a prompt; there is no HTML here, so no autoescaping.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from .resources import prompts_dir


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(prompts_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        auto_reload=False,
    )


def render_template(name: str, **context: Any) -> str:
    """Render ``prompts/<name>`` (for example ``"small.j2"``) with ``context``."""
    return _environment().get_template(name).render(**context)


def template_names() -> list[str]:
    """The templates in ``prompts/``, for checking a name in the configuration."""
    return sorted(_environment().list_templates())
