"""Imports every command module so that each registers itself on the app."""

# One line per command module; keep alphabetical.
from stackcert.cli import (
    bench_cmd,  # noqa: F401
    bisect_cmd,  # noqa: F401
    campaign_cmd,  # noqa: F401
    consistency_cmd,  # noqa: F401
    deliverables_cmd,  # noqa: F401
    env_cmd,  # noqa: F401
    features_cmd,  # noqa: F401
    install_cmd,  # noqa: F401
    migrate_cmd,  # noqa: F401
    model_cmd,  # noqa: F401
    report_cmd,  # noqa: F401
    run_cmd,  # noqa: F401
    smoke_cmd,  # noqa: F401
    verify_cmd,  # noqa: F401
)
