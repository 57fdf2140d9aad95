"""Model-adaptation checks: the feature matrix of a running server, and the dummy / real weight gates.

Public API (see docs/features.md):

- ``probe_features(server, stack, model, *, options=None, progress=None) -> FeatureMatrix`` — probes a
  running OpenAI-compatible server (graph mode, prefix caching, chunked prefill, expert parallelism,
  MTP / speculative decoding, multimodal, long context, structured output, capacity) within
  ``options.budget_s``; a broken answer is an ``unsupported`` outcome (basis ``error``), never an exception.
- ``dummy_weight_gate(stack, model, *, run_dir, timeouts=None, progress=None) -> WeightGate`` — stage A:
  the stack started with ``--load-format dummy``, request-level checks, stopped.
- ``serving_check(server) -> GateCheck`` and ``real_weight_gate(server) -> WeightGate`` — stage B checks
  on a running real-weights server.
- ``weight_gates(stack, stage_a=..., stage_b=..., reference=None) -> WeightGates`` — both stages, the
  dummy-vs-real matrix and the non-equivalence statements.
- ``features_document(matrix)`` / ``gates_document(gates)`` — the JSON documents (common envelope);
  ``write_features(path, matrix)`` writes ``features.json``; ``load_features(path)`` reads it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stackcert.features.gates import (
    dummy_stack,
    dummy_weight_gate,
    non_equivalence,
    real_weight_gate,
    serving_check,
    weight_gates,
)
from stackcert.features.models import (
    BASES,
    FEATURE_IDS,
    FEATURE_TITLES,
    FEATURES_KIND,
    FEATURES_SCHEMA,
    GATES_KIND,
    OUTCOMES,
    Basis,
    CapacityBaseline,
    ConcurrencyStep,
    DummyRealRow,
    FeatureId,
    FeatureMatrix,
    FeatureOptions,
    FeatureResult,
    GateCheck,
    Outcome,
    RequestEvidence,
    WeightGate,
    WeightGates,
)
from stackcert.features.probe import probe_features
from stackcert.jsonio import envelope, read_json, write_json_atomic

__all__ = [
    "BASES",
    "FEATURES_KIND",
    "FEATURES_SCHEMA",
    "FEATURE_IDS",
    "FEATURE_TITLES",
    "GATES_KIND",
    "OUTCOMES",
    "Basis",
    "CapacityBaseline",
    "ConcurrencyStep",
    "DummyRealRow",
    "FeatureId",
    "FeatureMatrix",
    "FeatureOptions",
    "FeatureResult",
    "GateCheck",
    "Outcome",
    "RequestEvidence",
    "WeightGate",
    "WeightGates",
    "dummy_stack",
    "dummy_weight_gate",
    "features_document",
    "gates_document",
    "load_features",
    "non_equivalence",
    "probe_features",
    "real_weight_gate",
    "serving_check",
    "weight_gates",
    "write_features",
]


def features_document(matrix: FeatureMatrix, *, started: str | None = None) -> dict[str, Any]:
    """`features.json`'s content: the common envelope (schema_version, kind 'features') and the matrix."""
    return envelope(FEATURES_KIND, matrix.model_dump(mode="json"), started=started)


def gates_document(gates: WeightGates, *, started: str | None = None) -> dict[str, Any]:
    """The weight gates as a JSON document (kind 'weight-gates')."""
    return envelope(GATES_KIND, gates.model_dump(mode="json"), started=started)


def write_features(path: Path, matrix: FeatureMatrix, *, started: str | None = None) -> Path:
    """Write `features.json` atomically (0600, secrets redacted)."""
    return write_json_atomic(path, features_document(matrix, started=started))


def load_features(path: Path) -> FeatureMatrix:
    """Read a `features.json` back (the envelope's keys are ignored)."""
    return FeatureMatrix.model_validate(read_json(path))
