"""Per-request records and per-run metrics: the data the benchmark produces (pydantic, JSON-ready)."""

from __future__ import annotations

import itertools

from pydantic import BaseModel, Field

from stackcert.evidence.findings import Finding


class RequestRecord(BaseModel):
    """One request as the client saw it. Requests never raise: a failure is a record with `error`.

    Times are `time.perf_counter()` seconds. `chunk_times` holds the arrival of every content
    chunk (the first one is the first token); `chunk_tokens` the tokens each chunk carried when
    the server told us (continuous usage), else empty.
    """

    index: int
    profile: str = ""
    point: str = ""
    repeat: int = 0
    warmup: bool = False
    success: bool = False
    error: str | None = None
    http_status: int | None = None
    intended_start: float = 0.0  # when the load pattern wanted it sent (coordinated omission)
    start: float = 0.0  # when it was actually sent
    ttft: float = 0.0  # seconds from `start` to the first content chunk
    latency: float = 0.0  # E2EL: seconds from `start` to the last content chunk
    chunk_times: list[float] = Field(default_factory=list)
    chunk_tokens: list[int] = Field(default_factory=list)
    prompt_len: int = 0  # what the dataset built (client tokenizer)
    expected_output_len: int = 0
    usage_prompt_tokens: int | None = None
    usage_output_tokens: int | None = None
    tokenizer_output_tokens: int | None = None
    output_tokens: int = 0  # the count used by the metrics: usage, else the client tokenizer
    token_source: str = "usage"  # usage | tokenizer | chunks
    token_mismatch: bool = False  # usage and client tokenizer disagree
    generated_text: str = ""
    finish_reason: str | None = None
    malformed_lines: int = 0

    @property
    def itl(self) -> list[float]:
        """Per-chunk inter-token latencies (vLLM's definition): gaps between content chunks."""
        t = self.chunk_times
        return [b - a for a, b in itertools.pairwise(t)]

    @property
    def itl_per_token(self) -> list[float]:
        """A chunk carrying k tokens after a gap g counts as k gaps of g/k."""
        gaps = self.itl
        if len(self.chunk_tokens) != len(self.chunk_times):
            return gaps
        out: list[float] = []
        for gap, k in zip(gaps, self.chunk_tokens[1:], strict=False):
            k = max(k, 1)
            out.extend([gap / k] * k)
        return out

    @property
    def delay(self) -> float:
        """How late the request went out compared with the schedule."""
        return max(self.start - self.intended_start, 0.0)


class Stats(BaseModel):
    """Summary of one latency series (ms): mean, median, std, min, max, count and the asked percentiles."""

    mean: float = 0.0
    median: float = 0.0
    std: float = 0.0
    min: float = 0.0
    max: float = 0.0
    count: int = 0
    percentiles: dict[str, float] = Field(default_factory=dict)  # "p99" -> value


class RunMetrics(BaseModel):
    """Metrics of one run (one load point, one repeat), named and computed as vLLM's bench serve."""

    duration_s: float
    completed: int
    failed: int
    total_input: int
    total_output: int
    request_throughput: float
    request_goodput: float | None = None
    output_throughput: float
    total_token_throughput: float
    max_output_tokens_per_s: float = 0.0
    max_concurrent_requests: int = 0
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats  # per chunk (vLLM)
    itl_per_token_ms: Stats
    e2el_ms: Stats
    # Measured from the intended send time: the load-generator delay is not hidden (coordinated omission).
    ttft_intended_ms: Stats
    e2el_intended_ms: Stats
    send_delay_ms: Stats
    errors: dict[str, int] = Field(default_factory=dict)  # message -> count
    token_mismatches: int = 0
    token_sources: dict[str, int] = Field(default_factory=dict)
    malformed_lines: int = 0


class RunResult(BaseModel):
    """One repeat of one load point."""

    repeat: int
    discarded: bool = False
    metrics: RunMetrics


class PointResult(BaseModel):
    """One load point (a concurrency or a request rate) of one profile, over its repeats."""

    profile: str
    point: str  # "c=4" or "rate=2"
    concurrency: int | None = None
    request_rate: float | None = None
    num_prompts: int
    runs: list[RunResult] = Field(default_factory=list)

    def kept(self) -> list[RunMetrics]:
        """The metrics of the runs that count (the discarded first repeat left out)."""
        return [r.metrics for r in self.runs if not r.discarded]


class BenchResult(BaseModel):
    """A stack's benchmark: status, the profiles as run, every load point's runs, records and findings."""

    status: str  # stackcert.status.Status value: pass | fail | crash
    reason: str = ""
    base_url: str
    model: str
    tokenizer: str | None = None
    profiles: list[dict[str, object]] = Field(default_factory=list)  # the profiles as run (scaled)
    points: list[PointResult] = Field(default_factory=list)
    records_path: str | None = None
    log_excerpt: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    duration_s: float = 0.0
