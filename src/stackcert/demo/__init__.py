"""The embedded demo model (Gemma-3-270M from PyPI GGUF packages) and its preparation."""
