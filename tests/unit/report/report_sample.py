"""A hand-made report (no engine) for the renderer tests; the model output carries an injection."""

from __future__ import annotations

from typing import Any

INJECT = "<script>document.title='PWNED'</script>"


def sample_report(status: str = "PARTIAL") -> dict[str, Any]:
    step = {"status": "success", "duration_seconds": 1.0, "detail": ""}
    verdict = {
        "PASS": {"verdict": "PASS", "recommended": "full", "exit_code": 0, "reasons": []},
        "PARTIAL": {
            "verdict": "PARTIAL",
            "recommended": "base",
            "exit_code": 3,
            "reasons": ["performance gate missed (ratio 0.50)"],
        },
        "FAIL": {
            "verdict": "FAIL",
            "recommended": "none",
            "exit_code": 1,
            "reasons": ["reference cannot serve"],
        },
    }[status]
    return {
        "status": status,
        "pipeline": "stackcert run",
        "model": {
            "name": "gemma-3-270m",
            "path": "/m",
            "source": "demo",
            "dtype": "bfloat16",
            "max_model_len": 2048,
        },
        "steps": {k: step for k in ("install_stack", "env_verify", "model_verify", "perf_test")},
        "errors": ["candidate.bench: performance gate missed"],
        "conclusion": f"{status}: the candidate output was {INJECT}",
        "run_id": "run-1",
        "run_dir": "/tmp/run-1",
        "created": "2026-11-22T16:00:00+00:00",
        "verdict": verdict,
        "reference": "eager",
        "candidate": "compiled",
        "engine_starts": {"eager": 1, "compiled": 1},
        "timeline": [
            {"id": "env", "status": "pass", "duration_s": 1.5, "started": "2026-11-22T16:00:00+00:00"},
            {"id": "candidate.bench", "status": "fail", "duration_s": 60.0, "reason": "ratio 0.5"},
            {"id": "bisect", "status": "skipped", "reason": "not available"},
        ],
        "env": {
            "python": "3.11",
            "python_executable": "/usr/bin/python3",
            "arch": "x86_64",
            "os": "Linux",
            "disk_path": "/",
            "cpu_model": "x86_64",
            "cpu_count": 2,
        },
        "stacks": {
            "eager": {
                "name": "eager",
                "role": "reference",
                "spec": {"name": "eager", "engine": "vllm"},
                "smoke": {"status": "pass", "stack": "eager", "engine": "vllm", "output_sample": INJECT},
            },
        },
        "evaluation": [
            {"group": "smoke", "metric": "sample output", "reference": "12+7 = 19", "candidate": INJECT},
            {
                "group": "performance",
                "metric": "output tok/s",
                "reference": "100.0",
                "candidate": "50.0",
                "note": "ratio 0.50 < 0.8",
            },
        ],
        "findings": [
            {
                "step": "candidate.smoke",
                "category": "bad_output",
                "message": f"output was {INJECT}",
                "layer": "L6",
                "component": "torch",
                "signature": "bad-output",
                "excerpt": {"path": "server.log", "first_line": 10, "lines": [INJECT, "Traceback"]},
            },
        ],
        "serve": {
            "stack": "eager",
            "command": ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/m"],
            "env": {"VLLM_CPU_KVCACHE_SPACE": "2"},
            "unset_env": ["FLAGCX_PATH"],
            "served_name": "gemma-3-270m",
            "port": 8000,
        },
        "series": {
            "latency": {"eager": [100, 120, 130, 150], "compiled": [200, 210, 260]},
            "throughput": {"eager": [[1, 50.0], [2, 80.0]], "compiled": [[1, 30.0], [2, 40.0]]},
            "kl": [[0, 0.001], [1, 0.004], [2, 0.002]],
        },
    }
