"""The bench step: profiles → load points → repeats, records appended to JSONL while running,
metrics per run, one summary JSON. Library entry: `run_bench` (sync) / `run_bench_async`."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp

from stackcert.answers import LIMITS, BadAnswer, clean, json_content, loads, mib, model_ids
from stackcert.bench import datasets
from stackcert.bench.client import ClientConfig, RequestSpec, build_body, make_session
from stackcert.bench.datasets import TokenizerLike
from stackcert.bench.load import arrival_offsets, run_closed_loop, run_open_loop
from stackcert.bench.metrics import compute_metrics
from stackcert.bench.profiles import Profile, ScaleLimits, scale_profile
from stackcert.bench.records import BenchResult, PointResult, RequestRecord, RunResult
from stackcert.bench.transport import bench_loop, gc_paused
from stackcert.bench.writer import RecordWriter
from stackcert.engines.base import ModelRef, Server
from stackcert.errors import EngineError
from stackcert.progress import NullProgress, Progress
from stackcert.secrets import key_for, redact_url
from stackcert.status import Status


def machine_is_cpu() -> bool:
    """Whether this host has no NVIDIA GPU (no nvidia-smi and no /dev/nvidia0)."""
    return shutil.which("nvidia-smi") is None and not Path("/dev/nvidia0").exists()


async def server_models(
    base_url: str, api_key: str | None = None, *, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """GET /v1/models (vLLM lists `max_model_len` there); a broken answer is an EngineError."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = f"{base_url.rstrip('/')}/v1/models"
    try:
        async with (
            aiohttp.ClientSession(headers=headers) as s,
            s.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as r,
        ):
            r.raise_for_status()
            json_content(r.headers.get("Content-Type", ""), "GET /v1/models")
            raw = await r.content.read(LIMITS.json_body + 1)
        if len(raw) > LIMITS.json_body:
            raise BadAnswer(f"answer body over the {mib(LIMITS.json_body)} limit")
        data = loads(raw, "GET /v1/models")
        model_ids(data)  # type-checks the cards
        return [dict(card) for card in data["data"]]
    except (aiohttp.ClientError, TimeoutError, ValueError, BadAnswer) as exc:
        raise EngineError(
            f"no OpenAI server answers: {clean(str(exc), 300)}",
            where=redact_url(base_url),
            fix="start the server or check --url",
        ) from None


def local_engine(server: Server | None) -> bool:
    """Whether stackcert started this server on this host (not a URL, not an endpoint stack)."""
    info = getattr(server, "info", None)
    return info is not None and getattr(info, "launcher", "url") not in ("", "url")


def build_specs(
    tok: TokenizerLike, profile: Profile, n: int, seed: int, cfg: ClientConfig
) -> list[RequestSpec]:
    """n seeded requests of the profile's dataset (random, ShareGPT or prefix), bodies pre-serialised."""
    if profile.dataset == "sharegpt":
        specs = datasets.sharegpt_requests(tok, n, max_input=profile.input_len, seed=seed)
        for s in specs:
            s.output_len = min(s.output_len, profile.output_len)
    elif profile.dataset == "prefix":
        specs = datasets.prefix_requests(
            tok, n, profile.input_len, profile.output_len, prefix_len=profile.prefix_len, seed=seed
        )
    else:
        specs = datasets.random_requests(
            tok, n, profile.input_len, profile.output_len, range_ratio=profile.range_ratio, seed=seed
        )
    for s in specs:
        s.body = build_body(cfg, s)
    return specs


class _Live:
    """Running numbers for the progress hooks."""

    def __init__(self, progress: Progress, task: str) -> None:
        self.progress, self.task, self.t0 = progress, task, time.perf_counter()
        self.done = self.tokens = 0
        self.ttft_sum = self.itl_sum = 0.0
        self.itl_n = 0

    def __call__(self, rec: RequestRecord) -> None:
        self.done += 1
        if rec.success:
            self.tokens += rec.output_tokens
            self.ttft_sum += rec.ttft
            gaps = rec.itl
            self.itl_sum += sum(gaps)
            self.itl_n += len(gaps)
        el = max(time.perf_counter() - self.t0, 1e-9)
        self.progress.on_advance(
            self.task,
            1.0,
            req_s=self.done / el,
            tok_s=self.tokens / el,
            ttft_ms=1000 * self.ttft_sum / max(self.done, 1),
            itl_ms=1000 * self.itl_sum / max(self.itl_n, 1),
        )


