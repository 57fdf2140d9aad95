"""Test fixtures that ship with the package (fakes, named as such)."""
