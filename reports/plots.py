"""The report's figures, drawn with matplotlib's object API (no pyplot, no display: Agg canvas).

Each function takes tables from reports.tables, writes one PNG atomically and returns its path
(None when there is nothing to draw). Axes carry units; collapsed trials are always marked in red.

    effect_plot(trials, "teacher_temp", Path("report/plots/effect_teacher_temp.png"), log=True)
    learning_curves(epochs, trials, Path("report/plots/learning_curves.png"))
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import matplotlib
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PathCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import Affine2D, offset_copy

from reports import metric_words
from reports.importance import by_importance
from reports.stats import BEYOND, CI_WORDS, WITHIN, mean_ci
from sweep_format.files import PORTABLE_CHARS, atomic_path
from sweep_format.layout import PIXEL_KNN, UNTRAINED_KNN
from sweep_format.statuses import ERRORED
from sweep_format.values import fmt_value

KNN_LABEL = metric_words.label(metric_words.KNN_TOP1)  # the kNN plots' axis, whatever the sweep ranks by
COLLAPSE_COLOR = "#d62728"
TRIAL_COLOR = "#1f77b4"
DPI = 110


Draw = TypeVar("Draw", bound=Callable[..., Any])


def drawn_with_defaults(draw: Draw) -> Draw:
    """``draw`` run under matplotlib's own defaults (its ``default`` style), whatever matplotlibrc is
    around. matplotlib reads ``./matplotlibrc`` first: in a sweep folder someone else wrote (``cd
    runs/x && ablate report .``), its ``text.usetex: true`` ran LaTeX on every label, with the file's
    ``text.latex.preamble`` (which can read any file of this machine into the figure). Every function
    that makes and saves a figure (here, reports.cost, ablate.attention_plot) is wrapped."""

    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.style.context("default"):
            return draw(*args, **kwargs)

    return cast(Draw, drawn)


def save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    return path


# The figures a report (and `ablate compare`) draws into its plots/ folder, by file name: the report owns
# these and no others there (``remove_undrawn``).
LEARNING_CURVES_FILE, COLLAPSE_FILE, PARALLEL_FILE = "learning_curves.png", "collapse.png", "parallel.png"
IMPORTANCE_FILE, MAIN_EFFECTS_FILE, PARETO_FILE = "importance.png", "main_effects.png", "pareto_cost.png"
PLOT_FILES = (LEARNING_CURVES_FILE, COLLAPSE_FILE, PARALLEL_FILE, IMPORTANCE_FILE, MAIN_EFFECTS_FILE,
              PARETO_FILE)
# ``effect_file``'s names: effect_<param>.png, the parameter's name kept to these characters (the others
# become '_'); ``remove_undrawn`` knows them by the same rule
EFFECT_PREFIX, EFFECT_SUFFIX, EFFECT_CHARS = "effect_", ".png", PORTABLE_CHARS
EFFECT_FILE = re.compile(f"{EFFECT_PREFIX}[{EFFECT_CHARS}]*{re.escape(EFFECT_SUFFIX)}")


def remove_undrawn(folder: Path, drawn: Iterable[Path]) -> list[Path]:
    """Remove from ``folder`` the report's figures (``PLOT_FILES``, ``effect_file``'s) that it did not
    draw this time (``drawn``: ``Document.images``) and return them; any other file stays. A re-report
    whose sweep no longer had curves to draw left the last report's learning_curves.png in plots/, a
    figure of records since changed beside tables of the new ones."""
    keep = {Path(p).name for p in drawn}
    if folder.is_symlink() or not folder.is_dir():
        return []
    stale = sorted(p for p in folder.iterdir() if p.name not in keep and p.is_file() and not p.is_symlink()
                   and (p.name in PLOT_FILES or EFFECT_FILE.fullmatch(p.name)))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def effect_file(folder: Path, param: str) -> Path:
    """``folder/effect_<param>.png``, the name made of ``EFFECT_CHARS`` only: a parameter name comes from a
    spec or a parquet file anyone may have written ('../x' stays inside)."""
    kept = re.sub(f"[^{EFFECT_CHARS}]", "_", param).replace("..", "__")
    return folder / f"{EFFECT_PREFIX}{kept}{EFFECT_SUFFIX}"


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def ordered_values(series: pd.Series) -> list:
    """Distinct values, numerically sorted when they are numbers."""
    values = list(pd.unique(series.dropna()))
    try:
        return sorted(values, key=float)
    except (TypeError, ValueError):
        return sorted(values, key=str)


def plain_log_ticks(axis: Axis, every: bool = False) -> None:
    """Log-axis labels as 0.02, 0.05, 0.1 instead of 2x10^-2; with ``every`` each minor tick is
    labelled (0.03, 0.04 too), for an axis spanning less than a decade (``fit_log_ticks``)."""
    def minor(v: float, _pos: int) -> str:
        mantissa = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:g}" if mantissa in (2, 5) or (every and mantissa) else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def fit_log_ticks(fig: Figure, ax: Axes) -> None:
    """Plain log labels on ``ax``'s x axis, every minor tick named where the axis spans less than a
    decade (teacher_temp 0.01 to 0.045: 0.03 and 0.04 would go unnamed) unless, drawn, two would
    overlap (0.012 to 0.095: 0.07, 0.08, 0.09 run together); then the 2s and 5s only."""
    lo, hi = sorted(abs(float(x)) for x in ax.get_xlim())
    plain_log_ticks(ax.xaxis, every=lo > 0 and hi / lo < 10)
    if lo > 0 and hi / lo < 10 and crowded(fig, ax, drawn=True):
        plain_log_ticks(ax.xaxis)


def crowded(fig: Figure, ax: Axes, drawn: bool = False) -> bool:
    """Whether two of ``ax``'s x tick labels overlap as the figure will be drawn; ``drawn`` draws it
    first (labels a formatter writes at draw time), else the labels set are measured."""
    canvas = FigureCanvasAgg(fig)
    if drawn:
        canvas.draw()
    renderer = canvas.get_renderer()
    lo, hi = sorted(ax.get_xlim())
    labels = [t for t in ax.xaxis.get_majorticklabels() + ax.xaxis.get_minorticklabels()
              if t.get_text() and t.get_visible() and lo <= t.get_position()[0] <= hi]
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda box: box.x0)
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:]))


# --- per-parameter effect ---------------------------------------------------------------------
@drawn_with_defaults
def effect_plot(trials: pd.DataFrame, param: str, out: Path, *, log: bool = False,
                categorical: bool = False, hue: str | None = None,
                baseline: float | None = None, reference: dict | None = None) -> Path | None:
    """kNN top-1 vs ``param``: one dot per trial (x: collapsed), mean ± 95% CI per value.
    ``categorical`` spaces the values evenly (like a paper table); ``hue`` colours by a column
    (``sweep`` in a comparison). On the page, the trials at one value stand a few points apart
    (``spread``) and sweeps at one value beside each other; every artist keeps its values."""
    data = trials[trials[param].notna() & trials["knn_top1"].notna()]
    if data.empty:
        return None
    if "repeat" in data:  # repeat r runs one seed everywhere: it sits at one place beside every value
        data = data.sort_values("repeat", kind="stable")
    categorical = categorical or not is_numeric(data[param])
    values = ordered_values(data[param])
    position = {v: i for i, v in enumerate(values)}
    groups = list(pd.unique(data[hue])) if hue else [None]
    palette = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    apart, clear, beside, reach = spacing(fig, ax, data, param, hue, len(values) if categorical else 0)
    for gi, group in enumerate(groups):
        sub = data if group is None else data[data[hue] == group]
        color = palette(gi % 10) if hue else TRIAL_COLOR
        step = gi - (len(groups) - 1) / 2  # each sweep beside the others at the values they share
        xs = np.array([position[v] if categorical else float(v) for v in sub[param]], dtype=float)
        trial_marks(ax, xs, sub, step * beside + spread(sub[param], apart, clear), color)
        means, pooled = [], []
        for v in ordered_values(sub[param]):
            at_v = sub[sub[param] == v]
            m, ci, _ = mean_ci(at_v["knn_top1"].tolist())
            pooled.append("point" in at_v and at_v["point"].nunique() > 1)
            # a value holding several configurations (a grid's, Optuna's) gets its mean, no interval:
            # a t-interval over configurations chosen, not drawn, is no one's uncertainty, and over a
            # 2 x 2 grid's two trials (1 degree of freedom) it ran from -50 to 125 % kNN top-1
            means.append((position[v] if categorical else float(v), m, math.nan if pooled[-1] else ci))
        mx, my, mci = (np.array(c, dtype=float) for c in zip(*means, strict=True))
        interval = np.isfinite(mci)  # a value of one trial has none, nor one pooling configurations
        bars = ax.errorbar(mx, my, yerr=mci, fmt="o-" if categorical else "o",  # nan: no bar, no caps
                           color=color, ecolor=color, capsize=4, lw=1.2, ms=MEAN_PT, zorder=4,
                           label=(f"{group}: " if hue else "") + mean_words(pooled, interval.tolist()))
        dodge(fig, ax, bars.get_children(), step * beside)
    if baseline is not None and math.isfinite(baseline):
        ax.axhline(baseline, color="grey", ls="--", lw=1, label=f"baseline {baseline:.2f}%")
    reference_lines(ax, reference)
    if categorical:
        ax.set_xticks(range(len(values)), [fmt_value(v) for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)
        slant_if_crowded(fig, ax)
    else:
        keep_inside(fig, ax, reach)
        if log:
            ax.set_xscale("log")
            fit_log_ticks(fig, ax)
    ax.set_xlabel(f"{param}{' (log scale)' if log and not categorical else ''}")
    within_percent(ax)
    ax.set_ylabel(KNN_LABEL)
    ax.set_title(f"Final kNN top-1 vs {param}")
    ax.grid(alpha=0.3)
    handles, labels = legend_keys(ax, [
        (Line2D([], [], ls="", marker="o", color=TRIAL_COLOR if not hue else "grey", alpha=0.55), "one trial",
         True),
        (Line2D([], [], ls="", marker="x", color=COLLAPSE_COLOR), "collapsed trial",
         bool(data["collapsed"].fillna(False).any()))])
    # beside the axes: inside, "best" still sat on trials wherever values spread over the whole height
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return save(fig, out)


def mean_words(pooled: Sequence[bool], interval: Sequence[bool]) -> str:
    """The legend's words for the means of an effect plot whose values each pool several
    configurations or not (``pooled``), and have an interval drawn or not (``interval``: only where a
    value's trials differ in their seed alone, and are two or more). The interval is named only where
    one is drawn (``legend_keys``): one repeat per value drew none, and the legend still named one."""
    if all(pooled):
        return "mean over trials (other parameters vary)"
    if not any(interval):
        return "mean (one trial per value: no interval)" if not any(pooled) else \
            "mean (no interval: one trial, or other parameters vary)"
    if all(interval):
        return f"mean ± {CI_WORDS} over repeats"
    if all(i or p for i, p in zip(interval, pooled, strict=True)):
        return f"mean; ± {CI_WORDS} over repeats where only the seed varies"
    return f"mean; ± {CI_WORDS} over repeats where a value has two or more"


def legend_keys(ax: Axes, keys: Sequence[tuple[Artist, str, bool]]) -> tuple[list[Artist], list[str]]:
    """A legend's entries: the labelled artists of ``ax`` (drawn, so named), then each key
    ``(handle, label, drawn)`` whose kind the plot draws. A legend names only what is drawn: a red
    'collapsed' key with nothing red on the plot reads as a finding (``pareto_plot`` labels its
    artists only where it draws them, to the same end)."""
    handles, labels = ax.get_legend_handles_labels()
    drawn = [(handle, label) for handle, label, shown in keys if shown]
    return [*handles, *(h for h, _ in drawn)], [*labels, *(label for _, label in drawn)]


def within_percent(ax: Axes) -> None:
    """A kNN top-1 axis kept within 0-100 %: no accuracy lies outside, though a 2-repeat t-interval
    (1 degree of freedom, 12.7 standard errors wide each side) may reach there; its bar runs to the frame."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(lo, 0.0), min(hi, 100.0))


MEAN_PT = 6.0  # points: a mean's marker across
DODGE_PT = 9.0  # points between neighbouring sweeps: their means' markers (6 pt) and trials clear
SPREAD_PT = 4.5  # points between neighbouring trials at one value: a dot is 4.7 pt wide (s=22)
CLEAR_PT = 4.5  # points from a value to its nearest trials: its mean's marker (6 pt) hides under 1/5 of one
SPREAD_MAX_PT = 10.0  # the farthest a trial sits from its value on a numeric axis, where values may be close
CATEGORY_FILL = 0.6  # the share of a category's width its sweeps and their trials may take


def spread(values: pd.Series, apart: float, clear: float) -> np.ndarray:
    """Each trial's distance in points from its value on the page, in the table's order left to right:
    a lone trial on its value; two or more ``apart`` from one another, the nearest two ``clear`` of the
    value either side of the mean's marker there (an odd one out on the left). Repeats of one
    configuration share its value, and their dots were drawn at one x: 3 seeds looked like 1."""
    at_value = values.groupby(values, sort=False)
    rank = at_value.cumcount().to_numpy(dtype=float)
    count = at_value.transform("size").to_numpy(dtype=float)
    left = np.ceil(count / 2)  # how many stand left of the value
    beside = np.where(rank < left, -(clear + (left - 1 - rank) * apart), clear + (rank - left) * apart)
    return np.where(count > 1, beside, 0.0)


class Spacing(NamedTuple):
    """Points on the page: ``spread``'s ``apart`` and ``clear``, ``beside`` between neighbouring
    sweeps (``dodge``), and ``reach``, the farthest a trial or mean sits from its value."""
    apart: float
    clear: float
    beside: float
    reach: float


def spacing(fig: Figure, ax: Axes, data: pd.DataFrame, param: str, hue: str | None,
            categories: int) -> Spacing:
    """How far apart the trials at one value and the sweeps beside it stand: sweeps one value's widest
    spread plus DODGE_PT apart, so that neither their means nor their trials meet. On a numeric axis
    no trial sits farther than SPREAD_MAX_PT from its sweep's place; on a categorical one
    (``categories`` values) everything is narrowed to fit CATEGORY_FILL of a category."""
    most = int(data.groupby([hue, param] if hue else [param], sort=False).size().max())
    clear, apart = (CLEAR_PT, SPREAD_PT) if most > 1 else (0.0, 0.0)
    outer = math.ceil(most / 2) - 1  # trials beyond the nearest one on the fuller (left) side
    if outer and not categories:
        apart = min(apart, (SPREAD_MAX_PT - clear) / outer)
    width = 2 * clear + max(most - 2, 0) * apart  # from the leftmost trial to the rightmost
    sweeps = data[hue].nunique() if hue else 1
    narrow = 1.0
    if categories:
        room = CATEGORY_FILL * ax.get_position().width * fig.get_figwidth() * 72 / categories
        narrow = min(1.0, room / ((sweeps - 1) * (width + DODGE_PT) + width + DODGE_PT))  # a dot each end
    beside = (width + DODGE_PT) * narrow
    reach = (sweeps - 1) / 2 * beside + (clear + outer * apart) * narrow + MEAN_PT / 2
    return Spacing(apart * narrow, clear * narrow, beside, reach)


def keep_inside(fig: Figure, ax: Axes, reach: float) -> None:
    """Widen ``ax``'s x margins so that what is drawn up to ``reach`` points beside the first and last
    values stays inside the axes: three seeds of each of two sweeps reach 23 points out, and under the
    default 5 % (18 points here) those at the lowest and highest teacher_temp were cut off by the frame."""
    share = reach / (ax.get_position().width * fig.get_figwidth() * 72)  # of the axes' width
    ax.margins(x=max(float(matplotlib.rcParams["axes.xmargin"]), share / (1 - 2 * share)))


def trial_marks(ax: Axes, xs: np.ndarray, trials: pd.DataFrame, points: np.ndarray,
                color: Any) -> None:
    """A dot per trial at (``xs``, its kNN top-1), a red cross if it collapsed, each ``points[i]`` to
    the right on the page; the crosses above the mean's marker: a value whose repeats all collapsed has
    its mean where they are."""
    collapsed = trials["collapsed"].fillna(False).to_numpy(dtype=bool)
    ys = trials["knn_top1"].to_numpy(dtype=float)
    ok = ~collapsed
    scatter_beside(ax, xs[ok], ys[ok], points[ok], s=22, alpha=0.55, color=color, zorder=2)
    scatter_beside(ax, xs[collapsed], ys[collapsed], points[collapsed], s=40, marker="x",
                   color=COLLAPSE_COLOR, zorder=5)


def scatter_beside(ax: Axes, xs: np.ndarray, ys: np.ndarray, points: np.ndarray, *, s: float,
                   **style: Any) -> PathCollection:
    """``ax.scatter(xs, ys, s=s)`` with marker i drawn ``points[i]`` to the right on the page: its offset
    stays at its values, its outline moves (a scatter draws its marker in units of sqrt(s) points).
    One collection: one per distance (``dodge`` each) took 5 s, not 0.5, for 3,000 trials."""
    drawn = ax.scatter(xs, ys, s=s, **style)
    (marker,) = drawn.get_paths()
    drawn.set_paths([marker.transformed(Affine2D().translate(p / math.sqrt(s), 0)) for p in points])
    return drawn


def dodge(fig: Figure, ax: Axes, artists: Sequence[Artist], points: float) -> None:
    """Move ``artists``, drawn at their values, ``points`` to the right on the page: two sweeps that ran
    the same value (teacher_temp 0.0354 in both) drew their means and error bars on one another (their
    trials move with ``scatter_beside``). On the page, so a log axis moves each value by one factor and
    a linear one by one amount; moved once drawn, so the axis limits stay those of the values themselves."""
    beside = offset_copy(ax.transData, fig=fig, x=points, units="points")
    for artist in artists:
        artist.set_transform(beside)


SLANT = 45  # degrees: neighbours a label's height apart along the axis clear each other at sin(45°)


def slant_if_crowded(fig: Figure, ax: Axes) -> None:
    """Slant the x tick labels when, level, two of them would overlap (long choices such as timm
    names, many values, long parameter names): measured on the figure as it will be drawn."""
    if crowded(fig, ax):
        for label in ax.get_xticklabels():
            label.set_rotation(SLANT)
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")


REFERENCES = {PIXEL_KNN: ("raw pixels", "#8c564b", ":"),
              UNTRAINED_KNN: ("untrained network", "#7f7f7f", "-.")}


def reference_lines(ax: Axes, reference: dict | None) -> None:
    """Horizontal lines at the dataset's raw-pixel and untrained-network kNN top-1 (labelled)."""
    for key, (name, color, ls) in REFERENCES.items():
        value = (reference or {}).get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            ax.axhline(value, color=color, ls=ls, lw=1.2, label=f"{name} {value:.2f}%", zorder=1)


# --- over epochs ------------------------------------------------------------------------------
def value_norm(values: pd.Series) -> Normalize:
    """The colour scale of final kNN top-1 over ``values``; one value (a single trial, or one that is
    not collapsed) sits mid-scale on a 2-point range, where a zero-width range drew its line at the
    scale's bottom colour while the colour bar put that value in its middle."""
    finite = values.astype(float).dropna()
    if finite.empty:
        return Normalize(0.0, 100.0)
    lo, hi = float(finite.min()), float(finite.max())
    return Normalize(lo - 1.0, hi + 1.0) if lo == hi else Normalize(lo, hi)


def _trial_styles(trials: pd.DataFrame) -> tuple[dict[str, dict], Normalize, str]:
    """Per trial: colour by final kNN top-1; red dashed if collapsed, grey dotted if errored."""
    healthy = ~trials["collapsed"].fillna(False) & (trials["status"] != ERRORED)
    final = trials.loc[healthy, "knn_top1"].astype(float)  # collapsed ones would squash the scale
    norm = value_norm(final)
    cmap = matplotlib.colormaps["viridis"]
    styles = {}
    for _, t in trials.iterrows():
        if bool(t["collapsed"]) if t["collapsed"] is not pd.NA else False:
            style = {"color": COLLAPSE_COLOR, "ls": "--", "lw": 1.4}
        elif t["status"] == ERRORED:
            style = {"color": "grey", "ls": ":", "lw": 1.2}
        else:
            v = t["knn_top1"]
            style = {"color": cmap(norm(v)) if pd.notna(v) else "grey", "ls": "-", "lw": 1.4}
        styles[t["trial_id"]] = style
    return styles, norm, "viridis"


def _status_legend(ax: Axes, trials: pd.DataFrame) -> None:
    handles, labels = legend_keys(ax, [
        (Line2D([], [], color=COLLAPSE_COLOR, ls="--"), "collapsed",
         bool(trials["collapsed"].fillna(False).any())),
        (Line2D([], [], color="grey", ls=":"), ERRORED, bool((trials["status"] == ERRORED).any()))])
    if handles:  # below the axes: inside, "best" sat on the raw-pixel line along the bottom
        ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncol=min(len(handles), 3), borderaxespad=0)