async def _one_run(
    cfg: ClientConfig,
    profile: Profile,
    specs: list[RequestSpec],
    conc: int | None,
    rate: float | None,
    *,
    seed: int,
    make: Any,
    on_record: Any,
) -> tuple[list[RequestRecord], float]:
    pool = conc or len(specs)
    with gc_paused():
        async with make_session(cfg, pool) as session:
            if rate is None:
                return await run_closed_loop(
                    session, cfg, specs, conc or 1, make_record=make, on_record=on_record
                )
            offsets = arrival_offsets(len(specs), rate, burstiness=profile.burstiness, seed=seed)
            return await run_open_loop(
                session, cfg, specs, offsets, max_concurrency=conc, make_record=make, on_record=on_record
            )


def _log_excerpt(path: Path | None, lines: int = 40) -> str | None:
    if path is None or not path.exists():
        return None
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    start = max(len(text) - lines, 0)
    return "\n".join(f"{start + i + 1}: {line}" for i, line in enumerate(text[start:]))


def _dead(server: Server | None, records: list[RequestRecord]) -> bool:
    """The server died, or stopped answering: from its first connection-level failure on, nothing worked."""
    if server is not None and not server.alive():
        return True
    ordered = sorted(records, key=lambda r: r.start)
    first = next((i for i, r in enumerate(ordered) if not r.success and r.http_status is None), None)
    return first is not None and all(not r.success for r in ordered[first:])


