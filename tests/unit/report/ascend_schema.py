"""vllm-ascend's accuracy test config (tests/e2e/models/configs/*.yaml) as a strict pydantic model.

Written from what its runner reads (vllm-project/vllm-ascend tests/e2e/models/test_lm_eval_correctness.py):
`model_name` (lm-eval's `pretrained`), `model_type` (lm-eval model, default "vllm"), `hardware`,
`serve` (vLLM arguments: dtype, max_model_len, trust_remote_code, gpu_memory_utilization,
tensor_parallel_size, enforce_eager, ...), `tasks[].name`, `tasks[].metrics[].{name, value}`,
`num_fewshot`, `limit`, `apply_chat_template`, `fewshot_as_multiturn`, `batch_size`. Unknown keys
are refused so a generator cannot drift from the schema unnoticed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metric(_Strict):
    name: str = Field(..., min_length=1)
    value: float


class Task(_Strict):
    name: str = Field(..., min_length=1)
    metrics: list[Metric] = Field(..., min_length=1)


class AscendAccuracyConfig(_Strict):
    model_name: str = Field(..., min_length=1)
    model_type: str = "vllm"
    hardware: str = Field(..., min_length=1)
    runner: str | None = None
    serve: dict[str, str | int | float | bool] = Field(default_factory=dict)
    tasks: list[Task]
    num_fewshot: int | None = None
    limit: int | float | None = None
    apply_chat_template: bool | None = None
    fewshot_as_multiturn: bool | None = None
    batch_size: int | str | None = None


# vllm-project/vllm-ascend tests/e2e/models/configs/Qwen3-8B.yaml at commit dba7d018 (data, for the
# schema's own check against the upstream format).
UPSTREAM_QWEN3_8B = """\
model_name: "Qwen/Qwen3-8B"
model_type: "vllm"
hardware: "Atlas A2 Series"

serve:
  tensor_parallel_size: 1
  dtype: auto
  max_model_len: 4096
  gpu_memory_utilization: 0.8
  trust_remote_code: false
  enable_thinking: false

tasks:
- name: "gsm8k"
  metrics:
  - name: "exact_match,strict-match"
    value: 0.765
  - name: "exact_match,flexible-extract"
    value: 0.81

num_fewshot: 5
"""
