"""A supervised OpenAI-compatible server process: start, phase-aware startup watch, readiness, stop.

Readiness is `GET /v1/models` listing the served model. While waiting we tail the server log:
each line is matched against phase patterns (loading weights, compiling, capturing graphs, KV
cache, serving) and fatal patterns. A stall is judged per phase (compiling may be silent longer),
and an absolute limit caps the whole start. Every way to fail ends in an EngineStartError with
located findings.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from stackcert.answers import LIMITS, BadAnswer, json_content, loads, model_ids, read_capped
from stackcert.config import StackSpec
from stackcert.engines.base import EngineStartError, ServerInfo, ServerTimeouts
from stackcert.engines.process import ManagedProcess
from stackcert.errors import ExitCode
from stackcert.evidence.classify import match_rule
from stackcert.evidence.findings import Component, Finding, Layer, LogExcerpt
from stackcert.evidence.logscan import fatal_line, read_lines, scan_log
from stackcert.evidence.signature import signature, strip_log_prefix
from stackcert.progress import NullProgress, Progress
from stackcert.targets import Exposure, Target

STEP = "launch"
COMPILE_PHASES = frozenset({"compiling", "capturing_graphs"})
# Lines that repeat while the engine waits on itself: they are not progress.
_HEARTBEAT = re.compile(r"No available shared memory broadcast block found", re.I)
_ENGINE_COMPONENT = {"vllm": Component.VLLM, "transformers": Component.TRANSFORMERS}
FATAL_GRACE_S = 5.0  # after a fatal line, let the traceback finish before we stop the process


@dataclass(frozen=True)
class PhaseRule:
    """A log line pattern that says the engine's startup entered a phase (loading weights, compiling...)."""

    pattern: re.Pattern[str]
    phase: str


def phase_rules(pairs: Sequence[tuple[str, str]]) -> list[PhaseRule]:
    """Phase rules from (regex, phase) pairs, matched case-insensitively."""
    return [PhaseRule(re.compile(rx, re.I), phase) for rx, phase in pairs]


