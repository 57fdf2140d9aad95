"""report.json schema and its renderers (Markdown model card, self-contained HTML)."""
