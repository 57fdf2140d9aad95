"""LOCAL test servers for the network probes (127.0.0.1 only; the tests never reach the internet).

One handler answers by path prefix, so a single server plays every kind of index or mirror:
/simple/ a PyPI simple index, /gh/ a git smart-HTTP host, /forbidden/ a 403, /broken/ a 503,
/captive/ a login page served with 200, /slow/ an answer after 3 s, /moved/ a redirect to /simple/.
A proxy variant answers absolute-URI requests the same way (a forwarding proxy stand-in), and a
captive proxy refuses everything with 403.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

PIP_PAGE = b'<html><body><a href="pip-24.0.tar.gz">pip-24.0.tar.gz</a></body></html>'
GIT_ADVERT = b"001e# service=git-upload-pack\n0000"


class Handler(BaseHTTPRequestHandler):
    """Answers by the first path segment (see the module docstring)."""

    captive_proxy = False

    def _send(
        self, code: int, body: bytes, ctype: str = "text/html", extra: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test): nothing to answer

    def do_GET(self) -> None:
        if self.captive_proxy:
            self._send(403, b"<html>Access denied by proxy policy</html>")
            return
        path = urlsplit(self.path).path if self.path.startswith("http") else self.path
        if path.startswith("/simple/"):
            self._send(200, PIP_PAGE)
        elif path.startswith("/gh/"):
            self._send(200, GIT_ADVERT, "application/x-git-upload-pack-advertisement")
        elif path.startswith("/forbidden/"):
            self._send(403, b"<html>Forbidden</html>")
        elif path.startswith("/broken/"):
            self._send(503, b"<html>Service Unavailable</html>")
        elif path.startswith("/captive/"):
            self._send(200, b"<html><form>Please log in to use the network</form></html>")
        elif path.startswith("/slow/"):
            time.sleep(3)
            self._send(200, PIP_PAGE)
        elif path.startswith("/moved/"):
            self._send(302, b"", extra={"Location": "/simple/" + path[len("/moved/") :]})
        else:
            self._send(404, b"not found")

    def log_message(self, *args: object) -> None:
        pass


class CaptiveProxy(Handler):
    """A proxy that refuses every request with 403."""

    captive_proxy = True


@contextmanager
def serve(
    handler: type[BaseHTTPRequestHandler] = Handler, tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """Run a server on 127.0.0.1 in a thread; yield its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    scheme = "http"
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls[0]), str(tls[1]))
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def self_signed(folder: Path) -> tuple[Path, Path] | None:
    """A throwaway self-signed certificate for 127.0.0.1 (None when openssl is missing)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        argv += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        argv += ["-addext", "subjectAltName=IP:127.0.0.1"]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return cert, key


def dead_url(path: str = "/simple/") -> str:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