@drawn_with_defaults
def learning_curves(epochs: pd.DataFrame, trials: pd.DataFrame, out: Path,
                    reference: dict | None = None) -> Path | None:
    """Loss and kNN top-1 vs epoch, one line per trial, coloured by its final kNN top-1; the
    dataset's raw-pixel and untrained kNN as reference lines."""
    if epochs.empty or "knn_top1" not in epochs:
        return None
    if not (epochs["epoch"] >= 1).any():  # epoch 0 alone is the untrained network, the reference line
        return None
    styles, norm, cmap = _trial_styles(trials)
    fig = Figure(figsize=(11, 4.2))
    ax_loss, ax_knn = fig.subplots(1, 2)
    # the rows each panel draws, chosen once for the table (per trial, it was most of the report's time
    # on thousands of trials); every trial still gets its line in both, empty or not
    trained = epochs[epochs["loss"].notna()] if "loss" in epochs else None
    knn = epochs[epochs["knn_top1"].notna()]
    if "knn_evaluated" in knn:  # carried-forward values are not measurements
        knn = knn[knn["knn_evaluated"].fillna(True).astype(bool)]
    if not any((rows["epoch"] >= 1).any() for rows in (trained, knn) if rows is not None):
        return None  # every trained epoch's loss NaN or inf (all diverged): two empty panels say nothing
    losses = dict(tuple(trained.groupby("trial_id", sort=False))) if trained is not None else {}
    knns = dict(tuple(knn.groupby("trial_id", sort=False)))
    empty = epochs.iloc[:0]
    for trial_id in epochs["trial_id"].dropna().unique():
        style = styles.get(trial_id, {"color": "grey"})
        if trained is not None:
            rows = losses.get(trial_id, empty)
            ax_loss.plot(rows["epoch"], rows["loss"], alpha=0.85, marker=lone_marker(rows), **style)
        rows = knns.get(trial_id, empty)
        ax_knn.plot(rows["epoch"], rows["knn_top1"], marker=".", alpha=0.85, **style)
    ax_loss.set(xlabel="epoch", ylabel="training loss (nats)", title="Loss")
    ax_knn.set(xlabel="epoch (0 = untrained)", ylabel=KNN_LABEL, title="kNN top-1 during training")
    for ax in (ax_loss, ax_knn):
        ax.grid(alpha=0.3)
        epoch_ticks(ax)
    reference_lines(ax_knn, reference)
    _status_legend(ax_knn, trials)
    if colored(trials):
        fig.colorbar(ScalarMappable(norm, cmap), ax=[ax_loss, ax_knn], label=f"final {KNN_LABEL}",
                     fraction=0.03, pad=0.02)
    return save(fig, out)


