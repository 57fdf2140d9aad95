"""The in-process half of a bisect probe: load the model once, run the candidate with some operators
excluded, and judge it against the reference's greedy tokens and log-probabilities.

Runs inside a child process (``python -m stackcert.diagnose.probe_worker``) that serves many probes
over a Unix socket, one JSON line per request; or in-process (the GPU test) through
:class:`ProbeSession`. A crash inside an operator is a Python exception, so the worker survives it;
the parent restarts the worker only when a probe kills or hangs it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from stackcert.config import OperatorSelection
from stackcert.diagnose.bisect import ProbeOutcome
from stackcert.engines import operators


class WorkerSpec(BaseModel):
    """What a probe worker loads and how it judges: model, device, prompt, operator selections, tolerances."""

    model_path: Path
    dtype: str = "float32"
    device: str = "cpu"
    prompt: str = "Question: What is 12+7?\nAnswer:"
    max_new_tokens: int = 8
    selection: OperatorSelection = Field(description="the candidate's operator selection")
    reference_selection: OperatorSelection | None = None
    top_k: int = Field(20, description="log-probs compared at the reference's top-k tokens per position")
    logprob_tol: float = Field(0.01, description="largest |Δ log-prob| that still passes")
    attn_implementation: str | None = None
    record_dir: Path | None = Field(None, description="where each probe records its effective operator set")


_OP_IN_MESSAGE = re.compile(r"operator '([A-Za-z0-9_.]+)'")
_GEMS_FRAME = re.compile(r"flag_gems/(?:ops|fused|experimental_ops)/([A-Za-z0-9_]+)\.py")


def operator_from_exception(exc: BaseException, active: list[str]) -> str | None:
    """The library operator a failure names: in its message, or the deepest library frame."""
    m = _OP_IN_MESSAGE.search(str(exc))
    if m and m.group(1) in active:
        return m.group(1)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        g = _GEMS_FRAME.search(frame.filename.replace("\\", "/"))
        for name in (frame.name, g.group(1) if g else None):
            if name in active:
                return name
    return None


class ProbeSession:
    """One loaded model; the reference once, then any number of candidate probes."""

    def __init__(self, spec: WorkerSpec) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.torch = torch
        operators.reset()
        kwargs: dict[str, Any] = {"dtype": getattr(torch, spec.dtype)}
        if spec.attn_implementation:
            kwargs["attn_implementation"] = spec.attn_implementation
        tok: Any = AutoTokenizer.from_pretrained(spec.model_path)
        model: Any = AutoModelForCausalLM.from_pretrained(spec.model_path, **kwargs)
        self.model = model.to(spec.device).eval()
        self.inputs = tok(spec.prompt, return_tensors="pt").to(spec.device)
        self.probes = 0
        self.ref_tokens, self.ref_top = self._reference()

    @classmethod
    def from_model(cls, spec: WorkerSpec, model: Any, input_ids: list[int]) -> ProbeSession:
        """A session over an already built model (the GPU test builds one with random weights)."""
        import torch

        self = cls.__new__(cls)
        self.spec, self.torch, self.model = spec, torch, model.eval()
        self.inputs = {"input_ids": torch.tensor([input_ids], device=spec.device)}
        self.probes = 0
        operators.reset()
        self.ref_tokens, self.ref_top = self._reference()
        return self

    def _generate(self) -> list[int]:
        with self.torch.no_grad():
            out = self.model.generate(
                **self.inputs,
                max_new_tokens=self.spec.max_new_tokens,
                do_sample=False,
            )
        return [int(t) for t in out[0][self.inputs["input_ids"].shape[1] :].tolist()]

    def _logprobs(self, tokens: list[int]) -> Any:
        """Teacher-forced log-probs at the generated positions, over the reference's tokens."""
        torch = self.torch
        prompt = self.inputs["input_ids"]
        seq = torch.cat([prompt, torch.tensor([tokens], device=prompt.device, dtype=prompt.dtype)], dim=1)
        with torch.no_grad():
            logits = self.model(input_ids=seq).logits[0, prompt.shape[1] - 1 : -1].float()
        return torch.log_softmax(logits, dim=-1)

    def _reference(self) -> tuple[list[int], Any]:
        if self.spec.reference_selection is not None:
            operators.apply(self.spec.reference_selection)
        try:
            tokens = self._generate()
            lp = self._logprobs(tokens)
        finally:
            operators.reset()
        top = lp.topk(self.spec.top_k)
        if not bool(self.torch.isfinite(top.values).all()):
            raise RuntimeError("the reference run produced non-finite log-probs")
        return tokens, top

    def effective(self, excluded: list[str] | None = None) -> list[str]:
        """The operators the selection actually replaces with these excluded (applied, then reset)."""
        try:
            return operators.apply(self._selection(excluded or []))
        finally:
            operators.reset()

    def generate(self, excluded: list[str]) -> list[int]:
        """The candidate's own greedy tokens (the fixture check: no faults = native output)."""
        try:
            operators.apply(self._selection(excluded))
            return self._generate()
        finally:
            operators.reset()

    def _selection(self, excluded: list[str]) -> OperatorSelection:
        sel = self.spec.selection
        return sel.model_copy(update={"exclude": list(dict.fromkeys([*sel.exclude, *excluded]))})

    def probe(self, excluded: list[str]) -> tuple[ProbeOutcome, list[str]]:
        """Judge the candidate with these operators excluded; the outcome and the operators in effect."""
        self.probes += 1
        record = (
            self.spec.record_dir / f"probe-{self.probes:03d}-operators.json" if self.spec.record_dir else None
        )
        effective: list[str] = []
        try:
            effective = operators.apply(self._selection(excluded), record_path=record)
            lp = self._logprobs(self.ref_tokens)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            op = operator_from_exception(exc, effective)
            return ProbeOutcome(
                passed=False, category="crash", reason=f"{type(exc).__name__}: {first}"[:500], operator=op
            ), effective
        finally:
            operators.reset()
            if self.spec.device.startswith("cuda"):
                self.torch.cuda.synchronize()
        return self._judge(lp), effective

    def _judge(self, lp: Any) -> ProbeOutcome:
        # Teacher-forced over the reference's greedy tokens: the first position whose argmax differs
        # is where greedy generation would diverge, so one forward pass replaces a generate().
        torch = self.torch
        values, indices = self.ref_top
        got = lp.gather(1, indices)
        nan = bool(torch.isnan(lp).any())
        delta = float((got - values).abs().max()) if not nan else math.inf
        ref_argmax = indices[:, 0].tolist()
        agree = next(
            (i for i, (a, b) in enumerate(zip(lp.argmax(-1).tolist(), ref_argmax, strict=True)) if a != b),
            None,
        )
        metrics = {"max_abs_logprob_delta": delta, "tokens_compared": float(len(self.ref_tokens))}
        if agree is not None:
            metrics["first_divergence"] = float(agree)
        if nan or not math.isfinite(delta):
            return ProbeOutcome(
                passed=False, category="nan", reason="non-finite log-probs (NaN/inf)", metrics=metrics
            )
        if agree is not None:
            return ProbeOutcome(
                passed=False,
                category="mismatch",
                reason=f"greedy tokens diverge at position {agree}",
                metrics=metrics,
            )
        if delta > self.spec.logprob_tol:
            return ProbeOutcome(
                passed=False,
                category="drift",
                reason=f"max |Δ log-prob| {delta:.4g} > {self.spec.logprob_tol:g}",
                metrics=metrics,
            )
        return ProbeOutcome(passed=True, category="pass", metrics=metrics)


