"""Every error trimkit raises on purpose, under one base class.

A caller that embeds trimkit catches :class:`TrimkitError` for "trimkit said no"
and lets anything else surface as the bug it is. Each error carries what a caller
acts on in fields (the key that was wrong, the token counts, the HTTP status to
answer with, the command that fixes it); the message is for people::

    TrimkitError
    ├── ConfigError            a setting, flag or [stages] value that cannot be used  (key)
    │   └── ConfigFileError    ... read from a file, TRIMKIT_* variable or flag        (path, line)
    ├── RequestDecodeError     a request body that is not a Messages request
    │   └── ConversationError  a conversation the model's chat template cannot render
    ├── PromptTooLong          the request cannot fit even trimmed                      (tokens, maximum)
    ├── ModelError             a model directory whose files cannot be read
    │   └── ModelNotFoundError the model is not on this machine                         (problem, fix)
    ├── BackendError           generation failed                            (status, error_type, lasting)
    ├── ApiError               an error answer of the server        (trimkit.server.errors; status, error_type)
    └── CommandError           a command cannot go on               (trimkit.cli.errors; status = exit status)
        └── LaunchError        ``trimkit launch`` cannot go on      (trimkit.cli.launch)

The errors that used to be ``ValueError`` (configuration, request decoding, model
files) still are, so ``except ValueError`` written against older releases keeps
working. Each class is also importable where it was first defined
(``trimkit.ConfigError``, ``trimkit.wire.RequestDecodeError``,
``trimkit.backends.base.BackendError``, …).

This module imports nothing, so every part of trimkit can raise these errors.
"""

from __future__ import annotations

from pathlib import Path


class TrimkitError(Exception):
    """An error trimkit raises on purpose; ``str(exc)`` is a one-line message for people."""


class ConfigError(TrimkitError, ValueError):
    """A configuration value that cannot be used.

    ``key`` is the setting or ``stages.<stage>.<option>`` path it concerns, when one
    is known, so a caller can point at it without reading the message.
    """

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key


class ConfigFileError(ConfigError):
    """A configuration value that cannot be used; the message says where it came from.

    ``path`` and ``line`` locate it in the config file when it came from one.
    """

    def __init__(
        self, message: str, *, path: Path | None = None, key: str | None = None, line: int | None = None
    ):
        super().__init__(message, key=key)
        self.path = path
        self.line = line


class RequestDecodeError(TrimkitError, ValueError):
    """The body is not a valid Messages request; the message is safe to show a client."""


class ConversationError(RequestDecodeError):
    """A conversation the model's chat template cannot render: nothing left to render once
    trimmed, or the template's own refusal (``raise_exception``). The client's to fix, so a 400."""


class PromptTooLong(TrimkitError):
    """Raised by the budget stage when even the most trimmed request cannot fit.

    ``str(exc)`` is the wording clients react to: ``prompt is too long: N tokens > M maximum``.
    """

    def __init__(self, tokens: int, maximum: int):
        self.tokens = tokens
        self.maximum = maximum
        super().__init__(f"prompt is too long: {tokens} tokens > {maximum} maximum")


class ModelError(TrimkitError, ValueError):
    """A model cannot be used: its ``config.json`` or ``tokenizer.json`` cannot be read."""


class ModelNotFoundError(ModelError):
    """The model is neither a local directory nor in the local Hugging Face cache.

    ``problem`` says what is wrong in a few words; ``fix`` is the command that
    would fetch it, when one would.
    """

    def __init__(self, problem: str, fix: str | None = None):
        super().__init__(f"{problem}; run: {fix}" if fix else problem)
        self.problem = problem
        self.fix = fix


class BackendError(TrimkitError):
    """A generation failed; the message is safe to show a client.

    ``status`` and ``error_type`` are the Anthropic error to answer with: a failed
    generation is a 500 ``api_error`` unless the backend knows better (an upstream
    that is down is a 529 ``overloaded_error``; one that rejects the request, a 400).
    ``lasting`` means waiting will not help: the configuration must change (an
    upstream host that does not resolve, a rejected upstream key).
    """

    def __init__(self, message: str, *, status: int = 500, error_type: str = "api_error", lasting: bool = False):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.lasting = lasting
