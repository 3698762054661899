"""trimkit: trim agent requests for local models; serve them over the Anthropic Messages API.

The library part imports neither MLX nor a web framework::

    import trimkit
    result = trimkit.trim(request_dict, trimkit.ModelProfile.for_tier("small"))
    result.request      # the trimmed MessagesRequest
    result.report       # per-stage sizes, removals and timings
"""

from .errors import TrimkitError
from .hookspecs import hookimpl
from .pipeline import Pipeline, trim
from .profile import ModelProfile
from .stage import BudgetResult, Carry, ConfigError, PromptTooLong, Stage, TrimReport, TrimResult, TrimState
from .wire import MessagesRequest, decode_request, encode, to_builtins
from .resources import install_checkout_finder

install_checkout_finder()

__version__ = "0.1.0"

__all__ = [
    "BudgetResult",
    "Carry",
    "ConfigError",
    "MessagesRequest",
    "ModelProfile",
    "Pipeline",
    "PromptTooLong",
    "Stage",
    "TrimReport",
    "TrimResult",
    "TrimState",
    "TrimkitError",
    "decode_request",
    "encode",
    "hookimpl",
    "to_builtins",
    "trim",
]
