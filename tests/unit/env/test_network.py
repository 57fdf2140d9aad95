"""Network probes against LOCAL servers (127.0.0.1): 200, 403, 5xx, timeouts, captive pages, redirects,
proxies and TLS verification; mirror chains stop at the first usable entry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.env.netserver import CaptiveProxy, Handler, dead_url, self_signed, serve

from stackcert.env.network import NetworkConfig, pick_mirror, probe_url, probe_urls, via_github_mirror


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(Handler) as url:
        yield url


def test_pypi_index_200_is_usable(server: str) -> None:
    probe = probe_url(f"{server}/simple/", kind="pypi", timeout=2)
    assert probe.reachable and probe.status_code == 200 and probe.error is None
    assert probe.probe_url == f"{server}/simple/pip/"
    assert probe.latency_ms is not None and probe.latency_ms >= 0


def test_403_is_not_reachable(server: str) -> None:
    probe = probe_url(f"{server}/forbidden/", kind="pypi", timeout=2)
    assert not probe.reachable and probe.status_code == 403
    assert probe.error and probe.error.startswith("HTTP 403")


def test_5xx_is_not_reachable(server: str) -> None:
    probe = probe_url(f"{server}/broken/", timeout=2)
    assert not probe.reachable and probe.status_code == 503
    assert probe.error == "HTTP 503 (server error)"


def test_timeout_is_not_reachable(server: str) -> None:
    probe = probe_url(f"{server}/slow/", kind="pypi", timeout=0.5)
    assert not probe.reachable and probe.status_code is None
    assert probe.error == "timed out after 0.5s"


def test_captive_login_page_with_200_is_caught(server: str) -> None:
    pypi = probe_url(f"{server}/captive/", kind="pypi", timeout=2)
    assert not pypi.reachable and pypi.status_code == 200
    assert "not a PyPI simple index" in (pypi.error or "")
    git = probe_url(f"{server}/captive/", kind="github", timeout=2)
    assert not git.reachable and "not a git smart-HTTP server" in (git.error or "")


def test_redirect_is_followed_to_a_usable_page(server: str) -> None:
    probe = probe_url(f"{server}/moved/", kind="pypi", timeout=2)
    assert probe.reachable and probe.status_code == 200


def test_github_mirror_answers_git_advertisement(server: str) -> None:
    probe = probe_url(f"{server}/gh/", kind="github", timeout=2)
    assert probe.reachable
    assert probe.probe_url == f"{server}/gh/flagos-ai/FlagCX.git/info/refs?service=git-upload-pack"


def test_chain_skips_403_captive_and_dead_and_keeps_order(server: str) -> None:
    dead = dead_url()
    chain = [f"{server}/forbidden/", f"{server}/captive/", dead, f"{server}/simple/", f"{server}/later/"]
    choice = pick_mirror(chain, kind="pypi", timeout=2)
    assert choice.chosen == f"{server}/simple/"
    assert [p.url for p in choice.probes] == chain[:4]  # stops at the first usable one
    assert [p.reachable for p in choice.probes] == [False, False, False, True]
    assert "Connect" in (choice.probes[2].error or "")


def test_nothing_usable() -> None:
    choice = pick_mirror([dead_url(), "not a url"], kind="pypi", timeout=1)
    assert choice.chosen is None
    assert all(not p.reachable and p.error for p in choice.probes)


def test_plain_http_to_a_remote_host_is_never_trusted() -> None:
    probe = probe_url("http://pypi.example.invalid/simple/", kind="pypi", timeout=1)
    assert not probe.reachable and probe.status_code is None
    assert "not trusted (no TLS)" in (probe.error or "")


def test_tls_certificate_is_verified(tmp_path: Path) -> None:
    pair = self_signed(tmp_path)
    if pair is None:
        pytest.skip("openssl is not available to make a test certificate")
    with serve(Handler, tls=pair) as url:
        probe = probe_url(f"{url}/simple/", kind="pypi", timeout=3)
    assert not probe.reachable
    assert (probe.error or "").startswith("TLS verification failed")


def test_probe_through_a_proxy(server: str) -> None:
    # The target port is dead: only the proxy can answer, so a usable result proves the proxy was used.
    target = dead_url("/simple/")
    probe = probe_url(target, kind="pypi", timeout=2, proxy=server)
    assert probe.reachable and probe.proxy == server


def test_captive_proxy_403_is_not_reachable() -> None:
    with serve(CaptiveProxy) as proxy:
        choice = pick_mirror([dead_url("/simple/")], kind="pypi", timeout=2, proxy=proxy)
    assert choice.chosen is None
    assert choice.probes[0].status_code == 403 and (choice.probes[0].error or "").startswith("HTTP 403")


def test_probe_urls_reports_each(server: str) -> None:
    probes = probe_urls([f"{server}/simple/", dead_url()], timeout=2)
    assert [p.reachable for p in probes] == [True, False]


def test_chains_and_github_rewrite() -> None:
    cfg = NetworkConfig(github=["https://mirror.example/github.com"])
    assert cfg.github_chain() == ["https://mirror.example/github.com/"]
    assert NetworkConfig().github_chain() == ["https://github.com/"]
    assert NetworkConfig().pypi_chain()[0] == "https://pypi.org/simple/"
    url = "https://github.com/flagos-ai/FlagCX.git"
    assert via_github_mirror(url, "https://mirror.example/github.com/") == (
        "https://mirror.example/github.com/flagos-ai/FlagCX.git"
    )
    assert (
        via_github_mirror("https://gitee.com/x.git", "https://mirror.example/") == "https://gitee.com/x.git"
    )
