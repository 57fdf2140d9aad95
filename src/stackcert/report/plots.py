"""Inline SVG plots for the HTML report, drawn by matplotlib (Agg backend: no display, no network).

The SVG is embedded as trusted markup, so it is built here only: matplotlib escapes the texts it
writes (stack names, titles), the XML prolog and DOCTYPE are dropped, and each figure gets its own
id salt so several plots in one page do not share element ids.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from html import escape
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never a GUI backend, whatever the environment says

import matplotlib.pyplot as plt

W_IN, H_IN = 7.0, 3.6
COLORS = ("#1f6feb", "#d9480f", "#2f9e44", "#9c36b5")
_STYLE: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: small, selectable, no embedded glyph paths
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
}


def empty_plot(title: str, why: str) -> str:
    """A placeholder with the plot's title and why there is nothing to show."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 560 60" width="560" height="60" role="img">'
        f'<text x="8" y="22" font-size="14" font-weight="600">{escape(title)}</text>'
        f'<text x="8" y="44" font-size="12" fill="#666">{escape(why)}</text></svg>'
    )


@contextmanager
def _figure(title: str, xlabel: str, ylabel: str) -> Iterator[tuple[Any, Any]]:
    style: Any = {**_STYLE, "svg.hashsalt": f"stackcert-{title}"}  # (matplotlib types rc keys as literals)
    with plt.rc_context(style):
        fig, ax = plt.subplots(figsize=(W_IN, H_IN))
        try:
            ax.set_title(title, loc="left", fontweight="bold")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            yield fig, ax
        finally:
            plt.close(fig)


def _svg(fig: Any, ax: Any) -> str:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, loc="best")
    fig.tight_layout()  # labels inside the canvas: none clipped
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # no XML prolog or DOCTYPE inside the HTML page
    # No external namespace but SVG's own: drop the RDF metadata and use SVG 2's plain href.
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    return text.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "").replace("xlink:href", "href")


def line_plot(
    series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str, ylabel: str
) -> str:
    """One line with markers per series."""
    if not any(series.values()):
        return empty_plot(title, "no data")
    with _figure(title, xlabel, ylabel) as (fig, ax):
        for i, (name, pts) in enumerate(series.items()):
            ordered = sorted((float(x), float(y)) for x, y in pts if math.isfinite(x) and math.isfinite(y))
            if not ordered:
                continue
            xs, ys = zip(*ordered, strict=True)
            marker = "o" if len(ordered) <= 40 else None
            ax.plot(xs, ys, color=COLORS[i % len(COLORS)], marker=marker, markersize=3, label=name)
        return _svg(fig, ax)


def histogram(series: Mapping[str, Sequence[float]], *, title: str, xlabel: str, bins: int = 20) -> str:
    """Overlaid step histograms (share of requests per bin), one per series, on common bins."""
    finite = {name: [float(v) for v in vs if math.isfinite(v)] for name, vs in series.items()}
    values = [v for vs in finite.values() for v in vs]
    if not values:
        return empty_plot(title, "no data")
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + 1.0
    with _figure(title, xlabel, "share of requests") as (fig, ax):
        for i, (name, vs) in enumerate(finite.items()):
            if not vs:
                continue
            color = COLORS[i % len(COLORS)]
            weights = [1.0 / len(vs)] * len(vs)
            ax.hist(
                vs, bins=bins, range=(lo, hi), weights=weights, histtype="stepfilled", alpha=0.15, color=color
            )
            ax.hist(vs, bins=bins, range=(lo, hi), weights=weights, histtype="step", color=color, label=name)
        return _svg(fig, ax)
