"""FlagGems on a real GPU: verify-like comparison native vs FlagGems in-process, then bisection.

The model is a Gemma-3 architecture with random weights (``Gemma3ForCausalLM`` from a small
``Gemma3TextConfig``, fixed seed): the real demo checkpoint does not travel to the GPU host. The
reference is the same model with native PyTorch operators; the candidate has FlagGems enabled
through :func:`stackcert.engines.operators.apply`. A JSON summary goes to ``$STACKCERT_GPU_OUT``
(or the test's tmp folder). How to run it: docs/results/gpu-gems.md.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

PROMPT_IDS = [2, 105, 2364, 107, 3689, 563, 236743, 236770, 236778, 236862, 236832, 236881, 106, 107]


def _summary_path(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("STACKCERT_GPU_OUT", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "gpu-gems-summary.json"


@pytest.fixture(scope="module")
def gems() -> Any:
    return pytest.importorskip("flag_gems")


@pytest.fixture(scope="module")
def model() -> Any:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(
        vocab_size=4096,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=512,
        sliding_window=16,
    )
    m = Gemma3ForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
    return m


def _session(model: Any, tol: float) -> Any:
    from stackcert.config import OperatorSelection
    from stackcert.diagnose.probe_worker import ProbeSession, WorkerSpec

    spec = WorkerSpec(
        model_path=Path("."),
        dtype="bfloat16",
        device="cuda",
        max_new_tokens=8,
        selection=OperatorSelection(library="flag_gems"),
        logprob_tol=tol,
    )
    return ProbeSession.from_model(spec, model, [i % 4096 for i in PROMPT_IDS])


def test_gems_verify_then_bisect(gems: Any, model: Any, tmp_path: Path) -> None:
    from stackcert.config import OperatorSelection
    from stackcert.diagnose.bisect import bisect_operators
    from stackcert.engines import operators

    summary: dict[str, Any] = {
        "torch": torch.__version__,
        "flag_gems": gems.__version__,
        "device": torch.cuda.get_device_name(0),
    }
    # What FlagGems really registers in this process, and that an exclusion reaches it.
    rec = tmp_path / "operators.json"
    effective = operators.apply(OperatorSelection(library="flag_gems"), record_path=rec)
    operators.reset()
    assert effective and json.loads(rec.read_text())["effective"] == effective
    excluded_one = operators.apply(OperatorSelection(library="flag_gems", exclude=[effective[0]]))
    operators.reset()
    assert effective[0] not in excluded_one and len(excluded_one) == len(effective) - 1
    summary["effective_count"] = len(effective)

    # Verify: native vs FlagGems, at a bf16-sized tolerance.
    t0 = time.monotonic()
    session = _session(model, tol=0.5)
    verify, _ = session.probe([])
    summary["reference_tokens"] = session.ref_tokens
    summary["verify"] = {**verify.model_dump(), "duration_s": round(time.monotonic() - t0, 2)}
    if not verify.passed:
        res = bisect_operators(
            effective, lambda ex: session.probe(ex)[0], traceback_op=verify.operator, max_probes=40
        )
        summary["bisect"] = res.model_dump(mode="json")
        assert res.status in ("found", "not_in_library", "inconsistent", "budget_exhausted")
        if res.status == "found":
            assert session.probe(res.exclude)[0].passed

    # Strict: which operators keep FlagGems from being bit-exact with native (tolerance 0).
    t1 = time.monotonic()
    strict = _session(model, tol=0.0)
    strict_verify, _ = strict.probe([])
    summary["strict_verify"] = strict_verify.model_dump()
    if not strict_verify.passed:
        res = bisect_operators(effective, lambda ex: strict.probe(ex)[0], max_probes=60)
        summary["strict_bisect"] = {
            **res.model_dump(mode="json"),
            "duration_s": round(time.monotonic() - t1, 2),
        }
        assert res.status in ("found", "not_in_library", "inconsistent", "budget_exhausted")
        if res.status == "found":
            assert res.verified
            assert strict.probe(res.exclude)[0].passed
    _summary_path(tmp_path).write_text(json.dumps(summary, indent=2, default=str))