def serve(spec: WorkerSpec, sock_path: str) -> int:
    """Load once, then answer one JSON line per request until the parent hangs up."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    conn, _ = server.accept()
    stream = conn.makefile("rwb")

    def send(obj: dict[str, Any]) -> None:
        stream.write(json.dumps(obj).encode() + b"\n")
        stream.flush()

    started = time.monotonic()
    try:
        session = ProbeSession(spec)
    except Exception as exc:
        traceback.print_exc()
        send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    send(
        {
            "ready": True,
            "load_s": round(time.monotonic() - started, 2),
            "reference_tokens": session.ref_tokens,
        }
    )
    for line in stream:
        req = json.loads(line)
        kind = req.get("kind", "probe")
        excluded = list(req.get("excluded", []))
        try:
            if kind == "select":  # a new candidate selection, same model and reference
                sel = OperatorSelection.model_validate(req["selection"])
                rec = Path(req["record_dir"]) if req.get("record_dir") else None
                session.spec = session.spec.model_copy(update={"selection": sel, "record_dir": rec})
                send({"ok": True})
            elif kind == "effective":
                send({"effective": session.effective(excluded)})
            elif kind == "generate":
                send({"tokens": session.generate(excluded)})
            else:
                t0 = time.monotonic()
                outcome, effective = session.probe(excluded)
                print(f"probe excluded={excluded} -> {outcome.category} {outcome.reason}", flush=True)
                send(
                    {
                        "outcome": outcome.model_dump(),
                        "effective": effective,
                        "duration_s": time.monotonic() - t0,
                    }
                )
        except Exception as exc:  # a usage error in a request must not kill the worker
            traceback.print_exc()
            send({"error": f"{type(exc).__name__}: {exc}"})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: load the worker spec and serve probes on the Unix socket."""
    ap = argparse.ArgumentParser(prog="stackcert.diagnose.probe_worker")
    ap.add_argument("--spec", required=True, type=Path)
    ap.add_argument("--socket", required=True)
    args = ap.parse_args(argv)
    spec = WorkerSpec.model_validate_json(args.spec.read_text(encoding="utf-8"))
    return serve(spec, args.socket)


if __name__ == "__main__":
    sys.exit(main())
