"""Small inline SVG plots for the HTML report: no network, no JavaScript, no plotting dependency.

Every text that reaches the SVG (stack names, titles) is escaped here, because the templates insert
the SVG as trusted markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

W, H = 560, 300
ML, MR, MT, MB = 64, 16, 46, 46
COLORS = ("#1f6feb", "#d9480f", "#2f9e44", "#9c36b5")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(n + 2) if start + i * step <= hi + step * 0.5]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) < 0.01:
        return f"{v:.2g}"
    return f"{v:.3g}"


class _Frame:
    def __init__(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.x0, self.x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
        self.y0, self.y1 = (min(0.0, *ys), max(ys)) if ys else (0.0, 1.0)
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1.0
        self.yt = _ticks(self.y0, self.y1)
        self.y1 = max(self.y1, self.yt[-1])

    def px(self, x: float) -> float:
        return ML + (x - self.x0) / (self.x1 - self.x0) * (W - ML - MR)

    def py(self, y: float) -> float:
        return H - MB - (y - self.y0) / (self.y1 - self.y0) * (H - MT - MB)


def _axes(f: _Frame, title: str, xlabel: str, ylabel: str, xticks: Sequence[float]) -> list[str]:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600">'
        f"{escape(title)}</text>",
    ]
    for t in f.yt:
        y = f.py(t)
        out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{_fmt(t)}</text>')
    for t in xticks:
        x = f.px(t)
        out.append(
            f'<text x="{x:.1f}" y="{H - MB + 16}" text-anchor="middle" font-size="11">{_fmt(t)}</text>'
        )
    out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{H - MB}" y2="{H - MB}" stroke="#333"/>')
    out.append(f'<line x1="{ML}" x2="{ML}" y1="{MT}" y2="{H - MB}" stroke="#333"/>')
    out.append(
        f'<text x="{(ML + W - MR) / 2}" y="{H - 8}" text-anchor="middle" font-size="12">'
        f"{escape(xlabel)}</text>"
    )
    out.append(
        f'<text x="14" y="{(MT + H - MB) / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {(MT + H - MB) / 2})">{escape(ylabel)}</text>'
    )
    return out


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        x = ML + 8 + i * 150
        color = COLORS[i % len(COLORS)]
        out.append(f'<rect x="{x}" y="{MT - 16}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14}" y="{MT - 7}" font-size="11">{escape(name)}</text>')
    return out


def empty_plot(title: str, why: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} 60" width="{W}" height="60" role="img">'
        f'<text x="8" y="22" font-size="14" font-weight="600">{escape(title)}</text>'
        f'<text x="8" y="44" font-size="12" fill="#666">{escape(why)}</text></svg>'
    )


def line_plot(
    series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str, ylabel: str
) -> str:
    """One polyline with markers per series."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return empty_plot(title, "no data")
    xs = sorted({p[0] for p in points})
    f = _Frame(xs, [p[1] for p in points])
    xticks = xs if len(xs) <= 10 else _ticks(f.x0, f.x1)
    out = _axes(f, title, xlabel, ylabel, xticks)
    for i, pts in enumerate(series.values()):
        color = COLORS[i % len(COLORS)]
        ordered = sorted(pts)
        path = " ".join(f"{f.px(x):.1f},{f.py(y):.1f}" for x, y in ordered)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        if len(ordered) <= 40:
            for x, y in ordered:
                out.append(f'<circle cx="{f.px(x):.1f}" cy="{f.py(y):.1f}" r="3" fill="{color}"/>')
    out += _legend(list(series))
    out.append("</svg>")
    return "\n".join(out)


def histogram(series: Mapping[str, Sequence[float]], *, title: str, xlabel: str, bins: int = 20) -> str:
    """Overlaid step histograms (share of requests per bin), one per series."""
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    if not values:
        return empty_plot(title, "no data")
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    shares: dict[str, list[float]] = {}
    for name, vs in series.items():
        counts = [0] * bins
        good = [v for v in vs if math.isfinite(v)]
        for v in good:
            counts[min(int((v - lo) / width), bins - 1)] += 1
        shares[name] = [c / len(good) if good else 0.0 for c in counts]
    f = _Frame([lo, hi], [s for ss in shares.values() for s in ss])
    out = _axes(f, title, xlabel, "share of requests", _ticks(lo, hi))
    for i, (_name, ss) in enumerate(shares.items()):
        color = COLORS[i % len(COLORS)]
        pts: list[str] = [f"{f.px(lo):.1f},{f.py(0):.1f}"]
        for b, share in enumerate(ss):
            x0, x1 = lo + b * width, lo + (b + 1) * width
            pts += [f"{f.px(x0):.1f},{f.py(share):.1f}", f"{f.px(x1):.1f},{f.py(share):.1f}"]
        pts.append(f"{f.px(hi):.1f},{f.py(0):.1f}")
        out.append(
            f'<polyline fill="{color}" fill-opacity="0.15" stroke="{color}" stroke-width="1.5" '
            f'points="{" ".join(pts)}"/>'
        )
    out += _legend(list(series))
    out.append("</svg>")
    return "\n".join(out)
