"""Charts for the benchmarks page (docs/benchmarks.md), drawn by the benchmark scripts.

``bench_reserve.py --charts DIR`` and ``bench_holders.py --charts DIR`` call this module after
their tables; ``DIR`` is ``docs/images`` for the images the documentation shows. Every chart is
a horizontal bar chart: one row a tool, one bar a scenario, the value written at the end of
each bar, the unit on the axis, and a footer line with the machine facts (CPU count, kernel,
Python, load average at the start of the run) so that an image never travels without them.

matplotlib (the ``bench`` extra) is imported only when a chart is drawn, with the Agg backend
(no display needed). The files are SVG with text kept as text (small, sharp, searchable) and
without a creation date, so that drawing the same numbers again gives the same file.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: The row drawn in the accent colour and bold: the subject of every chart.
SUBJECT = "localport"
#: One colour a series (scenario), in order; colour-blind safe (Okabe-Ito).
SERIES_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")
WIDTH_IN = 7.0
ROW_HEIGHT_IN = 0.34


@dataclass(frozen=True)
class Series:
    """One bar a row: its legend label and a value per row (None: not measured)."""

    label: str
    values: Sequence[float | None]


def machine_footer(extra: str = "") -> str:
    """CPU count, kernel, Python and the 1-minute load average now (call it at the start)."""
    try:
        load = f"load average {os.getloadavg()[0]:.2f} at start"
    except (AttributeError, OSError):
        load = "load average unknown"
    release = platform.release().split("-")[0]
    parts = [
        f"{os.cpu_count()} CPUs",
        f"{platform.system()} {release}",
        f"{platform.python_implementation()} {platform.python_version()}",
        load,
    ]
    if extra:
        parts.append(extra)
    return " \N{MIDDLE DOT} ".join(parts)


def bar_chart(
    path: str | os.PathLike[str],
    *,
    title: str,
    rows: Sequence[str],
    series: Sequence[Series],
    unit: str,
    footer: str,
    log: bool = False,
    value_format: Callable[[float], str] = lambda value: f"{value:g}",
) -> Path:
    """Draw a horizontal bar chart into *path* (``.svg`` or ``.png``); the path written.

    *rows* are drawn top to bottom; *unit* labels the value axis; *log* makes that axis
    logarithmic (for values that span orders of magnitude; zeros are then drawn as no bar).
    """
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    mpl.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text: a few KB, not a path per glyph
            "svg.hashsalt": "localport-benchmarks",  # stable element ids between draws
            "font.family": "sans-serif",
            "font.size": 9,
        }
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    count = len(series)
    height = 1.1 + ROW_HEIGHT_IN * len(rows) * max(1, count) * 0.75 + 0.35 * (count > 1)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height), layout="constrained")
    try:
        band = 0.8
        bar = band / count
        top = len(rows) - 1
        finite = [v for s in series for v in s.values if v is not None and v > 0]
        peak = max(finite, default=1.0)
        for index, one in enumerate(series):
            positions = [top - row + band / 2 - bar * (index + 0.5) for row in range(len(rows))]
            widths = [math.nan if v is None or (log and v <= 0) else v for v in one.values]
            colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
            ax.barh(positions, widths, height=bar * 0.9, color=colour, label=one.label)
            for y, value in zip(positions, one.values, strict=True):
                text = "not measured" if value is None else value_format(value)
                x = value if value is not None and value > 0 else (peak * 1e-3 if log else 0)
                ax.annotate(
                    text,
                    (x, y),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                )
        ax.set_yticks(range(len(rows)), list(reversed(rows)))
        for label in ax.get_yticklabels():
            if label.get_text().startswith(SUBJECT):
                label.set_fontweight("bold")
        if log:
            ax.set_xscale("log")
            ax.set_xlim(right=peak * 6)
        else:
            ax.set_xlim(0, peak * 1.18)
        ax.set_xlabel(unit)
        ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        if count > 1:
            ax.legend(loc="best", ncols=count, fontsize=8, frameon=False)
        fig.supxlabel(footer, x=0.01, ha="left", fontsize=7, color="#555555")
        # "tight": the figure grows to hold the value labels drawn past the longest bar and
        # the bold tool names, with a margin for viewers whose fonts run a little wider.
        fig.savefig(
            target,
            metadata={"Date": None} if target.suffix == ".svg" else None,
            bbox_inches="tight",
            pad_inches=0.2,
        )
    finally:
        plt.close(fig)
    return target
