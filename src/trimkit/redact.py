"""Secrets out of text and data before anyone else reads them: captures, error messages, URLs.

What is hidden, as :data:`REDACTED`:

* values of keys named like secrets (``x-api-key``, ``authorization``, ``password``,
  ``client_secret``, ``access_token``, ``private_key``, ``aws_secret_access_key``, …);
* strings shaped like keys: Anthropic and OpenAI (``sk-…``, short ones too), Hugging
  Face (``hf_…``), GitHub, Slack, AWS access key ids (``AKIA…``), Google API keys
  (``AIza…``) and OAuth tokens (``ya29.…``), JWTs (``eyJ….eyJ….…``), the token after
  ``Bearer`` and the value after a name ending in ``secret``, ``password``, ``token``,
  ``api_key`` or ``private_key`` (``DB_PASSWORD=…``, ``"access_token": "…"``), PEM private keys (``-----BEGIN …
  PRIVATE KEY-----`` to its end), and the password in a URL's ``user:password@``
  (a database URL);
* ``extra`` strings (the server's own key), where they stand as whole tokens, in
  values and in the keys of JSON objects alike.

Everything here reads text in one pass: each pattern starts with a literal and
cannot backtrack over what it has read, and private keys and URL passwords are
found with ``str.find``, so a megabyte of hostile text costs linear time.
"""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"

_SECRET_KEYS = frozenset({"xapikey", "apikey", "authorization", "proxyauthorization", "cookie", "setcookie",
                          "password", "passwd", "secret", "privatekey", "credentials"})
_SECRET_ENDINGS = ("secret", "password", "passwd", "token", "apikey", "privatekey", "secretkey", "secretaccesskey",
                   "credential", "credentials")

_KEY_PATTERN = re.compile(
    r"\bsk-[A-Za-z0-9_-]{8,}"  # Anthropic, OpenAI (project and short keys too)
    r"|\bhf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bAIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|\bya29\.[0-9A-Za-z_-]{20,}"  # Google OAuth access tokens
    r"|\beyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"  # JWTs
)
_LABELLED = re.compile(
    r"(?i:(\bbearer[ \t]+))[A-Za-z0-9._~+/=-]{8,}"
    r"|(?i:((?:secret(?:_?access_?key)?|password|passwd|token|api_?key|private_?key|credentials?)"
    r"[\"']?[ \t]*[:=][ \t]*[\"']?))[^\s\"',;]{4,}"
)
"""A secret known by the word before it, which is kept: ``Bearer TOKEN``, ``DB_PASSWORD=…``,
``aws_secret_access_key = …``, ``"access_token": "…"`` (a name ending in one of these words)."""
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----")
_PEM_END = "PRIVATE KEY-----"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}\Z")
_URL_USERINFO_LIMIT = 1024
_TOKEN_CHARS = r"A-Za-z0-9_\-"
"""Word characters: an ``extra`` secret is hidden only where none touches it."""


def normal_key(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


def is_secret_key(key: str) -> bool:
    """Whether a JSON object key or header name holds a secret (``max_tokens`` does not)."""
    key = normal_key(key)
    return key in _SECRET_KEYS or key.endswith(_SECRET_ENDINGS)


def _whole_token(secret: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![{_TOKEN_CHARS}]){re.escape(secret)}(?![{_TOKEN_CHARS}])")


def _keep_label(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(2)) + REDACTED


def _private_keys(text: str) -> str:
    """PEM private keys replaced, each from its BEGIN line to its END line (or the text's end)."""
    if "PRIVATE KEY-----" not in text:
        return text
    out, pos = [], 0
    for begin in _PEM_BEGIN.finditer(text):
        if begin.start() < pos:
            continue
        end = text.find(_PEM_END, begin.end())
        out += [text[pos : begin.start()], REDACTED]
        pos = len(text) if end < 0 else end + len(_PEM_END)
        if end < 0:
            break
    out.append(text[pos:])
    return "".join(out)


def _url_passwords(text: str) -> str:
    """The password of each ``scheme://user:password@host`` replaced; a bounded look around each ``://``."""
    if "://" not in text:
        return text
    out, pos, search = [], 0, 0
    while (mark := text.find("://", search)) >= 0:
        search = mark + 3
        if not _SCHEME.search(text, max(0, mark - 31), mark):
            continue
        window_end = min(len(text), search + _URL_USERINFO_LIMIT)
        at = -1
        for k in range(search, window_end):  # the userinfo ends at "@"; "/", "?", "#" or a blank end the host
            ch = text[k]
            if ch == "@":
                at = k
                break
            if ch in "/?#" or ch.isspace():
                break
        if at < 0:
            continue
        colon = text.find(":", search, at)
        if colon < 0 or colon + 1 == at:
            continue
        out += [text[pos : colon + 1], REDACTED]
        pos = at
        search = at
    out.append(text[pos:])
    return "".join(out)


class Redactor:
    """Replaces secrets in text and JSON-like data; ``extra`` are exact strings to hide too.

    An ``extra`` secret is hidden where it stands as a whole token (a header or field
    value, ``Bearer KEY``, ``key=KEY``, a JSON object's key), never inside other text: a
    short key such as ``k`` must not turn a tool named ``skill`` into ``s[redacted]ill``.
    """

    def __init__(self, extra: Iterable[str] = ()):
        self.extra = tuple(_whole_token(s) for s in dict.fromkeys(extra) if s)

    def text(self, text: str) -> str:
        for secret in self.extra:
            text = secret.sub(REDACTED, text)
        text = _KEY_PATTERN.sub(REDACTED, _private_keys(text))
        return _url_passwords(_LABELLED.sub(_keep_label, text))

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                self.text(k) if isinstance(k, str) else k: REDACTED if is_secret_key(str(k)) and v else self.data(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


def public_url(url: str) -> str:
    """``url`` as it may be shown: no ``user:password@``, and the values of its query hidden.

    For ``/health``, logs and error messages: an upstream's URL may carry its key in
    either place (``https://user:key@host``, ``?api_key=…``).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    query = "&".join(f"{pair.split('=', 1)[0]}={REDACTED}" if "=" in pair else pair
                     for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be secret (its password, the values of its query), to redact elsewhere."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    values = [pair.split("=", 1)[1] for pair in parts.query.split("&") if "=" in pair]
    return [secret for secret in (password, *values) if secret and len(secret) >= 4]
