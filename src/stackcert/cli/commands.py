"""Imports every command module so that each registers itself on the app."""

# One line per command module; keep alphabetical.