async def run_bench_async(
    server: Server | str,
    model: ModelRef | str | Path | TokenizerLike,
    profiles: list[Profile],
    *,
    out_dir: Path,
    progress: Progress | None = None,
    limits: ScaleLimits | None = None,
    api_key: str | None = None,
) -> BenchResult:
    """The async form of run_bench: benchmark a server, write requests.jsonl, return the result."""
    prog = progress or NullProgress()
    srv = None if isinstance(server, str) else server
    base_url = server if isinstance(server, str) else server.base_url
    api_key = api_key or key_for(base_url)  # a keyed endpoint stack (stackcert.secrets)
    cards = await server_models(base_url, api_key)
    ids = [str(c.get("id")) for c in cards]
    wanted = srv.served_model if srv else (model.served_name if isinstance(model, ModelRef) else None)
    served = wanted if wanted in ids or (srv and wanted) else (ids[0] if ids else wanted or "")
    card = next((c for c in cards if c.get("id") == served), cards[0] if cards else {})
    tok_path = str(model.tokenizer if isinstance(model, ModelRef) else getattr(model, "path", model))
    max_len = card.get("max_model_len") or (model.max_model_len if isinstance(model, ModelRef) else None)
    if limits is None:
        # Only an engine this host runs says anything about this host's limits: a --url or endpoint
        # server may be a GPU cluster, and its profile is the user's to size.
        local_cpu = machine_is_cpu() and local_engine(srv)
        limits = ScaleLimits.cpu(max_len) if local_cpu else ScaleLimits(max_model_len=max_len)
    tok = model if isinstance(model, TokenizerLike) else datasets.load_tokenizer(tok_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = RecordWriter(out_dir / "requests.jsonl")
    result = BenchResult(
        status=Status.PASS.value,
        base_url=base_url,
        model=served,
        tokenizer=tok_path,
        records_path=str(writer.path),
    )
    t_start = time.perf_counter()
    try:
        await _run_profiles(srv, base_url, served, api_key, tok, profiles, limits, writer, prog, result)
    finally:
        await writer.close()
        result.duration_s = time.perf_counter() - t_start
        if srv is not None and result.status == Status.CRASH.value:
            result.log_excerpt = _log_excerpt(srv.log_path)
            result.findings = list(srv.findings())
    return result


async def _run_profiles(
    srv: Server | None,
    base_url: str,
    served: str,
    api_key: str | None,
    tok: TokenizerLike,
    profiles: list[Profile],
    limits: ScaleLimits,
    writer: RecordWriter,
    prog: Progress,
    result: BenchResult,
) -> None:
    for raw in profiles:
        own = ScaleLimits(max_model_len=limits.max_model_len) if raw.from_file else limits
        profile = scale_profile(raw, own)
        result.profiles.append(profile.model_dump(mode="json"))
        if profile.scaled_from:
            prog.on_message(profile.name, f"scaled: {profile.scale_reason}")
        cfg = ClientConfig(
            base_url=base_url,
            model=served,
            endpoint=profile.endpoint,
            ignore_eos=profile.ignore_eos,
            timeout_s=profile.timeout_s,
            api_key=api_key,
        )
        for label, conc, rate in profile.points():
            n = profile.prompts_for(conc)
            point = PointResult(
                profile=profile.name, point=label, concurrency=conc, request_rate=rate, num_prompts=n
            )
            result.points.append(point)
            if profile.warmup:
                specs = build_specs(tok, profile, profile.warmup, profile.seed + 10_000, cfg)
                make = _maker(profile.name, label, -1, True)
                await _one_run(cfg, profile, specs, conc, None, seed=0, make=make, on_record=writer.add)
            for rep in range(profile.repeats):
                task = f"{profile.name} {label} #{rep + 1}"
                specs = build_specs(tok, profile, n, profile.seed + rep, cfg)
                prog.on_start(task, total=len(specs))
                live = _Live(prog, task)

                def on_record(rec: RequestRecord, live: _Live = live) -> None:
                    writer.add(rec)
                    live(rec)

                recs, dur = await _one_run(
                    cfg,
                    profile,
                    specs,
                    conc,
                    rate,
                    seed=profile.seed + rep,
                    make=_maker(profile.name, label, rep, False),
                    on_record=on_record,
                )
                datasets.fill_output_tokens(recs, tok)
                metrics = compute_metrics(
                    recs,
                    dur,
                    percentiles=profile.percentiles,
                    goodput_slo_ms={str(k): v for k, v in profile.goodput_ms.items()} or None,
                )
                discarded = profile.discard_first and rep == 0
                point.runs.append(RunResult(repeat=rep, discarded=discarded, metrics=metrics))
                if _dead(srv, recs):
                    prog.on_finish(task, Status.CRASH.value)
                    result.status = Status.CRASH.value
                    result.reason = f"the server stopped answering during {profile.name} {label}"
                    return
                if metrics.failed:
                    result.status = Status.FAIL.value
                    first = next(iter(metrics.errors))
                    result.reason = result.reason or f"{metrics.failed} request(s) failed in {task}: {first}"
                prog.on_finish(task, Status.PASS.value if not metrics.failed else Status.FAIL.value)


def _maker(profile: str, point: str, rep: int, warmup: bool) -> Any:
    def make(i: int) -> RequestRecord:
        return RequestRecord(index=i, profile=profile, point=point, repeat=rep, warmup=warmup)

    return make


def run_bench(
    server: Server | str,
    model: ModelRef | str | Path | TokenizerLike,
    profiles: list[Profile],
    *,
    out_dir: Path,
    progress: Progress | None = None,
    limits: ScaleLimits | None = None,
    api_key: str | None = None,
) -> BenchResult:
    """Benchmark a running server (a Server or a base URL) with the given profiles; never raises for
    failed requests (they are counted in the result); writes requests.jsonl in out_dir
    (the caller writes the result)."""
    with asyncio.Runner(loop_factory=bench_loop) as runner:
        return runner.run(
            run_bench_async(
                server, model, profiles, out_dir=out_dir, progress=progress, limits=limits, api_key=api_key
            )
        )


def load_records(path: Path) -> list[RequestRecord]:
    """The request records of a requests.jsonl file."""
    return [
        RequestRecord.model_validate(json.loads(line))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