def epoch_ticks(ax: Axes) -> None:
    """Whole epochs on the x axis: the locator's integer mode still ticks 0.96, 0.98, ... when the
    axis spans less than one epoch (every trial ran one)."""
    lo, hi = ax.get_xlim()
    if hi - lo < 2:
        ax.set_xticks(range(math.ceil(lo), math.floor(hi) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True))


def lone_marker(rows: pd.DataFrame) -> str | None:
    """A dot for a trial with one point to draw (a 1-epoch sweep, a trial stopped after its first
    epoch): a line through one point draws nothing."""
    return "." if len(rows) == 1 else None


def colored(trials: pd.DataFrame) -> bool:
    """Whether any line is coloured by its final kNN top-1 (``_trial_styles``): without one, a colour
    bar would show a scale no line uses."""
    healthy = ~trials["collapsed"].fillna(False) & (trials["status"] != ERRORED)
    return bool(trials.loc[healthy, "knn_top1"].notna().any())


END_MARK = 9  # points: the cross where a collapsed trial stopped, on its last entropy and KL


@drawn_with_defaults
def collapse_plot(epochs: pd.DataFrame, trials: pd.DataFrame, out: Path) -> Path | None:
    """Teacher entropy (with ln(out_dim), the uniform-collapse level) and KL(teacher || student) vs
    epoch: the DINO paper's Fig. 7 diagnostics. Both near 0 KL = collapse."""
    if epochs.empty or "teacher_entropy" not in epochs or epochs["teacher_entropy"].isna().all():
        return None
    collapsed_ids = set(trials.loc[trials["collapsed"].fillna(False), "trial_id"])
    fig = Figure(figsize=(11, 4.2))
    ax_h, ax_kl = fig.subplots(1, 2)
    measured = dict(tuple(epochs[epochs["teacher_entropy"].notna()].groupby("trial_id", sort=False)))
    empty = epochs.iloc[:0]
    for trial_id in epochs["trial_id"].dropna().unique():  # every trial's line, as in the learning curves
        rows = measured.get(trial_id, empty)
        bad = trial_id in collapsed_ids
        style = {"color": COLLAPSE_COLOR if bad else TRIAL_COLOR, "alpha": 0.9 if bad else 0.45,
                 "lw": 1.6 if bad else 1.0}
        ax_h.plot(rows["epoch"], rows["teacher_entropy"], marker=lone_marker(rows), **style)
        if "kl_teacher_student" in rows:
            ax_kl.plot(rows["epoch"], rows["kl_teacher_student"], marker=lone_marker(rows), **style)
        if bad and len(rows):
            last = rows.iloc[-1]
            ax_h.plot(last["epoch"], last["teacher_entropy"], "x", color=COLLAPSE_COLOR, ms=END_MARK)
            if "kl_teacher_student" in rows:
                ax_kl.plot(last["epoch"], last["kl_teacher_student"], "x", color=COLLAPSE_COLOR, ms=END_MARK)
    ln_ks = sorted(epochs["ln_out_dim"].dropna().unique()) if "ln_out_dim" in epochs else []
    for ln_k in ln_ks:  # labelled above the line (no entropy exceeds ln K) at the left, away from the
        ax_h.axhline(ln_k, color="black", ls="--", lw=1)  # end marks of trials that collapsed to it,
        # and above the top half of the end mark of one that collapsed to it early, on the left
        ax_h.annotate(f"ln(out_dim) = {ln_k:.2f} (uniform)", (0.01, ln_k), ha="left", va="bottom",
                      xycoords=("axes fraction", "data"), xytext=(0, END_MARK / 2 + 1),
                      textcoords="offset points", fontsize=8)
    ax_h.set(xlabel="epoch", ylabel="teacher entropy (nats)", title="Teacher entropy")
    ax_kl.set(xlabel="epoch", ylabel="KL(teacher ‖ student) (nats)", title="KL(teacher ‖ student)")
    for ax in (ax_h, ax_kl):
        from_zero(ax)  # 0 is where one-hot collapse (entropy) and any collapse (KL) end
        ax.grid(alpha=0.3)
        epoch_ticks(ax)
    if ln_ks:  # room for the top label between its line and the frame
        ax_h.set_ylim(top=max(ax_h.get_ylim()[1], float(ln_ks[-1]) * 1.1))
    drawn_ids = set(epochs["trial_id"].dropna())
    ax_kl.legend(*legend_keys(ax_kl, [
        (Line2D([], [], color=TRIAL_COLOR), "trial", bool(drawn_ids - collapsed_ids)),
        (Line2D([], [], color=COLLAPSE_COLOR, marker="x"), f"collapsed ({len(collapsed_ids & drawn_ids)})",
         bool(collapsed_ids & drawn_ids))]), fontsize=8, loc="best")
    return save(fig, out)


