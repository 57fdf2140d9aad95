"""RunLayout: the one place that names every path of a run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackcert.paths import stack_folder

CONFIG_FILE = "config.json"  # the run's saved config
STATE_FILE = "state.json"  # the ledger

# Step id -> its result file, for the steps that are not per stack.
_STEP_FILES = {
    "env": "env.json",
    "install": "install.json",
    "model": "model.json",
    "consistency": "consistency.json",
    "compare": "compare.json",
    "ladder": "ladder.json",
    "bisect": "bisect.json",
    "dummy_weights": "weights_dummy.json",
    "features": "features.json",
    "weights": "weights.json",
    "report": "report.json",
}


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run directory; per-stack files live under `stacks/<stack name>/`."""

    root: Path
    reference: str
    candidate: str

    @property
    def config_file(self) -> Path:
        """The run's saved config (secrets redacted)."""
        return self.root / CONFIG_FILE

    @property
    def state_file(self) -> Path:
        """The ledger, `state.json`."""
        return self.root / STATE_FILE

    @property
    def logs_dir(self) -> Path:
        """Tracebacks of crashed steps."""
        return self.root / "logs"

    @property
    def install_dir(self) -> Path:
        """The install gate's logs."""
        return self.root / "install"

    @property
    def consistency_dir(self) -> Path:
        """The consistency phase's per-prompt files."""
        return self.root / "consistency"

    @property
    def reference_answers(self) -> Path:
        """The reference's probe answers, kept for a vLLM bisection or the ladder."""
        return self.root / "bisect" / "reference-answers.json"

    @property
    def dummy_gate_dir(self) -> Path:
        """The engine folder of weight gate stage A (the candidate on dummy weights)."""
        return self.root / "gates" / "dummy"

    @property
    def report_json(self) -> Path:
        """report.json, the source every renderer reads."""
        return self.root / "report.json"

    @property
    def deliverables_dir(self) -> Path:
        """The publishable deliverables generated from the report."""
        return self.root / "deliverables"

    def stack_dir(self, stack: str) -> Path:
        """The folder of one stack: server.log, server.json, effective_ops.json, its step results."""
        return stack_folder(self.root, stack)

    def bench_dir(self, stack: str) -> Path:
        """The benchmark's raw records of one stack."""
        return self.stack_dir(stack) / "bench"

    def ladder_dir(self, level: str) -> Path:
        """The engine folder of one isolation-ladder level."""
        return self.root / "ladder" / level

    def stack_of(self, role: str) -> str:
        """The stack name playing a role (reference or candidate)."""
        return self.reference if role == "reference" else self.candidate

    def result_rel(self, step_id: str) -> str:
        """A step's result file, relative to the run directory (as the ledger records it)."""
        if step_id in _STEP_FILES:
            return _STEP_FILES[step_id]
        role, kind = step_id.split(".")
        return f"stacks/{self.stack_of(role)}/{kind}.json"

    def result_file(self, step_id: str) -> Path:
        """A step's result file."""
        return self.root / self.result_rel(step_id)

    def traceback_file(self, step_id: str) -> Path:
        """Where a crashed step's traceback goes."""
        return self.logs_dir / f"{step_id}.traceback.txt"
