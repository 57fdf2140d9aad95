"""The typed model of one run: its config, folder layout, step records, results and verdict.

It sits above the phase libraries (whose own result models it holds) and below the renderers
(`stackcert.report`) and the orchestration (`stackcert.pipeline`), which both read it.
"""
