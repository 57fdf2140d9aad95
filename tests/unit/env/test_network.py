"""The mirror picker against a real HTTP server on 127.0.0.1 and an unused loopback port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stackcert.env.network import pick_mirror, probe_url, probe_urls


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 503 if self.path.startswith("/broken") else 200
        body = b"<html>simple index</html>"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _dead_url() -> str:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple/"


def test_reachable_server(server: str) -> None:
    probe = probe_url(f"{server}/simple/", timeout=2)
    assert probe.reachable and probe.status_code == 200
    assert probe.latency_ms is not None and probe.latency_ms >= 0


def test_server_error_is_unreachable(server: str) -> None:
    probe = probe_url(f"{server}/broken/", timeout=2)
    assert not probe.reachable
    assert probe.error == "HTTP 503"


def test_picker_skips_dead_mirror_and_keeps_order(server: str) -> None:
    dead = _dead_url()
    live = f"{server}/simple/"
    choice = pick_mirror([dead, live, f"{server}/second/"], timeout=2)
    assert choice.chosen == live
    assert [p.url for p in choice.probes] == [dead, live]  # stops at the first reachable one
    assert not choice.probes[0].reachable and "Connect" in (choice.probes[0].error or "")


def test_picker_with_nothing_reachable() -> None:
    choice = pick_mirror([_dead_url(), "not a url"], timeout=1)
    assert choice.chosen is None
    assert all(not p.reachable and p.error for p in choice.probes)


def test_probe_urls_reports_each(server: str) -> None:
    probes = probe_urls([f"{server}/a", _dead_url()], timeout=2)
    assert [p.reachable for p in probes] == [True, False]
