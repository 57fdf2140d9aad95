"""Network probes: is an index / git host reachable, how fast, and which mirror to use."""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
from pydantic import BaseModel, Field

DEFAULT_PYPI_MIRRORS: tuple[str, ...] = (
    "https://pypi.org/simple/",
    "https://pypi.tuna.tsinghua.edu.cn/simple/",
    "https://mirrors.aliyun.com/pypi/simple/",
)


class UrlProbe(BaseModel):
    url: str
    reachable: bool
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None


class MirrorChoice(BaseModel):
    chosen: str | None = Field(None, description="first reachable URL in the given order, or None")
    probes: list[UrlProbe] = Field(default_factory=list)


def probe_url(url: str, *, timeout: float = 3.0, client: httpx.Client | None = None) -> UrlProbe:
    """One GET with a short timeout. Any HTTP answer below 500 counts as reachable."""
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=True)
    started = time.perf_counter()
    try:
        with http.stream("GET", url, timeout=timeout) as resp:
            latency = (time.perf_counter() - started) * 1000
            ok = resp.status_code < 500
            return UrlProbe(
                url=url,
                reachable=ok,
                status_code=resp.status_code,
                latency_ms=round(latency, 1),
                error=None if ok else f"HTTP {resp.status_code}",
            )
    except httpx.TimeoutException:
        return UrlProbe(url=url, reachable=False, error=f"timed out after {timeout:g}s")
    except httpx.HTTPError as exc:
        return UrlProbe(url=url, reachable=False, error=f"{type(exc).__name__}: {exc}"[:200])
    except ValueError as exc:  # malformed URL
        return UrlProbe(url=url, reachable=False, error=f"bad URL: {exc}"[:200])
    finally:
        if own:
            http.close()


def probe_urls(urls: Sequence[str], *, timeout: float = 3.0) -> list[UrlProbe]:
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        return [probe_url(u, timeout=timeout, client=client) for u in urls]


def pick_mirror(candidates: Sequence[str], *, timeout: float = 3.0) -> MirrorChoice:
    """Probe in order and stop at the first reachable one (the list is in preference order)."""
    probes: list[UrlProbe] = []
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for url in candidates:
            probe = probe_url(url, timeout=timeout, client=client)
            probes.append(probe)
            if probe.reachable:
                return MirrorChoice(chosen=url, probes=probes)
    return MirrorChoice(chosen=None, probes=probes)
