"""Secrets: the API keys of endpoint stacks, and the redaction that keeps them out of every run file.

Keys are registered per server URL (`register_key`) when an endpoint stack connects; every client
asks `auth_headers(url)` for the headers of its requests, so a keyed endpoint gets its key on every
request (smoke, bench, consistency, readiness) without the key travelling through configs or files.
Before anything is written, `redact` replaces known key values, passwords in URLs and the values of
environment variables whose names look secret (`*KEY*`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`...).
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(
    r"(^|[_\-.])(API[_\-]?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH|AUTHORIZATION|"
    r"SIGNATURE|SIG)($|[_\-.])",
    re.IGNORECASE,
)
_URL_WITH_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://)([^/\s@'\"]*)@")
_ENV_FIELDS = frozenset({"env", "stack_env", "environment"})
_MIN_KEY_LEN = 4  # shorter "keys" would redact ordinary words

_lock = threading.Lock()
_keys: dict[str, str] = {}  # normalised base URL -> key


def looks_secret(name: str) -> bool:
    """Whether a variable or parameter name looks like it holds a secret."""
    return bool(_SECRET_NAME.search(name))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{host}:{port}"


def register_key(base_url: str, key: str | None) -> None:
    """Remember the key of the server at `base_url` (its origin: scheme, host, port)."""
    if not key:
        return
    with _lock:
        _keys[_origin(base_url)] = key


def forget_key(base_url: str) -> None:
    """Stop sending a key to `base_url` (the endpoint stack is done)."""
    with _lock:
        _keys.pop(_origin(base_url), None)


def key_for(url: str) -> str | None:
    """The key registered for the server of `url`, if any."""
    with _lock:
        return _keys.get(_origin(url))


def auth_headers(url: str) -> dict[str, str]:
    """The headers a request to `url` needs: `Authorization: Bearer <key>` for a keyed endpoint."""
    key = key_for(url)
    return {"Authorization": f"Bearer {key}"} if key else {}


def redact_url(url: str) -> str:
    """The URL without a password (`user:pw@` → `user:<redacted>@`) or secret query values."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_WITH_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(looks_secret(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if looks_secret(k) else v) for k, v in pairs], safe="<>")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_env(env: dict[str, Any]) -> dict[str, Any]:
    """An environment mapping with the values of secret-looking names replaced."""
    return {k: REDACTED if looks_secret(str(k)) and v else v for k, v in env.items()}


def scrub_text(text: str) -> str:
    """A string with registered keys and URL passwords replaced."""
    with _lock:
        keys = [k for k in _keys.values() if len(k) >= _MIN_KEY_LEN]
    for key in keys:
        if key in text:
            text = text.replace(key, REDACTED)
    if "@" in text and "://" in text:
        text = _URL_WITH_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return text


def redact(data: Any) -> Any:
    """A JSON-ready structure with every secret replaced (keys, URL passwords, secret env values)."""
    if isinstance(data, str):
        return scrub_text(data)
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for k, v in data.items():
            if k in _ENV_FIELDS and isinstance(v, dict):
                v = redact_env(v)
            elif isinstance(k, str) and looks_secret(k) and isinstance(v, str) and k.isupper():
                v = REDACTED  # a bare environment-style entry, e.g. {"OPENAI_API_KEY": "..."}
            out[k] = redact(v)
        return out
    if isinstance(data, list | tuple):
        out_list = [redact(v) for v in data]
        for i, item in enumerate(out_list[:-1]):  # argv: `--api-key VALUE`
            if isinstance(item, str) and item.startswith("-") and looks_secret(item.lstrip("-")):
                out_list[i + 1] = REDACTED
        return out_list
    return data
