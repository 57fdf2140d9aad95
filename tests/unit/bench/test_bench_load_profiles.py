"""Load pacing statistics and profile scaling / YAML validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stackcert.bench.load import arrival_offsets
from stackcert.bench.profiles import BUILTIN, Profile, ScaleLimits, resolve_profile, scale_profile
from stackcert.errors import ConfigError, UsageError


def test_poisson_schedule_statistics() -> None:
    off = arrival_offsets(20000, rate=50.0, seed=7)
    gaps = np.diff(off)
    assert off[0] == 0.0
    assert np.all(gaps >= 0)
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.03)
    # exponential gaps: coefficient of variation 1
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)
    assert arrival_offsets(100, 50.0, seed=7) == off[:100]  # deterministic for a seed


def test_gamma_burstiness_changes_spread_not_rate() -> None:
    bursty = np.diff(arrival_offsets(20000, 10.0, burstiness=0.25, seed=1))
    smooth = np.diff(arrival_offsets(20000, 10.0, burstiness=4.0, seed=1))
    assert bursty.mean() == pytest.approx(0.1, rel=0.05)
    assert smooth.mean() == pytest.approx(0.1, rel=0.05)
    assert bursty.std() / bursty.mean() == pytest.approx(2.0, rel=0.1)  # 1/sqrt(0.25)
    assert smooth.std() / smooth.mean() == pytest.approx(0.5, rel=0.1)
    assert arrival_offsets(3, float("inf")) == [0.0, 0.0, 0.0]


def test_scaling_to_context_keeps_ratio_and_says_why() -> None:
    p = scale_profile(BUILTIN["perf-4096-1024"], ScaleLimits(max_model_len=2048))
    assert p.input_len + p.output_len <= 2048
    assert p.input_len / p.output_len == pytest.approx(4.0, rel=0.01)
    assert p.scaled_from == {"input_len": 4096, "output_len": 1024}
    assert "max_model_len 2048" in (p.scale_reason or "")


def test_cpu_scaling_caps_requests_and_concurrency() -> None:
    p = scale_profile(BUILTIN["matrix-4k-1k"], ScaleLimits.cpu(2048))
    assert p.num_prompts <= 16 and max(p.concurrency) <= 8
    assert p.concurrency == sorted(set(p.concurrency))
    assert p.scaled_from is not None and "concurrency" in p.scaled_from
    assert "CPU" in (p.scale_reason or "")
    q = scale_profile(BUILTIN["quick"], ScaleLimits.cpu(2048))
    assert q.repeats == 2 and q.discard_first


def test_flagrelease_matrix_is_three_cases_with_one_request_per_stream() -> None:
    cases = resolve_profile("matrix")
    assert [(p.input_len, p.output_len) for p in cases] == [(4096, 1024), (1024, 1024), (8192, 1024)]
    for p in cases:
        assert p.concurrency == [1, 4, 16, 64, 128, 256] and p.warmup == 2
        assert [p.prompts_for(c) for c in p.concurrency] == p.concurrency  # num_prompts = concurrency
    quick = resolve_profile("quick")[0]
    assert (quick.num_prompts, quick.concurrency, quick.repeats, quick.discard_first) == (64, [64], 5, True)


def test_profile_that_fits_is_not_marked_scaled() -> None:
    p = scale_profile(BUILTIN["smoke"], ScaleLimits.cpu(2048))
    assert p.scaled_from is None and p.scale_reason is None
    assert resolve_profile("demo")[0].name == "smoke"


def test_unknown_profile_name_suggests(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        resolve_profile("smok")
    assert "unknown bench profile 'smok'" in err.value.what
    assert err.value.fix == "did you mean 'smoke'?"


def test_yaml_profiles_valid_and_errors_name_key_and_line(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("profiles:\n  - name: mine\n    input_len: 32\n    output_len: 8\n    concurrency: [2]\n")
    [p] = resolve_profile(str(good))
    assert (p.name, p.input_len, p.concurrency) == ("mine", 32, [2])
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles:\n  - name: mine\n    input_lenn: 32\n")
    with pytest.raises(ConfigError) as err:
        resolve_profile(str(bad))
    assert "input_lenn" in err.value.what and err.value.where and err.value.where.endswith(":3")
    neg = tmp_path / "neg.yaml"
    neg.write_text("profiles:\n  - name: mine\n    concurrency: [0]\n")
    with pytest.raises(ConfigError, match="concurrency"):
        resolve_profile(str(neg))
    with pytest.raises(ConfigError, match="not found"):
        resolve_profile(str(tmp_path / "missing.yaml"))


def test_points_of_rate_and_concurrency_sweeps() -> None:
    assert Profile(name="x", concurrency=[1, 4]).points() == [("c=1", 1, None), ("c=4", 4, None)]
    r = Profile(name="y", request_rate=[2.0, 0.5], max_concurrency=3)
    assert r.points() == [("rate=2", 3, 2.0), ("rate=0.5", 3, 0.5)]
    m = Profile(name="z", num_prompts=16, prompts_per_concurrency=4, concurrency=[1, 8])
    assert (m.prompts_for(1), m.prompts_for(8)) == (16, 32)
