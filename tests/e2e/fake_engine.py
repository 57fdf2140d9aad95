"""A FAKE engine process for supervision tests (no vLLM needed): real process, real port, real log.

    python fake_engine.py MODE PORT [MARKER]

Modes: stall (prints a phase line, then sleeps), import_error (dies with a real ImportError),
oom_hang (prints an OOM line, then hangs), serve (benign warning, then serves /v1/models for
'demo'), serve_other (serves a different model name), hang_requests (serves models, hangs on POST),
bind (binds PORT like a server; fails with a real 'address already in use' when taken),
race (loses a port race once, then serves), optional_import (logs an ImportError, serves),
replay (prints the captured vLLM log given as 3rd argument, then serves),
silent_compile (prints vLLM's compile line, is silent for SECONDS (4th argument), then serves).
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE, PORT = sys.argv[1], int(sys.argv[2])
NAME = "other" if MODE == "serve_other" else "demo"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": NAME, "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        time.sleep(3600)  # a request that hangs

    def log_message(self, *args: object) -> None:
        pass


def serve() -> None:
    print("Triton is installed, but doesn't include CPU backend. Disabling Triton.", flush=True)
    print("INFO 11-22 16:00:00 [loader.py:1] Loading weights took 0.01 seconds", flush=True)
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print(f"INFO Uvicorn running on http://127.0.0.1:{PORT}", flush=True)
    server.serve_forever()


if MODE == "stall":
    print("INFO 11-22 16:00:00 [cpu_model_runner.py:68] Starting to load model /x...", flush=True)
    time.sleep(3600)
elif MODE == "import_error":
    print("INFO starting", flush=True)
    import flag_gems_not_installed  # noqa: F401  (the real ModuleNotFoundError is the point)
elif MODE == "oom_hang":
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB", flush=True)
    time.sleep(3600)
elif MODE == "race":  # loses a port race once (flag file argv[4]), then serves
    from pathlib import Path

    flag = Path(sys.argv[4])
    if not flag.exists():
        flag.write_text("lost")
        print(
            "ERROR: [Errno 98] error while attempting to bind on address: address already in use", flush=True
        )
        sys.exit(1)
    serve()
elif MODE == "optional_import":  # logs a failed optional import (with traceback), then serves
    import traceback

    try:
        import optional_kernels_not_installed  # noqa: F401
    except ModuleNotFoundError:
        traceback.print_exc()
        sys.stdout.flush()
    serve()
elif MODE == "replay":  # replay a captured vLLM start log (argv[3]) quickly, then serve
    with open(sys.argv[3], encoding="utf-8") as fh:
        for line in fh:
            print(line, end="", flush=True)
            time.sleep(0.01)
    serve()
elif MODE == "silent_compile":  # a compile phase that logs nothing for a while, like Inductor on CPU
    print("INFO 11-22 16:03:24 [cpu_model_runner.py:87] Warming up model for the compilation...", flush=True)
    time.sleep(float(sys.argv[4]))
    serve()
elif MODE in ("serve", "serve_other", "hang_requests", "bind"):
    serve()
