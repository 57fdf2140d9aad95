"""The campaign index: a self-contained HTML matrix (rows: models, columns: targets; one block per stack
pair) with each run's verdict, perf ratio and a link to its report.html. Jinja2 with autoescape: every
name and error text comes from config files and runs, and is escaped."""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from stackcert.campaign.state import INDEX_FILE, CampaignState, EntryRecord

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>stackcert campaign {{ state.name }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: .4em .7em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.PASS { background: #dff5df; } .PARTIAL { background: #fff4cc; } .FAIL { background: #f9d6d6; }
.error, .timeout { background: #f0d0f0; } .pending, .running { background: #eef; }
.err { font-size: .85em; color: #800; max-width: 40em; }
</style></head><body>
<h1>Campaign {{ state.name }}</h1>
<p>{{ state.entries | length }} runs · updated {{ state.updated }} ·
{% for key, n in counts.items() %}{{ key }}: {{ n }}{% if not loop.last %} · {% endif %}{% endfor %}
· Ray: {{ state.address or "embedded local" }}</p>
{% for pair in pairs %}
<h2>{{ pair }}</h2>
<table>
<tr><th>model \\ target</th>{% for target in targets %}<th>{{ target }}</th>{% endfor %}</tr>
{% for model in models %}
<tr><th>{{ model }}</th>
{% for target in targets %}{% set e = cells.get((model, pair, target)) %}
{% if e is none %}<td>–</td>{% else %}
<td class="{{ e.verdict or e.status }}">
{% if e.verdict %}<b>{{ e.verdict }}</b>{% else %}{{ e.status }}{% endif %}
{% if e.perf_ratio is not none %} · ratio {{ "%.2f" | format(e.perf_ratio) }}{% endif %}
<br><small>{{ e.reference }} vs {{ e.candidate }}</small>
{% if e.report_html %}<br><a href="{{ links[e.id] }}">report</a>{% endif %}
{% if e.error %}<div class="err">{{ e.error }}</div>{% endif %}
</td>{% endif %}
{% endfor %}</tr>
{% endfor %}
</table>
{% endfor %}
</body></html>
"""


def _ordered(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _link(record: EntryRecord, campaign_dir: Path) -> str:
    """The report's address relative to the index, so the folder can be moved or served as is."""
    html = Path(record.report_html or "")
    try:
        return os.path.relpath(html, campaign_dir).replace(os.sep, "/")
    except ValueError:
        return html.as_uri() if html.is_absolute() else str(html)


def render_index(state: CampaignState, campaign_dir: Path) -> str:
    """The index page's HTML."""
    env = Environment(autoescape=True, undefined=StrictUndefined)
    entries = state.entries
    return env.from_string(TEMPLATE).render(
        state=state,
        counts=state.counts(),
        pairs=_ordered([e.pair for e in entries]),
        models=_ordered([e.model for e in entries]),
        targets=_ordered([e.target for e in entries]),
        cells={(e.model, e.pair, e.target): e for e in entries},
        links={e.id: _link(e, campaign_dir) for e in entries if e.report_html},
    )


def write_index(state: CampaignState, campaign_dir: Path) -> Path:
    """index.html in the campaign folder, replaced atomically."""
    path = campaign_dir / INDEX_FILE
    tmp = path.with_name(f".{INDEX_FILE}.tmp")
    tmp.write_text(render_index(state, campaign_dir), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
