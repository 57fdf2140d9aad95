"""Imports every command module so that each registers itself on the app."""

# One line per command module; keep alphabetical.
from stackcert.cli import bench_cmd  # noqa: F401
from stackcert.cli import bisect_cmd  # noqa: F401
from stackcert.cli import consistency_cmd  # noqa: F401
from stackcert.cli import env_cmd  # noqa: F401
from stackcert.cli import install_cmd  # noqa: F401
from stackcert.cli import model_cmd  # noqa: F401
from stackcert.cli import report_cmd  # noqa: F401
from stackcert.cli import run_cmd  # noqa: F401
from stackcert.cli import smoke_cmd  # noqa: F401
from stackcert.cli import verify_cmd  # noqa: F401
