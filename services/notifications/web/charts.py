"""Server-rendered charts of the coordinators' workspace: inline SVG drawn by matplotlib (SVG backend, no
JavaScript), each with a text alternative (`<title>` and `<desc>` named by aria-labelledby; the page adds a
visually hidden table of the same data).

Output is deterministic (fixed `svg.hashsalt`, no date metadata, every id prefixed per chart) so a test can
read it and two charts on one page never share an id. Known ids: `<prefix>-pain-nrs` (one marker per pain
assessment), `<prefix>-pain-peg`, `<prefix>-baseline` (the baseline pain score), `<prefix>-improvement`
(30 % below the baseline), `<prefix>-mme` (step line), `<prefix>-events`.

matplotlib's pyplot state and rcParams are global: figures are built with the object API under one lock.
"""

from __future__ import annotations

import html
import io
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_LOCK = threading.Lock()
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(xlink:href="#|href="#|url\(#)([^")]+)')
IMPROVEMENT_PERCENT = 30  # the spec's default meaningful improvement (pathway-spec §1, the 30 % test)
EVENT_STYLE = {  # marker kind -> (colour, line style)
    "surgery": ("#5c1a8c", "-"),
    "procedure": ("#7a4a00", "--"),
    "therapy": ("#1b6e3a", ":"),
    "medication": ("#a4161a", "-."),
}


@dataclass(frozen=True)
class PainPoint:
    at: datetime
    pain_nrs: int
    function_peg: float | None


@dataclass(frozen=True)
class Marker:
    at: datetime
    kind: str  # surgery | procedure | therapy | medication
    label: str


@dataclass(frozen=True)
class Chart:
    svg: str  # inline <svg> markup, no XML prolog
    title: str
    description: str


def _render(figure: Figure, prefix: str, title: str, description: str) -> Chart:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"carepath-{prefix}", "svg.fonttype": "none", "svg.id": None}):
        FigureCanvasSVG(figure).print_svg(buffer, metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    seen: dict[str, int] = {}

    def unique(match: re.Match[str]) -> str:  # a gid given to many artists (bars, markers) is made unique
        name = match.group(1)
        seen[name] = seen.get(name, 0) + 1
        return f'id="{prefix}-{name}"' if seen[name] == 1 else f'id="{prefix}-{name}-{seen[name]}"'

    text = _ID.sub(unique, text)
    text = _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    head_end = text.index(">") + 1
    opening = text[:head_end].replace(
        "<svg ",
        f'<svg role="img" aria-labelledby="{prefix}-title {prefix}-desc" class="chart" '
        'style="max-width:100%;height:auto" ',
        1,
    )
    alternative = f'<title id="{prefix}-title">{html.escape(title)}</title><desc id="{prefix}-desc">{html.escape(description)}</desc>'
    return Chart(opening + alternative + text[head_end:], title, description)


def _describe_timeline(
    points: Sequence[PainPoint], baseline: int | None, mme: Sequence[tuple[datetime, float | None]]
) -> str:
    parts = [f"{len(points)} pain assessment{'s' if len(points) != 1 else ''}"]
    if points:
        parts.append(f"latest pain {points[-1].pain_nrs}/10 on {points[-1].at:%Y-%m-%d}")
    if baseline is not None:
        parts.append(
            f"baseline {baseline}/10; a 30 % improvement means {baseline * (100 - IMPROVEMENT_PERCENT) / 100:g}/10 or less"
        )
    known = [value for _, value in mme if value is not None]
    if known:
        parts.append(f"opioid dose up to {max(known):g} MME per day")
    return "; ".join(parts) + ". The table below lists every value."


def timeline(
    prefix: str,
    points: Sequence[PainPoint],
    baseline: int | None,
    mme: Sequence[tuple[datetime, float | None]],
    markers: Sequence[Marker],
    now: datetime,
) -> Chart:
    """Pain NRS and PEG over time against the baseline (and the 30 % improvement line), MME per day as a step
    line on a second axis, and vertical markers for surgery, procedures, therapy and medication changes."""
    title = "Pain, function and opioid dose over time"
    description = _describe_timeline(points, baseline, mme)
    instants = [p.at for p in points] + [m.at for m in markers] + [at for at, _ in mme]
    start = min(instants, default=now - timedelta(days=30))
    end = max([*instants, now]) if instants else now
    with _LOCK:
        figure = Figure(figsize=(9, 3.6), dpi=72)
        axes = figure.add_subplot()
        axes.set_ylim(-0.3, 10.5)
        axes.set_ylabel("Score (0–10, lower is better)")
        if baseline is not None:
            axes.axhline(baseline, color="#0b3d62", linewidth=1.2, gid="baseline", label=f"Baseline pain {baseline}")
            improved = baseline * (100 - IMPROVEMENT_PERCENT) / 100
            axes.axhline(
                improved, color="#1b6e3a", linewidth=1.2, linestyle="--", gid="improvement", label="30 % better"
            )
        if points:
            xs = [date2num(p.at) for p in points]
            axes.plot(xs, [p.pain_nrs for p in points], marker="o", color="#a4161a", gid="pain-nrs", label="Pain NRS")
            peg = [(x, p.function_peg) for x, p in zip(xs, points, strict=True) if p.function_peg is not None]
            if peg:
                axes.plot([x for x, _ in peg], [v for _, v in peg], marker="s", linestyle=":", color="#5c1a8c",
                          gid="pain-peg", label="PEG")  # fmt: skip
        for marker in markers:
            colour, style = EVENT_STYLE.get(marker.kind, ("#3d3d3d", "-"))
            axes.axvline(date2num(marker.at), color=colour, linestyle=style, linewidth=0.8, alpha=0.7,
                         gid=f"event-{marker.kind}")  # fmt: skip
        if mme:
            dose = axes.twinx()
            steps = [*mme, (end, mme[-1][1])]
            dose.step([date2num(at) for at, _ in steps], [value if value is not None else float("nan") for _, value in steps],
                      where="post", color="#7a4a00", gid="mme", label="MME per day")  # fmt: skip
            dose.set_ylabel("MME per day")
            dose.set_ylim(bottom=0)
        axes.set_xlim(date2num(start - timedelta(days=3)), date2num(end + timedelta(days=3)))
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        if points or baseline is not None:
            axes.legend(loc="upper left", fontsize="small", frameon=False)
        figure.subplots_adjust(left=0.07, right=0.92, top=0.96, bottom=0.1)
        return _render(figure, prefix, title, description)


def bars(prefix: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]) -> Chart:
    """Horizontal bar chart: one group per label, one bar per series (e.g. due / overdue)."""
    description = "; ".join(
        f"{label}: " + ", ".join(f"{name} {values[i]}" for name, values in series) for i, label in enumerate(labels)
    )
    colours = ("#0b3d62", "#a4161a", "#1b6e3a")
    with _LOCK:
        height = max(1.6, 0.45 * len(labels) * max(1, len(series)) + 0.8)
        figure = Figure(figsize=(8, height), dpi=72)
        axes = figure.add_subplot()
        width = 0.8 / max(1, len(series))
        for index, (name, values) in enumerate(series):
            positions = [i + index * width for i in range(len(labels))]
            axes.barh(positions, values, height=width, color=colours[index % len(colours)], label=name,
                      gid=f"bars-{index}")  # fmt: skip
        axes.set_yticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], list(labels))
        axes.invert_yaxis()
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(series) > 1:
            axes.legend(fontsize="small", frameon=False)
        figure.subplots_adjust(left=0.3, right=0.97, top=0.97, bottom=0.12)
        return _render(figure, prefix, title, description or "No data.")