def free_port() -> int:
    """A port free right now on 127.0.0.1 (a race remains: callers retry on 'address in use')."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_free_port(stack: StackSpec) -> None:
    """A port the stack fixes (engine_args.port) must be free now: found before the model loads,
    not after (a taken port used to show up only once the engine had loaded its weights)."""
    forced = stack.engine_args.get("port")
    if not forced:
        return
    try:
        port = int(forced)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        _usage(stack, f"engine_args.port {forced!r} is not a port number", "use 1-65535, or drop it")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            _usage(
                stack,
                f"port {port} (engine_args.port) is already in use",
                "free the port, or drop engine_args.port and let stackcert pick a free one",
            )


def _usage(stack: StackSpec, message: str, fix: str) -> None:
    finding = Finding(
        step=STEP,
        phase="starting",
        layer=Layer.L5_SERVING,
        component=Component.UNKNOWN,
        category="port_in_use" if "in use" in message else "bad_arg",
        signature=signature("port", None, message),
        message=message,
    )
    err = EngineStartError(
        f"{stack.name}: {message}", findings=[finding], where=f"stacks.{stack.name}", fix=fix
    )
    err.exit_code = ExitCode.USAGE
    raise err


def event_finding(
    category: str,
    message: str,
    *,
    phase: str,
    log_path: Path | None,
    layer: Layer,
    component: Component = Component.UNKNOWN,
) -> Finding:
    """A finding for something we observed ourselves (exit, stall, timeout), with the log tail."""
    lines = read_lines(log_path) if log_path else []
    first = max(1, len(lines) - 15)
    excerpt = LogExcerpt(path=str(log_path) if log_path else None, first_line=first, lines=lines[first - 1 :])
    return Finding(
        step=STEP,
        phase=phase,
        layer=layer,
        component=component,
        category=category,
        signature=signature(category, None, message),
        message=message,
        excerpt=excerpt,
    )


def _ends_startup(line: str) -> bool:
    """A fatal line ends the wait early; an import error only when the process then exits, because
    engines log tracebacks of optional imports (plugins, kernels) and carry on."""
    if not fatal_line(line):
        return False
    rule = match_rule(strip_log_prefix(line))
    return rule is None or rule.category != "import_error"


class ProcessServer:
    """One server process for one stack; implements the `Server` protocol."""

    def __init__(
        self,
        *,
        stack: StackSpec,
        engine: str,
        launcher: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        port: int,
        served_model: str,
        log_path: Path,
        timeouts: ServerTimeouts,
        phases: list[PhaseRule],
        progress: Progress | None = None,
        model_dirs: tuple[str, ...] = (),
        target: Target | None = None,
        exposure: Exposure | None = None,
    ) -> None:
        self.stack = stack
        exposure = exposure or Exposure("127.0.0.1", "127.0.0.1", port)
        self.base_url = exposure.base_url
        self.served_model = served_model
        self.log_path: Path | None = log_path
        self.timeouts = timeouts
        self.progress: Progress = progress or NullProgress()
        self._phases = phases
        self._model_dirs = model_dirs
        remote_unset = stack.unset_env if target is not None and target.remote else ()
        self._proc = ManagedProcess(
            argv, log_path=log_path, env=env, target=target, forwards=exposure.forwards, unset=remote_unset
        )
        self.phase = "starting"
        self.info = ServerInfo(
            stack=stack.name,
            engine=engine,
            launcher=launcher,
            base_url=self.base_url,
            served_model=served_model,
            argv=list(argv),
            log_path=log_path,
            port=port,
        )

    # -- Server protocol -------------------------------------------------------------------
    def alive(self) -> bool:
        """Whether the engine process still runs."""
        return self._proc.running

    def findings(self) -> list[Finding]:
        """What the engine's log says went wrong, root cause first; argument errors blamed on the engine."""
        if self.log_path is None:
            return []
        found = scan_log(self.log_path, step=STEP, phase=self.phase, model_dirs=self._model_dirs)
        engine = _ENGINE_COMPONENT.get(self.info.engine)
        for f in found:
            # An argument error is the launcher's own (argparse prints no traceback to attribute).
            if f.category == "bad_arg" and f.component is Component.UNKNOWN and engine is not None:
                f.component = engine
        return found

    def __repr__(self) -> str:
        return f"ProcessServer(stack={self.stack.name!r}, base_url={self.base_url!r}, alive={self.alive()})"

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the engine: SIGTERM to its group, SIGKILL after the stop grace."""
        self._proc.stop(grace=self.timeouts.stop_grace)

    def models_listed(self, client: httpx.Client) -> bool:
        """Whether `GET /v1/models` lists the served model; any broken or slow answer is a 'no'."""
        return serves_model(client, self.base_url, self.served_model, min(5.0, self.timeouts.request))

    def start(self) -> ProcessServer:
        """Start the process and wait until it serves; on failure stop it and raise EngineStartError."""
        task = f"start {self.stack.name}"
        self.progress.on_start(task)
        self._proc.start()
        self.info.pid = self._proc.pid
        try:
            self._wait_ready(task)
        except BaseException:
            self.stop()
            self.progress.on_finish(task, "fail")
            raise
        self.progress.on_finish(task, "pass")
        return self

    def _wait_ready(self, task: str) -> None:
        t0 = time.monotonic()
        last_progress = t0
        fatal_at: float | None = None
        offset = 0
        pending = ""
        next_probe = t0
        with httpx.Client() as client:
            while True:
                now = time.monotonic()
                chunk, offset = self._read_new(offset)
                if chunk:
                    pending += chunk
                    *complete, pending = pending.split("\n")
                    for line in complete:
                        if not _HEARTBEAT.search(line):
                            last_progress = now
                        self._note_phase(line, now - t0, task)
                        if fatal_at is None and _ends_startup(line):
                            fatal_at = now
                exited = self._proc.poll()
                if exited is not None:
                    self._fail("exited", f"server exited with code {exited} during startup ({self.phase})")
                if fatal_at is not None and now - fatal_at > FATAL_GRACE_S:
                    self._fail("fatal", f"server reported a fatal error during startup ({self.phase})")
                if now >= next_probe:
                    next_probe = now + 1.0
                    if self.models_listed(client):
                        self.info.startup_s = round(time.monotonic() - t0, 2)
                        self._set_phase("serving", now - t0, task)
                        return
                limit = self.timeouts.compile_idle if self.phase in COMPILE_PHASES else self.timeouts.idle
                if now - last_progress > limit:
                    self._fail(
                        "stall", f"server stalled: no log progress for {limit:.0f}s while {self.phase}"
                    )
                if now - t0 > self.timeouts.absolute:
                    self._fail(
                        "timeout", f"server not ready after {self.timeouts.absolute:.0f}s ({self.phase})"
                    )
                time.sleep(0.25)

    def _read_new(self, offset: int) -> tuple[str, int]:
        assert self.log_path is not None
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return "", offset
        return data.decode("utf-8", errors="replace"), offset + len(data)

    def _note_phase(self, line: str, elapsed: float, task: str) -> None:
        if self.phase == "serving":  # later lines (request logs) do not move a serving server back
            return
        for rule in self._phases:
            if rule.pattern.search(line):
                self._set_phase(rule.phase, elapsed, task)
                return

    def _set_phase(self, phase: str, elapsed: float, task: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.info.phases.setdefault(phase, round(elapsed, 2))
            self.progress.on_message(task, phase)

    def _fail(self, kind: str, message: str) -> None:
        self.stop()
        found = self.findings()
        event = {
            "exited": ("exited", Layer.L5_SERVING),
            "fatal": ("crash", Layer.L5_SERVING),
            "stall": ("stall", Layer.L5_SERVING),
            "timeout": ("timeout", Layer.L5_SERVING),
        }[kind]
        # Our own observation goes last when the log holds the root cause; first when it does not.
        own = event_finding(
            event[0],
            message,
            phase=self.phase,
            log_path=self.log_path,
            layer=event[1],
            component=Component.UNKNOWN,
        )
        findings = [*found, own] if found else [own]
        head = findings[0]
        raise EngineStartError(
            f"{self.stack.name}: {head.located()}",
            findings=findings,
            log_path=self.log_path,
            fix=_fix_for(head.category),
        )


_FIXES = {
    "bad_arg": "remove or correct the engine argument the engine rejected (engine_args in the stack)",
    "port_in_use": "choose another port, or let stackcert pick one (drop 'port' from engine_args)",
    "model_missing": "check the model path (stackcert model prepare for the demo model)",
    "insufficient_memory": "lower gpu_memory_utilization or free memory",
    "oom": "use a smaller max_model_len / batch, or free memory",
    "import_error": "install the missing package (stackcert install)",
    "stall": "see the log tail; raise the limits in ServerTimeouts if the engine is just slow",
    "timeout": "see the log tail; raise ServerTimeouts.absolute if the engine is just slow",
}


def _fix_for(category: str) -> str:
    return _FIXES.get(category, "see the server log")


def serves_model(client: httpx.Client, base_url: str, served_model: str, timeout: float) -> bool:
    """Readiness: the answer of `GET /v1/models` (bounded in size and time) lists `served_model`."""
    deadline = time.monotonic() + timeout
    try:
        with client.stream("GET", f"{base_url}/v1/models", timeout=timeout) as r:
            if r.status_code != 200:
                return False
            json_content(r.headers.get("content-type", ""), "GET /v1/models")
            ids = model_ids(loads(read_capped(r, LIMITS.json_body, deadline), "GET /v1/models"))
    except (httpx.HTTPError, BadAnswer, TimeoutError):
        return False
    return served_model in ids


def substitute_port(argv: Sequence[str], port: int) -> list[str]:
    """A test's override command with its `{port}` placeholders filled in."""
    return [a.replace("{port}", str(port)) for a in argv]
