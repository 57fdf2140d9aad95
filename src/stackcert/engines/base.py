"""What every engine offers: a served model behind an OpenAI-compatible URL, and offline generation.

The concrete engines (vllm.py, transformers_engine.py, endpoint.py) implement these; the steps
(smoke, consistency, bench, bisect, pipeline) only talk to these types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from stackcert.config import StackSpec
from stackcert.diagnose.findings import Finding


class ModelRef(BaseModel):
    """A model resolved to files on disk (see stackcert.models.resolve_model)."""

    path: Path
    served_name: str
    tokenizer: Path
    dtype: str = "bfloat16"
    max_model_len: int = 2048
    trust_remote_code: bool = False
    chat_template: Path | None = None
    has_chat_template: bool = False


class Server(Protocol):
    """A running OpenAI-compatible server for one stack. The OpenAI API lives at `base_url + '/v1'`."""

    stack: StackSpec
    base_url: str
    served_model: str
    log_path: Path | None

    def alive(self) -> bool: ...

    def findings(self) -> list[Finding]: ...


class Completion(BaseModel):
    prompt: str
    text: str
    token_ids: list[int] = Field(default_factory=list)
    finish_reason: str | None = None
    # Per generated token: {token_id: logprob} of the top-k alternatives (when asked for).
    top_logprobs: list[dict[int, float]] = Field(default_factory=list)


class OfflineResult(BaseModel):
    stack: str
    engine: str
    ok: bool
    completions: list[Completion] = Field(default_factory=list)
    duration_s: float = 0.0
    log_path: Path | None = None
    findings: list[Finding] = Field(default_factory=list)