def from_zero(ax: Axes) -> None:
    """``ax``'s y axis from 0 to its highest value and a margin above it: ``set_ylim(bottom=0)`` kept
    the top that autoscaling gave the values' own range, so where they lay close together (the KL of
    three seeds, 0.57 to 0.62, at a 1-epoch sweep's one epoch) the highest marker sat cut on the frame."""
    top = float(ax.dataLim.y1) if ax.dataLim.height >= 0 and math.isfinite(ax.dataLim.y1) else 0.0
    ax.set_ylim(0, top * (1 + 2 * float(matplotlib.rcParams["axes.ymargin"])) if top > 0 else 1.0)


# --- all parameters at once -------------------------------------------------------------------
LABEL_BOX = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}


@drawn_with_defaults
def parallel_plot(trials: pd.DataFrame, params: list[str], out: Path, *, log_params: Sequence[str] = (),
                  categorical_params: Sequence[str] = ()) -> Path | None:
    """Parallel coordinates: one vertical axis per parameter plus kNN top-1, one line per trial,
    coloured by its final kNN top-1; a collapsed trial red and dashed, as in the learning curves."""
    data = trials[trials["knn_top1"].notna()]
    if data.empty or not params:
        return None
    axes = [*params, "knn_top1"]
    columns, ticks = {}, {}
    for name in axes:
        col = data[name]
        if name in categorical_params or not is_numeric(col):
            values = ordered_values(col)
            k = max(len(values) - 1, 1)
            pos = {v: i / k if len(values) > 1 else 0.5 for i, v in enumerate(values)}
            columns[name] = col.map(lambda v, pos=pos: pos.get(v, np.nan)).astype(float)
            ticks[name] = [(pos[v], fmt_value(v)) for v in values]
            continue
        raw = col.astype(float)
        scaled = np.log10(raw.where(raw > 0)) if name in log_params else raw
        lo, hi = float(np.nanmin(scaled)), float(np.nanmax(scaled))
        span = hi - lo
        columns[name] = (scaled - lo) / span if span > 0 else scaled * 0 + 0.5
        if span > 0:  # min, middle, max in the parameter's own units
            mid = 10 ** ((lo + hi) / 2) if name in log_params else (lo + hi) / 2
            ticks[name] = [(0.0, fmt_value(float(np.nanmin(raw)))), (0.5, fmt_value(float(mid))),
                           (1.0, fmt_value(float(np.nanmax(raw))))]
        else:
            ticks[name] = [(0.5, fmt_value(float(np.nanmin(raw))))]
    collapsed = data["collapsed"].fillna(False).to_numpy(dtype=bool)
    norm = value_norm(data.loc[~collapsed, "knn_top1"])  # collapsed ones would squash the scale
    cmap = matplotlib.colormaps["viridis"]
    fig = Figure(figsize=(max(6.0, 1.9 * len(axes)), 4.6))
    ax = fig.add_subplot()
    xs = np.arange(len(axes))
    order = np.argsort(data["knn_top1"].to_numpy())  # best trials drawn last, on top
    for i in order:
        ys = [columns[name].iloc[i] for name in axes]
        style = ({"color": COLLAPSE_COLOR, "ls": "--"} if collapsed[i] else
                 {"color": cmap(norm(data["knn_top1"].iloc[i]))})
        ax.plot(xs, ys, alpha=0.8, lw=1.5, **style)
    for x, name in zip(xs, axes, strict=True):
        ax.axvline(float(x), color="black", lw=0.8)
        for y, text in ticks[name]:  # on white, above the lines: the lines that meet there crossed it
            ax.annotate(text, (x, y), xytext=(4, 0), textcoords="offset points", fontsize=8, va="center",
                        bbox=LABEL_BOX, zorder=3)
    labels = [f"{p}\n(log)" if p in log_params else p for p in params] + [KNN_LABEL]
    ax.set_xticks(xs, labels, fontsize=9)
    slant_if_crowded(fig, ax)
    ax.set_yticks([])
    ax.set_ylim(-0.06, 1.06)
    ax.set_xlim(-0.2, len(axes) - 0.6)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    # said in the title: a legend inside sat on the lines, one above ran into the title
    red = f"\n{int(collapsed.sum())} collapsed: red, dashed" if collapsed.any() else ""
    ax.set_title(f"Parameters of every trial, coloured by final kNN top-1{red}")
    if not collapsed.all():
        fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=KNN_LABEL, fraction=0.04, pad=0.02)
    return save(fig, out)


