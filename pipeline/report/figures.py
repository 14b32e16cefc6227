"""Pictures of a report, written as PNG and SVG with matplotlib's object API (no pyplot state, no display).

- base_vs_new: per dataset (and the average), each method's base and new accuracy without SEPT (hollow)
  and with SEPT (filled), an arrow from one to the other, error bars = std over seeds, iso-HM curves.
- semantic_structure: the diagnostic heat maps of diagnostic.py (class x neighbor cosine similarity under
  the template, the learned prompt without SEPT, and with SEPT).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from cache.atomic import atomic_path
from pipeline.report.tables import AVERAGE, METHOD_NAMES, METHOD_ORDER

FORMATS = ("png", "svg")


def save_figure(fig, stem: Path) -> list[Path]:
    """Write `stem`.png and `stem`.svg atomically; returns the paths."""
    paths = []
    for ext in FORMATS:
        target = stem.with_suffix(f".{ext}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        paths.append(target)
    return paths


def _iso_hm(ax, levels: Sequence[float] = (20, 40, 60, 80)) -> None:
    """Curves of equal harmonic mean: new = HM*base / (2*base - HM)."""
    for h in levels:
        base = np.linspace(h / 2 + 0.5, 100, 200)
        new = h * base / (2 * base - h)
        keep = new <= 100
        ax.plot(base[keep], new[keep], color="0.85", lw=0.8, zorder=0)
        ax.annotate(f"HM {h:g}", (base[keep][-1], new[keep][-1]), fontsize=6, color="0.6")


def base_vs_new(table: pl.DataFrame, stem: Path) -> list[Path]:
    """The base-vs-new picture from base2new_table's rows; returns the written files ([] if no rows)."""
    from matplotlib.figure import Figure

    if table.is_empty():
        return []
    datasets = [d for d in table["dataset"].unique(maintain_order=True).to_list() if d != AVERAGE]
    panels = datasets + ([AVERAGE] if len(datasets) > 1 else [])
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 3.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    methods = sorted(table["method"].unique().to_list(),
                     key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    for ax, panel in zip(axes, panels):
        sub = table.filter(pl.col("dataset") == panel)
        _iso_hm(ax)
        for (method, variant, shots), group in sub.group_by(["method", "variant", "shots"], maintain_order=True):
            points = {}
            for r in group.iter_rows(named=True):
                x, y = r["base_mean"], r["new_mean"]
                points[r["sept"]] = (x, y)
                ax.errorbar(x, y, xerr=r["base_std"] or 0, yerr=r["new_std"] or 0, fmt="o", ms=6,
                            color=colours[method], mfc=colours[method] if r["sept"] else "white",
                            capsize=2, lw=0.8)
            if False in points and True in points:
                ax.annotate("", xy=points[True], xytext=points[False],
                            arrowprops=dict(arrowstyle="->", color=colours[method], lw=1.0))
        title = f"{AVERAGE} ({sub['n_datasets'].max()} datasets)" if panel == AVERAGE else panel  # >= 2 here
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_aspect("equal")
        ax.set_xlabel("base accuracy (%)", fontsize=8)
        ax.set_ylabel("new accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = [axes[0].plot([], [], "o", color=colours[m], label=METHOD_NAMES.get(m, m))[0] for m in methods]
    handles += [axes[0].plot([], [], "o", mfc="white", color="0.3", label="without SEPT")[0],
                axes[0].plot([], [], "o", color="0.3", label="with SEPT")[0]]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    fig.suptitle("Base vs new accuracy: without SEPT (hollow) -> with SEPT (filled); bars = std over seeds",
                 fontsize=9)
    return save_figure(fig, stem)


def semantic_structure(panels: Sequence[tuple[str, np.ndarray]], classnames: Sequence[str],
                       neighbors_per_class: Sequence[int], stem: Path, title: str,
                       split_after: int | None = None) -> list[Path]:
    """Heat maps [classes x neighbors grouped by class], one per (label, matrix) panel, one colour scale.

    `split_after`: draw a line after this many classes (the base/new boundary of a base-to-new run).
    """
    from matplotlib.figure import Figure

    c = len(classnames)
    bounds = np.concatenate([[0], np.cumsum(neighbors_per_class)])
    centres = (bounds[:-1] + bounds[1:] - 1) / 2  # image cell k spans [k - 0.5, k + 0.5]
    lo = min(float(m.min()) for _, m in panels)
    hi = max(float(m.max()) for _, m in panels)
    # Sized for the demo's 10 classes up to ESC-50's 50 x 8 neighbors, capped so the file stays usable.
    width = min(12.0, max(4.0, 0.09 * bounds[-1] + 2.0))
    height = min(14.0, max(3.0, 0.28 * c + 1.8))
    font = max(3.0, min(7.0, 200.0 / c))
    fig = Figure(figsize=(width * len(panels), height), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    image = None
    for ax, (label, matrix) in zip(axes, panels):
        image = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
        for b in bounds[1:-1]:
            ax.axvline(b - 0.5, color="white", lw=0.6)
        # Outline each class's own neighbors: the diagonal blocks the SEPT loss pulls together.
        for i in range(c):
            ax.add_patch(_rect(bounds[i] - 0.5, i - 0.5, bounds[i + 1] - bounds[i], 1.0))
        if split_after is not None and 0 < split_after < c:
            ax.axhline(split_after - 0.5, color="white", lw=1.6, ls="--")
            ax.axvline(bounds[split_after] - 0.5, color="white", lw=1.6, ls="--")
        ax.set_title(label, fontsize=9)
        ax.set_yticks(range(c), classnames, fontsize=font)
        ax.set_xticks(centres, classnames, rotation=90, fontsize=font)
        ax.set_xlabel("neighbors, grouped by class", fontsize=8)
    axes[0].set_ylabel("class (prompted class name)", fontsize=8)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="cosine similarity")
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, stem)


def _rect(x: float, y: float, w: float, h: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, edgecolor="red", lw=0.7)
