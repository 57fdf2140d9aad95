"""Command-line interface. Each command lives in its own module; importing it registers it."""

from stackcert.cli import commands as _commands  # noqa: F401  (registers the commands)
from stackcert.cli.app import app, main

__all__ = ["app", "main"]