@drawn_with_defaults
def importance_plot(importances: dict[str, dict[str, float]], out: Path) -> Path | None:
    """One horizontal bar chart per evaluator (fANOVA, PED-ANOVA), importances summing to 1, the
    parameters in one order in every panel, the most important on top (``by_importance``)."""
    if not importances:
        return None
    params = by_importance(importances)[::-1]  # barh draws bottom-up
    # constrained: each panel's parameter names get their own room, not the panel to their left's
    fig = Figure(figsize=(5.2 * len(importances), 0.5 * len(params) + 1.8), layout="constrained")
    for ax, (name, values) in zip(np.atleast_1d(fig.subplots(1, len(importances))), importances.items(),
                                  strict=True):
        items = [(p, values.get(p, 0.0)) for p in params]
        ax.barh([k for k, _ in items], [v for _, v in items], color=TRIAL_COLOR)
        for y, (_, v) in enumerate(items):
            ax.annotate(f"{v:.2f}", (v, y), xytext=(3, 0), textcoords="offset points", va="center",
                        fontsize=8)
        ax.set(xlabel="importance for kNN top-1 (fraction, sums to 1)", title=name, xlim=(0, 1.1))
        ax.grid(axis="x", alpha=0.3)
    return save(fig, out)


# the bars of main_effects_plot by the verdict's kind (reports.main_effects.MainEffect.kind): the face, the
# edge, the legend's words; every kind without a verdict (no repeats, too few seeds, all failed) is hollow
VERDICT_STYLES = {BEYOND: (TRIAL_COLOR, TRIAL_COLOR, "beyond seed noise"),
                  WITHIN: ("#b8b8b8", "#b8b8b8", "within seed noise"),
                  "": ("white", "#555555", "no seed-noise verdict")}


