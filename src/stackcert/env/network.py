"""Network probes: is a package index / GitHub (or a mirror of it) really usable, how fast, which one.

"Reachable" means what an install needs, not merely "something answered": the final HTTP status
must be 2xx (a captive portal's or proxy's 4xx/5xx is not reachable) and the body must look like
what was asked for (a PyPI simple page, git's smart-HTTP advertisement), so a login page served
with 200 is caught too. TLS certificates are always verified; plain http:// is only accepted for
loopback hosts (local test servers, a local devpi), never trusted for a remote index.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

ProbeKind = Literal["url", "pypi", "github"]

DEFAULT_PYPI_MIRRORS: tuple[str, ...] = (
    "https://pypi.org/simple/",
    "https://pypi.tuna.tsinghua.edu.cn/simple/",
    "https://mirrors.aliyun.com/pypi/simple/",
)
GITHUB = "https://github.com/"
DEFAULT_GITHUB_MIRRORS: tuple[str, ...] = (GITHUB,)
# A small public repository whose smart-HTTP advertisement proves a GitHub prefix serves git.
GITHUB_PROBE_REPO = "flagos-ai/FlagCX.git"
_BODY_LIMIT = 64 * 1024


class NetworkConfig(BaseModel):
    """Mirror/proxy chains for PyPI and GitHub; each chain is probed in order, first usable wins."""

    model_config = ConfigDict(extra="forbid")

    pypi: list[str] = Field(default_factory=list, description="PyPI simple-index URLs in preference order")
    github: list[str] = Field(
        default_factory=list,
        description="GitHub prefixes in preference order; a mirror is 'https://host/path/' standing for "
        "'https://github.com/' (e.g. https://mirror.example/github.com/)",
    )
    proxy: str | None = Field(
        None, description="HTTP(S) proxy for probes, pip (--proxy) and git (https_proxy)"
    )

    def pypi_chain(self) -> list[str]:
        """The PyPI chain to probe (the defaults when none is configured)."""
        return list(self.pypi) or list(DEFAULT_PYPI_MIRRORS)

    def github_chain(self) -> list[str]:
        """The GitHub chain to probe (github.com when none is configured)."""
        return [p if p.endswith("/") else p + "/" for p in self.github] or list(DEFAULT_GITHUB_MIRRORS)


class UrlProbe(BaseModel):
    """One probe: the candidate, what was fetched, and whether it is usable."""

    url: str
    kind: ProbeKind = "url"
    probe_url: str | None = Field(None, description="what was fetched when it differs from url")
    reachable: bool
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    proxy: str | None = None


class MirrorChoice(BaseModel):
    """The first usable candidate of a chain (or None) and every probe made to find it."""

    chosen: str | None = Field(None, description="first reachable URL in the given order, or None")
    probes: list[UrlProbe] = Field(default_factory=list)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def target_for(url: str, kind: ProbeKind) -> str:
    """What to fetch to prove a candidate: a simple page for PyPI, a git advertisement for GitHub."""
    if kind == "pypi":
        return url.rstrip("/") + "/pip/"
    if kind == "github":
        return url.rstrip("/") + "/" + GITHUB_PROBE_REPO + "/info/refs?service=git-upload-pack"
    return url


def _content_problem(kind: ProbeKind, resp: httpx.Response, body: bytes) -> str | None:
    if kind == "pypi" and b"<a" not in body.lower():
        return "not a PyPI simple index (a captive portal or login page?)"
    if kind == "github":
        ctype = resp.headers.get("content-type", "")
        if "git-upload-pack-advertisement" not in ctype and b"service=git-upload-pack" not in body[:64]:
            return "not a git smart-HTTP server (a captive portal or login page?)"
    return None


def _status_problem(code: int) -> str | None:
    if 200 <= code < 300:
        return None
    if code == 407:
        return "HTTP 407 (the proxy wants authentication)"
    if 300 <= code < 400:
        return f"HTTP {code} (redirect without a usable target)"
    if 400 <= code < 500:
        return f"HTTP {code} (refused: a proxy, firewall or missing path)"
    return f"HTTP {code} (server error)"


def _client(timeout: float, proxy: str | None) -> httpx.Client:
    # verify=True always: a mirror whose certificate does not verify is not used.
    return httpx.Client(timeout=timeout, follow_redirects=True, verify=True, proxy=proxy)


def probe_url(
    url: str,
    *,
    kind: ProbeKind = "url",
    timeout: float = 3.0,
    client: httpx.Client | None = None,
    proxy: str | None = None,
) -> UrlProbe:
    """One GET with a short timeout: usable only on a 2xx whose body fits the kind. Never raises."""
    target = target_for(url, kind)
    base = UrlProbe(
        url=url, kind=kind, probe_url=None if target == url else target, reachable=False, proxy=proxy
    )
    parts = urlsplit(target)
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return base.model_copy(update={"error": "plain http:// is not trusted (no TLS): use an https:// URL"})
    if parts.scheme not in ("http", "https"):
        return base.model_copy(update={"error": f"bad URL: {url!r} is not http(s)"})
    own = client is None
    http = client or _client(timeout, proxy)
    started = time.perf_counter()
    try:
        with http.stream("GET", target, timeout=timeout) as resp:
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) >= _BODY_LIMIT:
                    break
            latency = round((time.perf_counter() - started) * 1000, 1)
            problem = _status_problem(resp.status_code) or _content_problem(kind, resp, body)
            return base.model_copy(
                update={
                    "reachable": problem is None,
                    "status_code": resp.status_code,
                    "latency_ms": latency,
                    "error": problem,
                }
            )
    except httpx.TimeoutException:
        return base.model_copy(update={"error": f"timed out after {timeout:g}s"})
    except httpx.ProxyError as exc:
        return base.model_copy(update={"error": f"proxy refused the connection: {exc}"[:200]})
    except httpx.HTTPError as exc:
        text = str(exc)
        tls = "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text
        why = f"TLS verification failed: {text}" if tls else f"{type(exc).__name__}: {text}"
        return base.model_copy(update={"error": why[:200]})
    except ValueError as exc:  # malformed URL
        return base.model_copy(update={"error": f"bad URL: {exc}"[:200]})
    finally:
        if own:
            http.close()


def probe_urls(
    urls: Sequence[str], *, kind: ProbeKind = "url", timeout: float = 3.0, proxy: str | None = None
) -> list[UrlProbe]:
    """Probe every URL (no early stop)."""
    with _client(timeout, proxy) as client:
        return [probe_url(u, kind=kind, timeout=timeout, client=client, proxy=proxy) for u in urls]


def pick_mirror(
    candidates: Sequence[str], *, kind: ProbeKind = "url", timeout: float = 3.0, proxy: str | None = None
) -> MirrorChoice:
    """Probe in order and stop at the first usable one (the list is in preference order)."""
    probes: list[UrlProbe] = []
    with _client(timeout, proxy) as client:
        for url in candidates:
            probe = probe_url(url, kind=kind, timeout=timeout, client=client, proxy=proxy)
            probes.append(probe)
            if probe.reachable:
                return MirrorChoice(chosen=url, probes=probes)
    return MirrorChoice(chosen=None, probes=probes)


def via_github_mirror(url: str, prefix: str) -> str:
    """Rewrite a https://github.com/... URL onto a GitHub mirror prefix; other URLs are kept."""
    if prefix == GITHUB or not url.startswith(GITHUB):
        return url
    return prefix + url[len(GITHUB) :]
