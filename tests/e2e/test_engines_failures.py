"""Engine startup failures end early with located findings, and nothing is left running.

These use a FAKE engine command (tests/e2e/fake_engine.py: real processes, real ports, real logs)
through `launch_server(command=...)`, so the supervision logic is tested without vLLM.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from stackcert.config import StackSpec
from stackcert.engines import EngineStartError, ModelRef, ServerTimeouts, launch_server
from stackcert.engines.client import RequestError, post_json
from stackcert.errors import ExitCode
from stackcert.evidence.findings import Layer

pytestmark = pytest.mark.e2e
FAKE = str(Path(__file__).with_name("fake_engine.py"))
MODEL = ModelRef(path=Path("/nonexistent/model"), served_name="demo", tokenizer=Path("/nonexistent/model"))
FAST = ServerTimeouts(idle=2.0, compile_idle=4.0, absolute=20.0, request=2.0, stop_grace=2.0)
# Healthy fakes: a loaded 2-core machine may need seconds to start Python.
SERVE = FAST.model_copy(update={"idle": 30.0, "absolute": 60.0})


def fake(mode: str, *extra: str) -> list[str]:
    return [sys.executable, FAKE, mode, "{port}", *extra]


def procs_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in (p.info["cmdline"] or [])):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def start_fails(mode: str, tmp_path: Path, stack: StackSpec | None = None) -> tuple[EngineStartError, float]:
    marker = uuid.uuid4().hex
    t0 = time.monotonic()
    with (
        pytest.raises(EngineStartError) as info,
        launch_server(
            stack or StackSpec(name="fake"),
            MODEL,
            run_dir=tmp_path,
            timeouts=FAST,
            command=fake(mode, marker),
        ),
    ):
        pass
    assert procs_with(marker) == [], "the failed engine was not stopped"
    return info.value, time.monotonic() - t0


def test_stall_is_detected_by_the_idle_limit(tmp_path: Path) -> None:
    err, took = start_fails("stall", tmp_path)
    head = err.findings[0]
    assert head.category == "stall"
    assert head.phase == "loading_weights"
    assert head.excerpt is not None and any("Starting to load model" in ln for ln in head.excerpt.lines)
    assert took < 10, "the idle limit (2 s) should end the wait long before the absolute limit"


def test_server_that_exits_during_startup_is_located(tmp_path: Path) -> None:
    err, took = start_fails("import_error", tmp_path)
    head = err.findings[0]
    assert head.category == "import_error" and head.layer is Layer.L1_PACKAGES
    assert "flag_gems_not_installed" in head.message
    assert head.excerpt is not None and head.excerpt.first_line >= 1
    assert any(f.category == "exited" for f in err.findings)
    assert took < 10


def test_fatal_log_line_ends_the_wait_early(tmp_path: Path) -> None:
    err, took = start_fails("oom_hang", tmp_path)
    assert err.findings[0].category == "oom"
    assert err.findings[0].layer is Layer.L0_HOST
    assert took < 12, "a fatal line must not wait for the idle or absolute limit"


def test_readiness_needs_the_served_model_listed(tmp_path: Path) -> None:
    slow = FAST.model_copy(update={"absolute": 6.0, "idle": 30.0})
    marker = uuid.uuid4().hex
    with (
        pytest.raises(EngineStartError) as info,
        launch_server(
            StackSpec(name="fake"),
            MODEL,
            run_dir=tmp_path,
            timeouts=slow,
            command=fake("serve_other", marker),
        ),
    ):
        pass
    assert info.value.findings[-1].category == "timeout"
    assert procs_with(marker) == []


def test_benign_triton_warning_does_not_stop_a_healthy_server(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    with launch_server(
        StackSpec(name="fake"), MODEL, run_dir=tmp_path, timeouts=SERVE, command=fake("serve", marker)
    ) as server:
        assert server.alive()
        assert server.served_model == "demo"
        assert procs_with(marker)
    assert procs_with(marker) == []
    info = (tmp_path / "server.json").read_text()
    assert '"launcher": "command"' in info


def test_logged_optional_import_error_does_not_kill_a_healthy_start(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    with launch_server(
        StackSpec(name="fake"),
        MODEL,
        run_dir=tmp_path,
        timeouts=SERVE,
        command=fake("optional_import", marker),
    ) as server:
        assert server.alive()
        # ... but the log scan still reports it, located.
        assert server.findings()[0].category == "import_error"


def test_phases_of_a_captured_compiled_vllm_start(tmp_path: Path) -> None:
    captured = str(Path(__file__).with_name("captured_vllm_compiled_server_start.log"))
    seen: list[str] = []

    class Recorder:
        def on_start(self, task: str, total: float | None = None) -> None: ...
        def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None: ...
        def on_message(self, task: str, message: str) -> None:
            seen.append(message)

        def on_finish(self, task: str, status: str) -> None: ...

    with launch_server(
        StackSpec(name="fake"),
        MODEL,
        run_dir=tmp_path,
        timeouts=SERVE,
        progress=Recorder(),
        command=[sys.executable, FAKE, "replay", "{port}", captured],
    ) as server:
        # The real log's benign warnings (Triton, DeprecationWarning, ulimit) did not stop it.
        assert server.findings() == []
    # "Loading weights took …" ends the loading: the profile run (and a crash in it) is "profiling"
    assert seen[:4] == ["loading_weights", "profiling", "kv_cache", "compiling"]
    assert seen[-1] == "serving" and seen.count("serving") == 1


def test_a_silent_compile_phase_waits_for_the_compile_idle_limit(tmp_path: Path) -> None:
    # 4 s without a log line while compiling: beyond the idle limit (1.5 s), within compile_idle.
    patient = FAST.model_copy(update={"idle": 1.5, "compile_idle": 30.0, "absolute": 60.0})
    marker = uuid.uuid4().hex
    with launch_server(
        StackSpec(name="fake"),
        MODEL,
        run_dir=tmp_path / "patient",
        timeouts=patient,
        command=fake("silent_compile", marker, "4"),
    ) as server:
        assert server.alive()
        assert "compiling" in server.info.phases
    # The same silence beyond compile_idle is a stall, reported in the compiling phase.
    strict = patient.model_copy(update={"compile_idle": 2.0})
    marker = uuid.uuid4().hex
    with (
        pytest.raises(EngineStartError) as info,
        launch_server(
            StackSpec(name="fake"),
            MODEL,
            run_dir=tmp_path / "strict",
            timeouts=strict,
            command=fake("silent_compile", marker, "30"),
        ),
    ):
        pass
    assert info.value.findings[0].category == "stall"
    assert info.value.findings[0].phase == "compiling"
    assert procs_with(marker) == []


def test_forced_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err, _ = start_fails("bind", tmp_path, StackSpec(name="fake", engine_args={"port": port}))
    # Found before the engine is started (no model loading first): one located finding.
    assert err.findings[0].category == "port_in_use"
    assert f"port {port}" in err.findings[0].message and "already in use" in err.findings[0].message


def test_lost_port_race_is_retried_on_a_new_port(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    flag = tmp_path / "raced"
    with launch_server(
        StackSpec(name="fake"),
        MODEL,
        run_dir=tmp_path / "run",
        timeouts=SERVE,
        command=[sys.executable, FAKE, "race", "{port}", marker, str(flag)],
    ) as server:
        assert server.alive()
    assert flag.exists()
    assert "address already in use" in (tmp_path / "run" / "server.attempt1.log").read_text()


def test_missing_model_path_is_a_usage_error_with_a_finding(tmp_path: Path) -> None:
    with pytest.raises(EngineStartError) as info, launch_server(StackSpec(name="x"), MODEL, run_dir=tmp_path):
        pass
    err = info.value
    assert err.exit_code == ExitCode.USAGE
    assert err.findings[0].category == "model_missing" and err.findings[0].layer is Layer.L2_MODEL
    assert "/nonexistent/model" in err.one_line()
    assert not (tmp_path / "server.log").exists(), "nothing should have been started"


def test_a_hanging_request_becomes_a_located_finding(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    with launch_server(
        StackSpec(name="fake"), MODEL, run_dir=tmp_path, timeouts=SERVE, command=fake("hang_requests", marker)
    ) as server:
        t0 = time.monotonic()
        with pytest.raises(RequestError) as info:
            post_json(server, "/v1/completions", {"model": "demo", "prompt": "x"}, timeout=1.5)
        assert time.monotonic() - t0 < 5
    assert info.value.finding.category == "request_timeout"
    assert info.value.finding.layer is Layer.L5_SERVING


PARENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from stackcert.config import StackSpec
    from stackcert.engines import ModelRef, launch_server
    fake, marker, run_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    model = ModelRef(path=Path("/x"), served_name="demo", tokenizer=Path("/x"))
    with launch_server(StackSpec(name="orphan"), model, run_dir=run_dir,
                       command=[sys.executable, fake, "serve", "{port}", marker]):
        print("READY", flush=True)
        time.sleep(3600)
    """
)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_startup_stops_the_engine(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    code = PARENT.replace('"serve"', '"stall"')
    parent = subprocess.Popen(
        [sys.executable, "-c", code, FAKE, marker, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A terminal's Ctrl-C reaches a program whose SIGINT is the default. An ignored SIGINT is
        # inherited across exec, and an earlier test of this session may leave the test process
        # ignoring it (measured: then the parent never sees KeyboardInterrupt), so reset it.
        preexec_fn=_default_sigint,
    )
    try:
        # The parent's own command line carries the marker too: wait for an engine beside it.
        def engines() -> list[psutil.Process]:
            return [p for p in procs_with(marker) if p.pid != parent.pid]

        deadline = time.monotonic() + 60
        while not engines() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert engines(), "the fake engine did not start"
        time.sleep(0.5)
        parent.send_signal(signal.SIGINT)
        parent.wait(timeout=90)  # catches a hang; the stop path's graces take longer on a loaded machine
        deadline = time.monotonic() + 30  # the guard's SIGTERM grace, on a loaded machine
        while procs_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert procs_with(marker) == [], "Ctrl-C left the engine running"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_no_orphan_when_the_parent_is_killed(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, FAKE, marker, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "READY"
        assert procs_with(marker), "the engine should be running"
        parent.kill()  # SIGKILL: no atexit, no finally
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while procs_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert procs_with(marker) == [], "engine processes survived their parent's SIGKILL"
    finally:
        if parent.poll() is None:
            parent.kill()
