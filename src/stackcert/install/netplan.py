"""The install plan's network side: pick a PyPI index and a GitHub prefix from their chains (each
probed before use), and say what pip and git need for them (index args, proxy, mirror rewrite)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from stackcert.env.network import GITHUB, NetworkConfig, UrlProbe, pick_mirror


class NetResolution(BaseModel):
    """What the probes decided: the index, the GitHub prefix, and the notes for the plan."""

    index_url: str | None = None
    github_prefix: str | None = None
    proxy: str | None = None
    probes: list[UrlProbe] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def pip_args(self) -> list[str]:
        """Extra pip arguments for the proxy (TLS is never relaxed: no --trusted-host)."""
        return ["--proxy", self.proxy] if self.proxy else []

    def git_env(self) -> dict[str, str]:
        """Environment for git commands (the proxy)."""
        return {"https_proxy": self.proxy, "http_proxy": self.proxy} if self.proxy else {}

    def git_config(self) -> list[str]:
        """`git -c` arguments that send github.com through the chosen mirror (submodules too)."""
        if not self.github_prefix or self.github_prefix == GITHUB:
            return []
        return ["-c", f"url.{self.github_prefix}.insteadOf={GITHUB}"]


def resolve_network(
    net: NetworkConfig,
    *,
    pypi: list[str],
    needs_github: bool,
    other_git_hosts: list[str],
    probe: bool,
    timeout: float,
) -> NetResolution:
    """Probe the PyPI chain and (when a git source is on GitHub) the GitHub chain, in order."""
    res = NetResolution(proxy=net.proxy)
    github = net.github_chain()
    if not probe:
        res.index_url = pypi[0]
        res.github_prefix = github[0] if needs_github else None
        res.notes.append("network not probed (--no-probe): the first entry of each chain is used")
        return res
    choice = pick_mirror(pypi, kind="pypi", timeout=timeout, proxy=net.proxy)
    res.probes += choice.probes
    res.index_url = choice.chosen
    if choice.chosen is None:
        res.notes.append(
            "no package index is usable ("
            + "; ".join(f"{p.url}: {p.error}" for p in choice.probes)
            + "): add one with --pypi-mirror URL or --proxy URL, or run with --offline --wheel-dir DIR"
        )
    if needs_github:
        gh = pick_mirror(github, kind="github", timeout=timeout, proxy=net.proxy)
        res.probes += gh.probes
        res.github_prefix = gh.chosen
        if gh.chosen is None:
            res.notes.append(
                "GitHub is not usable directly or through a mirror ("
                + "; ".join(f"{p.url}: {p.error}" for p in gh.probes)
                + "): add one with --github-mirror PREFIX or --proxy URL, or use --offline --wheel-dir DIR"
            )
        elif gh.chosen != GITHUB:
            res.notes.append(f"git sources on github.com are fetched through the mirror {gh.chosen}")
    for host in other_git_hosts:
        (probe_,) = pick_mirror([host], timeout=timeout, proxy=net.proxy).probes
        res.probes.append(probe_)
        if not probe_.reachable:
            res.notes.append(f"git host {host} unreachable ({probe_.error}): its git sources will fail")
    return res


def git_hosts(urls: list[str]) -> tuple[bool, list[str]]:
    """(any source on github.com, the other git hosts as scheme://host/)."""
    github = False
    others: set[str] = set()
    for url in urls:
        if url.startswith(GITHUB):
            github = True
        else:
            parts = urlsplit(url)
            others.add(f"{parts.scheme}://{parts.netloc}/")
    return github, sorted(others)
