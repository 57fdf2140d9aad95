"""The steps of `stackcert run`: each calls one library and turns its result into an Outcome.

Steps never raise for a failing stack; NotAvailable (library missing) and EngineError are turned
into outcomes by the runner. Results of earlier steps are read back through `RunContext`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef, Server
from stackcert.errors import EngineError
from stackcert.pipeline.config import RunConfig
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.libs import NotAvailable, Outcome, dump, lib, lib_first, status_of
from stackcert.pipeline.servers import ServerPool
from stackcert.progress import Progress
from stackcert.status import Status

ROLES = ("reference", "candidate")
# Components of operator libraries: a candidate failing on one of these is worth a bisection.
OPERATOR_COMPONENTS = {"flag_gems", "triton", "stackcert_fault_ops", "vllm_fl"}


@dataclass
class RunContext:
    config: RunConfig
    run_dir: Path
    ledger: Ledger
    progress: Progress
    pool: ServerPool
    model: ModelRef | None = None
    results: dict[str, Any] = field(default_factory=dict)

    def stack(self, role: str) -> StackSpec:
        return self.config.reference_stack() if role == "reference" else self.config.candidate_stack()

    def result(self, step_id: str) -> dict[str, Any] | None:
        """The payload of a done step: from this process, or read back from its JSON file."""
        if step_id not in self.results:
            data = self.ledger.result(step_id)
            self.results[step_id] = data
        value = self.results[step_id]
        return value if isinstance(value, dict) else None

    def need_model(self) -> ModelRef:
        if self.model is None:
            raise RuntimeError("the model step did not produce a model")
        return self.model

    def server(self, role: str) -> Server:
        return self.pool.get(self.stack(role), self.need_model())


# --- env, install, model -----------------------------------------------------------------------
def env_step(ctx: RunContext) -> Outcome:
    probe = lib_first(("stackcert.env", "probe_host"), ("stackcert.env.probe", "probe_host"))
    info = probe()
    return Outcome(status=Status.PASS, payload=dump(info))


def install_step(ctx: RunContext) -> Outcome:
    gate = lib_first(("stackcert.install", "run_import_gate"), ("stackcert.install.gate", "run_import_gate"))
    needs = lib_first(
        ("stackcert.install", "requirements_for_stack"), ("stackcert.install.gate", "requirements_for_stack")
    )
    reqs: list[Any] = []
    for role in ROLES:
        for req in needs(ctx.stack(role)):
            if req not in reqs:
                reqs.append(req)
    if not reqs:  # endpoint stacks: nothing runs here, so nothing has to import
        return Outcome(status=Status.SKIPPED, reason="no engine to import for these stacks")
    result = gate(reqs, log_dir=ctx.run_dir / "install", progress=ctx.progress)
    payload = dump(result)
    status = Status.PASS if payload.get("passed") else Status.FAIL
    return Outcome(status=status, reason=str(payload.get("reason") or ""), payload=payload)


def model_step(ctx: RunContext) -> Outcome:
    spec = ctx.config.model
    try:
        resolve = lib("stackcert.models", "resolve_model")
    except NotAvailable:
        resolve = None
    if resolve is not None:
        ref: ModelRef = resolve(spec, progress=ctx.progress)
        note = ""
    elif spec.source == "demo":
        prepared = lib("stackcert.demo.model", "prepare_demo")(progress=ctx.progress)
        ref = ModelRef(
            path=prepared.path,
            served_name=spec.served_name or prepared.served_name,
            tokenizer=prepared.path,
            dtype=spec.dtype,
            max_model_len=spec.max_model_len,
            trust_remote_code=spec.trust_remote_code,
        )
        note = "resolved with stackcert.demo (stackcert.models not available)"
    else:
        path = Path(os.path.expanduser(spec.path or ""))
        if not (path / "config.json").exists():
            return Outcome(status=Status.FAIL, reason=f"no config.json in {path}")
        ref = ModelRef(
            path=path,
            served_name=spec.served_name or path.name,
            tokenizer=path,
            dtype=spec.dtype,
            max_model_len=spec.max_model_len,
            trust_remote_code=spec.trust_remote_code,
        )
        note = "resolved from model.path (stackcert.models not available)"
    ctx.model = ref
    return Outcome(status=Status.PASS, reason=note, payload={"model": ref.model_dump(mode="json")})


def load_model(ctx: RunContext) -> None:
    """On resume: the ModelRef the model step saved."""
    data = ctx.result("model")
    if data and "model" in data:
        ctx.model = ModelRef.model_validate(data["model"])


# --- per stack -----------------------------------------------------------------------------------
def serve_step(ctx: RunContext, role: str) -> Outcome:
    stack = ctx.stack(role)
    try:
        server = ctx.pool.start(stack, ctx.need_model())
    except EngineError as exc:
        findings = list(getattr(exc, "findings", []) or [])
        return Outcome(
            status=Status.FAIL,
            reason=exc.one_line(),
            findings=findings,
            payload={"stack": stack.name, "ok": False, "error": exc.to_dict()},
        )
    info = getattr(server, "info", None)
    payload = {
        "stack": stack.name,
        "ok": True,
        "base_url": server.base_url,
        "served_model": server.served_model,
        "log_path": str(server.log_path or ""),
    }
    if info is not None:
        payload["info"] = dump(info)
    return Outcome(status=Status.PASS, payload=payload)


def smoke_step(ctx: RunContext, role: str) -> Outcome:
    run_smoke = lib("stackcert.smoke", "run_smoke")
    options_cls = lib("stackcert.smoke", "SmokeOptions")
    options = options_cls.model_validate(ctx.config.phases.smoke.options)
    server = ctx.server(role)
    result = run_smoke(
        ctx.stack(role),
        ctx.need_model(),
        run_dir=ctx.run_dir,
        server=server,
        options=options,
        progress=ctx.progress,
    )
    payload = dump(result)
    status = status_of(payload.get("status"), Status.FAIL)
    reason = "" if status is Status.PASS else _first_message(result) or f"smoke {status.value}"
    return Outcome(status=status, reason=reason, payload=payload)


def bench_dir(ctx: RunContext, role: str) -> Path:
    return ctx.run_dir / "stacks" / ctx.stack(role).name / "bench"


def bench_step(ctx: RunContext, role: str) -> Outcome:
    run_bench = lib_first(("stackcert.bench", "run_bench"), ("stackcert.bench.runner", "run_bench"))
    resolve = lib_first(
        ("stackcert.bench", "resolve_profile"), ("stackcert.bench.profiles", "resolve_profile")
    )
    overrides = ctx.config.phases.bench.options
    profiles = [
        type(p).model_validate({**p.model_dump(), **overrides}) if overrides else p
        for name in ctx.config.phases.bench.profiles
        for p in resolve(name)
    ]
    out_dir = bench_dir(ctx, role)
    _keep_earlier_attempt(out_dir)
    server = ctx.server(role)
    result = run_bench(server, ctx.need_model(), profiles, out_dir=out_dir, progress=ctx.progress)
    payload = dump(result)
    status = status_of(payload.get("status"), Status.PASS)
    return Outcome(
        status=status, reason="" if status is Status.PASS else f"bench {status.value}", payload=payload
    )


def _keep_earlier_attempt(out_dir: Path) -> None:
    """A rerun (resume) must not lose what an interrupted attempt recorded: move it aside."""
    if out_dir.exists() and any(out_dir.iterdir()):
        n = 1
        while out_dir.with_name(f"{out_dir.name}.attempt{n}").exists():
            n += 1
        out_dir.rename(out_dir.with_name(f"{out_dir.name}.attempt{n}"))


def consistency_step(ctx: RunContext) -> Outcome:
    run_consistency = lib_first(
        ("stackcert.consistency", "run_consistency"), ("stackcert.consistency.pipeline", "run_consistency")
    )
    options_cls = lib_first(
        ("stackcert.consistency", "ConsistencyOptions"),
        ("stackcert.consistency.options", "ConsistencyOptions"),
    )
    values = dict(ctx.config.phases.consistency.options)
    if ctx.config.gates.consistency:  # the gate's tolerance overrides the phase's own
        values["tolerance"] = {**values.get("tolerance", {}), **ctx.config.gates.consistency}
    options = options_cls.model_validate(values)
    reference, candidate = ctx.server("reference"), ctx.server("candidate")
    result = run_consistency(
        reference,
        candidate,
        ctx.need_model(),
        options=options,
        out_dir=ctx.run_dir / "consistency",
        progress=ctx.progress,
    )
    payload = dump(result)
    raw = str(getattr(payload.get("status"), "value", payload.get("status"))).lower()
    status = Status.PASS if raw == "pass" else Status.FAIL
    reason = "" if raw == "pass" else f"consistency {raw}"
    return Outcome(status=status, reason=reason, payload=payload)


def _first_message(result: Any) -> str:
    for f in getattr(result, "findings", []) or []:
        return str(f.located())
    return ""