ZERO_SPREAD = 1e-9  # a spread below this is a tie drawn as 0, in the metric's units


@drawn_with_defaults
def main_effects_plot(effects: pd.DataFrame, out: Path, metric: str = "knn_top1") -> Path | None:
    """One horizontal bar per parameter (rows of ``param``, ``spread``, ``half``, ``kind``, ``failed``,
    ``working``: reports.main_effects.plot_rows), the largest main effect on top, its 95% CI over seeds a
    whisker where there is one. Filled by the verdict (``VERDICT_STYLES``); a red hatch where a value's
    trials collapsed or diverged, and a black tick at the spread of the other values."""
    rows = effects[np.isfinite(effects["spread"].to_numpy(dtype=float))].iloc[::-1]  # barh draws bottom-up
    if rows.empty:
        return None
    fig = Figure(figsize=(6.4, 0.45 * len(rows) + 1.6))
    ax = fig.add_subplot()
    ys = np.arange(len(rows))
    spread, half = rows["spread"].to_numpy(dtype=float), rows["half"].to_numpy(dtype=float)
    styles = [VERDICT_STYLES.get(k, VERDICT_STYLES[""]) for k in rows["kind"]]
    failed, working = rows["failed"].to_numpy(dtype=bool), rows["working"].to_numpy(dtype=float)
    ax.barh(ys, spread, height=0.6, color=[face for face, _, _ in styles], zorder=2, linewidth=1.2,
            edgecolor=[COLLAPSE_COLOR if f else edge for f, (_, edge, _) in zip(failed, styles, strict=True)])
    if failed.any():  # the hatch over the failed ones only: barh takes one hatch for all its bars
        ax.barh(ys[failed], spread[failed], height=0.6, color="none", edgecolor=COLLAPSE_COLOR, hatch="///",
                linewidth=0, zorder=3)
    ticks = np.isfinite(working)
    if ticks.any():
        ax.scatter(working[ticks], ys[ticks], marker="|", s=400, linewidths=2.5, color="black", zorder=5)
    whisker = np.isfinite(half)
    if whisker.any():
        ax.errorbar(spread[whisker], ys[whisker], xerr=half[whisker], fmt="none", ecolor="black", capsize=4,
                    lw=1, zorder=4)
    reach = spread + np.where(whisker, np.nan_to_num(half), 0.0)
    for y, (s, h, r) in enumerate(zip(spread, half, reach, strict=True)):
        text = metric_words.fmt_gap(s) + (f" ± {metric_words.fmt_gap(h)}" if math.isfinite(h) else "")
        ax.annotate(text, (r, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(ys, list(rows["param"]))
    # every spread 0 (a tie, or a mean's rounding noise): an axis of one unit, not of 1e-12 (matplotlib
    # then labels its ticks 0.0 ... 1.2 with "1e-12" under them, as if the effects were that large)
    top = float(reach.max())
    ax.set_xlim(0, (top if top > ZERO_SPREAD else 1.0) * 1.25)
    unit = metric_words.gap(metric).strip()
    ax.set_xlabel(f"main effect: best minus worst mean {metric_words.name(metric)}"
                  + (f" ({unit})" if unit else ""))
    ax.set_title("Main effect of each parameter")
    ax.grid(axis="x", alpha=0.3, zorder=0)
    kinds = {VERDICT_STYLES.get(k, VERDICT_STYLES[""])[2] for k in rows["kind"]}
    handles, labels = legend_keys(ax, [
        *((Patch(facecolor=face, edgecolor=edge), words, words in kinds)
          for face, edge, words in VERDICT_STYLES.values()),
        (Patch(facecolor="white", edgecolor=COLLAPSE_COLOR, hatch="///"), "a value collapsed or diverged",
         bool(failed.any())),
        (Line2D([], [], ls="", marker="|", ms=12, mew=2.5, color="black"), "spread of the other values",
         bool(ticks.any()))])
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return save(fig, out)


@drawn_with_defaults
def pareto_plot(table: pd.DataFrame, out: Path, metric: str = "knn_top1", mode: str = "max") -> Path | None:
    """The metric (mean over repeats) against device-seconds per trial, the Pareto front joined."""
    scored = table[table["value"].notna()]
    if scored.empty:
        return None
    kind = str(scored["device_kind"].iloc[0])
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    collapsed = scored["collapsed"].to_numpy(dtype=bool)
    xs, ys = scored["per_trial_s"].to_numpy(dtype=float), scored["value"].to_numpy(dtype=float)
    # a diverged configuration is off the front as a collapsed one is (ranking rule 3): not drawn as working
    diverged = ~collapsed & (scored["diverged"].to_numpy(dtype=bool) if "diverged" in scored else False)
    working = ~collapsed & ~diverged
    # each kind drawn (and so in the legend) only where there is one: a grid with no collapsed
    # configuration had a red 'collapsed' cross in its legend, and nothing red on the plot
    if working.any():
        ax.scatter(xs[working], ys[working], s=30, color=TRIAL_COLOR, alpha=0.7, label="configuration")
    if collapsed.any():
        ax.scatter(xs[collapsed], ys[collapsed], s=40, marker="x", color=COLLAPSE_COLOR, label="collapsed")
    if diverged.any():
        ax.scatter(xs[diverged], ys[diverged], s=40, marker="^", facecolors="none", edgecolors=COLLAPSE_COLOR,
                   label="diverged")
    from reports.cost import pareto_front

    front = table.loc[pareto_front(table, mode)]
    if len(front) > 1:
        ax.plot(front["per_trial_s"], front["value"], "-", color="black", lw=1, label="Pareto front")
    elif len(front):  # a line of one point draws nothing: its legend key named a front no one could see
        ax.scatter(front["per_trial_s"], front["value"], s=130, facecolors="none", edgecolors="black", lw=1.2,
                   label="Pareto front: one configuration (none cheaper or better)")
    # from zero: costs a fraction of a second apart (every CPU trial alike) read as alike, instead
    # of a zoomed axis ticked 12.0800, 12.0825, ... with its labels run together
    ax.set_xlim(left=0, right=max(float(np.nanmax(xs)), 1.0) * 1.05)
    ax.set_xlabel(f"{kind}-seconds per trial")
    better = "higher" if mode == "max" else "lower"
    ax.set_ylabel(f"{metric_words.label(metric)} ({better} is better)")
    ax.set_title("Result vs cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save(fig, out)
