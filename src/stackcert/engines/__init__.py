"""Engines (vLLM, transformers, endpoint) and the supervision of the processes they start."""
