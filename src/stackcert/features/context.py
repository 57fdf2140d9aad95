"""What every probe works with: the server, its settings, the checkpoint, the wire and the time budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef, Server
from stackcert.features.checkpoint import Checkpoint
from stackcert.features.engine_config import EngineView, Setting
from stackcert.features.models import (
    Basis,
    FeatureId,
    FeatureOptions,
    FeatureResult,
    Outcome,
    RequestEvidence,
)
from stackcert.features.wire import Reply, Wire

MIN_REQUEST_S = 1.0  # a request is not sent with less time than this left


class Budget:
    """A deadline for the whole matrix; requests get the smaller of their own limit and what is left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    @property
    def spent(self) -> bool:
        """Too little left to send one more request."""
        return self.left() < MIN_REQUEST_S

    def timeout(self, wanted: float) -> float:
        """The timeout for one request: `wanted`, cut to what is left."""
        return max(0.1, min(wanted, self.left()))


@dataclass
class ProbeContext:
    """The shared state of one `probe_features` call."""

    server: Server
    stack: StackSpec
    model: ModelRef
    options: FeatureOptions
    wire: Wire
    view: EngineView
    checkpoint: Checkpoint
    budget: Budget
    served_model: str
    max_model_len: Setting | None = None
    block_size: int | None = None
    _metrics_ok: bool | None = field(default=None, repr=False)

    def max_model_len_value(self) -> int | None:
        """max_model_len as an integer, if known."""
        if self.max_model_len is None:
            return None
        try:
            return int(self.max_model_len.value)
        except ValueError:
            return None

    def post(self, path: str, body: dict[str, object], *, timeout: float | None = None) -> Reply:
        """POST within the budget."""
        return self.wire.post(
            path, dict(body), timeout=self.budget.timeout(timeout or self.options.request_timeout_s)
        )

    def get_text(self, path: str) -> Reply:
        """GET a text resource within the budget."""
        return self.wire.get_text(
            path, timeout=self.budget.timeout(min(10.0, self.options.request_timeout_s))
        )

    def completion(self, prompt: str, max_tokens: int, **extra: object) -> Reply:
        """A greedy /v1/completions request for the served model."""
        body: dict[str, object] = {
            "model": self.served_model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            **extra,
        }
        return self.post("/v1/completions", body)


# What a probe decides: one of the four outcomes, or 'disabled' / 'error' (outcome unsupported).
Decision = Literal["supported", "unsupported", "not-applicable", "checkpoint-missing", "disabled", "error"]


def result(
    feature: FeatureId,
    decision: Decision,
    evidence: str,
    *,
    decided_by: str | None = None,
    mode: str | None = None,
    requests: list[RequestEvidence] | None = None,
    log_lines: list[str] | None = None,
    metrics: dict[str, float] | None = None,
    basis: Basis | None = None,
) -> FeatureResult:
    """A FeatureResult (its duration is set by the caller); `basis` follows from the decision and the
    requests: disabled / error give outcome unsupported; otherwise request if any was sent, else config."""
    outcome: Outcome
    how: Basis
    if decision == "disabled" or decision == "error":
        outcome, how = "unsupported", decision  # an explicit basis cannot make these anything else
    else:
        outcome, how = decision, basis or ("request" if requests else "config")
    return FeatureResult(
        feature=feature,
        outcome=outcome,
        basis=how,
        evidence=evidence,
        decided_by=decided_by,
        mode=mode,
        requests=requests or [],
        log_lines=log_lines or [],
        metrics=metrics or {},
    )
