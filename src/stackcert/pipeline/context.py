"""What every step reads and writes: the config, the run's layout and ledger, the servers and the results."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef, Server
from stackcert.env.vendors import VendorRuntime, vendor_runtime
from stackcert.evidence.findings import Finding
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.servers import ServerPool
from stackcert.progress import Progress
from stackcert.runmodel.config import RunConfig
from stackcert.runmodel.layout import RunLayout
from stackcert.runmodel.results import RunResults, StepFindings, StepResult, load_result
from stackcert.status import Status
from stackcert.targets import Target

ROLES = ("reference", "candidate")


class Outcome(BaseModel):
    """What a step produced: its final status, why, its typed result and findings raised without one."""

    model_config = {"arbitrary_types_allowed": True}

    status: Status
    reason: str = ""
    result: StepResult | None = None
    findings: list[Finding] = Field(default_factory=list)


@dataclass
class RunContext:
    """The state shared by the steps of one run."""

    config: RunConfig
    layout: RunLayout
    ledger: Ledger
    progress: Progress
    pool: ServerPool
    results: RunResults = field(default_factory=RunResults)

    @property
    def target(self) -> Target:
        """Where the run's commands execute (the pool's target: engines and probes share it)."""
        return self.pool.target

    def stack(self, role: str) -> StackSpec:
        """The stack playing `role`, with this host's vendor runtime settings (see `with_runtime`)."""
        spec = self.config.reference_stack() if role == "reference" else self.config.candidate_stack()
        return self.with_runtime(spec)

    def runtime(self) -> VendorRuntime:
        """The runtime settings of the probed accelerator's vendor (none before the env step, or on CPU)."""
        return vendor_runtime(self.results.env.vendor if self.results.env is not None else None)

    def with_runtime(self, stack: StackSpec) -> StackSpec:
        """The stack with its vendor's env and engine arguments under its own (the stack's values win)."""
        runtime = self.runtime()
        if stack.url or runtime.vendor is None:
            return stack
        update: dict[str, object] = {"env": {**runtime.env, **stack.env}}
        if stack.engine == "vllm":  # the runtime's engine arguments are vLLM keywords
            update["engine_args"] = {**runtime.engine_args, **stack.engine_args}
        return stack.model_copy(update=update)

    @property
    def model(self) -> ModelRef | None:
        """The resolved model, once the model step ran."""
        resolved = self.results.model
        return resolved.model if resolved is not None else None

    def need_model(self) -> ModelRef:
        """The resolved model; a step that runs without one is a bug."""
        if self.model is None:
            raise RuntimeError("the model step did not produce a model")
        return self.model

    def server(self, role: str) -> Server:
        """The running server of a stack, started (again) when it is not up."""
        return self.pool.get(
            self.stack(role), self.need_model(), self.layout.stack_dir(self.stack(role).name)
        )

    def load_done(self) -> None:
        """On resume: read the results of the steps that are already done back into their models."""
        for record in self.ledger.records():
            if not record.status.done or not record.result_file or self.results.get(record.id) is not None:
                continue
            value = load_result(self.layout.root / record.result_file, record.id)
            if isinstance(value, StepFindings):
                self.results.failures[record.id] = value.findings
            elif value is not None:
                self.results.put(record.id, value)
