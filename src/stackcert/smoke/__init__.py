"""The smoke step: does a stack generate sane text offline and serve the OpenAI API correctly."""

from stackcert.smoke.models import (
    BUILTIN_PROMPTS,
    CheckResult,
    PhaseResult,
    QualityThresholds,
    SmokeOptions,
    SmokePrompt,
    SmokeResult,
)
from stackcert.smoke.runner import run_smoke

__all__ = [
    "BUILTIN_PROMPTS",
    "CheckResult",
    "PhaseResult",
    "QualityThresholds",
    "SmokeOptions",
    "SmokePrompt",
    "SmokeResult",
    "run_smoke",
]
