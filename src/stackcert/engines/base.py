"""What every engine offers: a served model behind an OpenAI-compatible URL, and offline generation.

The concrete engines (vllm.py, transformers_engine.py, endpoint.py) implement these; the steps
(smoke, consistency, bench, bisect, pipeline) only talk to these types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from stackcert.config import StackSpec
from stackcert.errors import EngineError
from stackcert.evidence.findings import Finding


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
    info: ServerInfo

    def alive(self) -> bool:
        """Whether the server is still up: its process runs, or (for a URL) it still answers."""

    def findings(self) -> list[Finding]:
        """What went wrong according to the server's log, root cause first (empty when nothing did)."""


class Completion(BaseModel):
    """One offline generation: the prompt, the text, its token ids, why it stopped, top-k log-probs."""

    prompt: str
    text: str
    token_ids: list[int] = Field(default_factory=list)
    finish_reason: str | None = None
    # Per generated token: {token_id: logprob} of the top-k alternatives (when asked for).
    top_logprobs: list[dict[int, float]] = Field(default_factory=list)


class OfflineResult(BaseModel):
    """A stack's offline generation run: whether it worked, the completions, its log and findings."""

    stack: str
    engine: str
    ok: bool
    completions: list[Completion] = Field(default_factory=list)
    duration_s: float = 0.0
    log_path: Path | None = None
    findings: list[Finding] = Field(default_factory=list)


class ServerTimeouts(BaseModel):
    """Startup and request limits. CPU defaults: a compiled vLLM start on 2 cores takes minutes."""

    idle: float = Field(240.0, gt=0, description="no new log line for this long (outside compiling) = stall")
    compile_idle: float = Field(720.0, gt=0, description="idle limit while compiling or capturing graphs")
    absolute: float = Field(1500.0, gt=0, description="the whole startup may not take longer")
    request: float = Field(180.0, gt=0, description="one HTTP request (readiness, completions)")
    stop_grace: float = Field(10.0, ge=0, description="SIGTERM to SIGKILL when stopping")


class ServerInfo(BaseModel):
    """What was started and how; written to <run_dir>/server.json. Never holds secrets."""

    stack: str
    engine: str
    launcher: str = Field(
        "", description="how the engine was started: api_server_module | vllm_cli | hf_server | url"
    )
    base_url: str
    served_model: str
    argv: list[str] = Field(default_factory=list)
    log_path: Path | None = None
    pid: int | None = None
    port: int | None = None
    startup_s: float = 0.0
    phases: dict[str, float] = Field(
        default_factory=dict, description="phase -> seconds after start it began"
    )
    effective_ops: list[str] | None = None


class EngineStartError(EngineError):
    """An engine that did not come up; `findings` say where and why (root cause first)."""

    def __init__(
        self,
        what: str,
        *,
        findings: list[Finding],
        log_path: Path | None = None,
        where: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(what, where=where or (str(log_path) if log_path else None), fix=fix)
        self.findings = findings
        self.log_path = log_path
