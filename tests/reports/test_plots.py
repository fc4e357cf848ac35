"""The report's figures (reports.plots): what a reader sees in odd but legitimate sweeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from reports import plots


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the plot functions save, kept to be looked at."""
    figures: list[Figure] = []

    def keep(fig: Figure, path: Path) -> Path:
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "save", keep)
    return figures


def tables(epochs_done: int, collapsed: bool = False,
           status: str = "completed") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two trials that ran ``epochs_done`` epochs after the untrained epoch 0."""
    trials = pd.DataFrame({"trial_id": ["a", "b"], "status": [status] * 2, "knn_top1": [34.0, 33.7],
                           "collapsed": pd.array([collapsed] * 2, dtype="boolean")})
    epochs = pd.DataFrame([{"trial_id": t, "epoch": e, "knn_top1": 30.0 + e, "knn_evaluated": True,
                            "loss": 6.8 if e else None, "teacher_entropy": 5.8 if e else None,
                            "kl_teacher_student": 0.9 if e else None}
                           for t in ("a", "b") for e in range(epochs_done + 1)])
    return trials, epochs


def xs(line: Line2D) -> list[float]:
    return [float(x) for x in np.asarray(line.get_xdata())]


def shown(line: Line2D) -> bool:
    """A line that puts ink on the page: two points or more, or one with a marker."""
    return len(xs(line)) > 1 or line.get_marker() not in (None, "", "None", " ")


def test_a_one_epoch_sweep_draws_its_loss_entropy_and_kl(drawn: list[Figure], tmp_path: Path) -> None:
    """`--set trainer.epochs=1` gave a blank Loss panel and blank entropy and KL panels: each trial's
    single trained epoch was a line through one point, which draws nothing."""
    trials, epochs = tables(epochs_done=1)
    assert plots.learning_curves(epochs, trials, tmp_path / "curves.png") is not None
    assert plots.collapse_plot(epochs, trials, tmp_path / "collapse.png") is not None
    (curves, collapse) = drawn
    loss, entropy, kl = curves.axes[0], collapse.axes[0], collapse.axes[1]
    for ax in (loss, entropy, kl):
        lines = [line for line in ax.lines if xs(line) == [1.0]]
        assert len(lines) == 2 and all(shown(line) for line in lines), ax.get_title()
    trials, epochs = tables(epochs_done=3)  # longer trials keep plain lines
    plots.learning_curves(epochs, trials, tmp_path / "curves3.png")
    assert all(line.get_marker() in (None, "None") for line in drawn[-1].axes[0].lines)


def test_the_highest_kl_and_entropy_stay_clear_of_the_frame(drawn: list[Figure], tmp_path: Path) -> None:
    """Three seeds of one configuration, one epoch: KL 0.57 to 0.62. The axis started at 0 with the
    top autoscaling gave 0.57-0.62 (a 5 % margin of 0.05), and the 0.62 marker sat cut by the frame."""
    trials, epochs = tables(epochs_done=1)
    epochs.loc[epochs["epoch"] == 1, "kl_teacher_student"] = [0.565, 0.615]
    plots.collapse_plot(epochs, trials, tmp_path / "collapse.png")
    kl = drawn[0].axes[1]
    assert kl.get_ylim()[0] == 0.0 and kl.get_ylim()[1] >= 0.615 * 1.05


def test_no_trained_epoch_is_no_figure(drawn: list[Figure], tmp_path: Path) -> None:
    """Every trial errored before its first epoch: the figure was an empty Loss panel, one kNN dot on an
    axis from -0.04 to 0.04 and a colour bar from 0 to 100."""
    trials, epochs = tables(epochs_done=0, status="errored")
    assert plots.learning_curves(epochs, trials, tmp_path / "curves.png") is None
    assert drawn == []


def test_no_colour_bar_when_no_line_is_coloured_by_its_result(drawn: list[Figure], tmp_path: Path) -> None:
    """Every trial collapsed (drawn red): the colour bar showed a 0-100 scale that no line used."""
    trials, epochs = tables(epochs_done=2, collapsed=True)
    plots.learning_curves(epochs, trials, tmp_path / "c.png")
    assert len(drawn[-1].axes) == 2  # loss and kNN, no colour bar
    trials, epochs = tables(epochs_done=2)
    plots.learning_curves(epochs, trials, tmp_path / "w.png")
    assert len(drawn[-1].axes) == 3


def test_a_one_epoch_axis_ticks_whole_epochs(drawn: list[Figure], tmp_path: Path) -> None:
    """The Loss, entropy and KL panels of a 1-epoch sweep were ticked 0.96, 0.98, 1.00, 1.02, 1.04."""
    trials, epochs = tables(epochs_done=1)
    plots.learning_curves(epochs, trials, tmp_path / "curves.png")
    plots.collapse_plot(epochs, trials, tmp_path / "collapse.png")
    (curves, collapse) = drawn
    for ax in (curves.axes[0], curves.axes[1], *collapse.axes):
        assert [float(t) for t in ax.get_xticks()] in ([1.0], [0.0, 1.0]), ax.get_title()


def test_a_log_axis_within_one_decade_names_its_ticks(drawn: list[Figure], tmp_path: Path) -> None:
    """teacher_temp 0.01 to 0.045 on a log axis was labelled 0.01 and 0.02 only: the ticks at 0.03
    and 0.04, where most of the trials sat, had no number."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    trials = pd.DataFrame({"teacher_temp": [0.01, 0.02, 0.03, 0.0354, 0.0442],
                           "knn_top1": [30.0, 31, 32, 33, 34],
                           "collapsed": pd.array([False] * 5, dtype="boolean")})
    plots.effect_plot(trials, "teacher_temp", tmp_path / "e.png", log=True)
    FigureCanvasAgg(drawn[0]).draw()
    ax = drawn[0].axes[0]
    lo, hi = ax.get_xlim()
    labels = {t.get_text() for t in ax.get_xticklabels(minor=True) + ax.get_xticklabels()
              if lo <= t.get_position()[0] <= hi and t.get_text()}
    assert {"0.01", "0.02", "0.03", "0.04"} <= labels
    wide = trials.assign(teacher_temp=[0.001, 0.004, 0.02, 0.05, 0.1])  # two decades: 2s and 5s only
    plots.effect_plot(wide, "teacher_temp", tmp_path / "w.png", log=True)
    FigureCanvasAgg(drawn[1]).draw()
    ax = drawn[1].axes[0]
    lo, hi = ax.get_xlim()
    labels = {t.get_text() for t in ax.get_xticklabels(minor=True) if lo <= t.get_position()[0] <= hi}
    assert "0.03" not in labels and "0.02" in labels


def test_collapsed_trials_stay_visible_over_their_mean(drawn: list[Figure], tmp_path: Path) -> None:
    """A value whose repeats all collapsed (same kNN each) showed a plain blue mean: the red crosses of
    its trials were drawn beneath the mean marker, so nothing said they collapsed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgb

    trials = pd.DataFrame({"teacher_temp": [0.01, 0.01], "knn_top1": [30.2, 30.2],
                           "collapsed": pd.array([True, True], dtype="boolean")})
    plots.effect_plot(trials, "teacher_temp", tmp_path / "e.png")
    fig = drawn[0]
    legend = fig.axes[0].get_legend()
    assert legend is not None
    legend.remove()  # its sample cross is red too
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].astype(float) / 255
    red = np.abs(pixels - np.array(to_rgb(plots.COLLAPSE_COLOR))).max(axis=-1) < 0.1
    assert red.sum() > 20


def overlapping(fig: Figure) -> bool:
    """Whether two x tick labels of the figure's first axes overlap as the figure is drawn: level ones
    by their boxes, slanted ones (parallel lines of text) by their distance across the slant."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    labels = sorted((t for t in fig.axes[0].get_xticklabels() if t.get_text()),
                    key=lambda t: t.get_window_extent().x1)
    angle = labels[0].get_rotation()
    if angle == 0:
        boxes = [t.get_window_extent() for t in labels]
        return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:], strict=False))
    anchors = [t.get_window_extent().x1 for t in labels]  # right-aligned: the anchor is the right end
    height = max(float(t.get_fontsize()) for t in labels) * fig.dpi / 72
    across = np.sin(np.radians(angle))
    return any((b - a) * across < height for a, b in zip(anchors, anchors[1:], strict=False))


def test_long_choices_do_not_run_together(drawn: list[Figure], tmp_path: Path) -> None:
    """A choice over timm names: 'convnext_tiny.fb_in22k', 'efficientnet_b0', ... were written level
    under the effect plot and ran into each other; short values stay level."""
    archs = ["vit_small_patch16_224", "vit_base_patch16_224", "resnet50", "convnext_tiny.fb_in22k",
             "efficientnet_b0", "regnety_016"]
    trials = pd.DataFrame({"arch": archs, "knn_top1": [30.0 + i for i in range(6)],
                           "collapsed": pd.array([False] * 6, dtype="boolean")})
    plots.effect_plot(trials, "arch", tmp_path / "e.png", categorical=True)
    plots.parallel_plot(trials.assign(**{"a_long_parameter_name_" + str(i): 1.0 for i in range(4)}),
                        ["arch", *("a_long_parameter_name_" + str(i) for i in range(4))], tmp_path / "p.png",
                        categorical_params=["arch"])
    assert not overlapping(drawn[0]) and not overlapping(drawn[1])
    short = trials.assign(arch=["a", "b", "c", "d", "e", "f"])
    plots.effect_plot(short, "arch", tmp_path / "s.png", categorical=True)
    assert all(label.get_rotation() == 0 for label in drawn[2].axes[0].get_xticklabels())


def test_a_grids_interval_is_not_called_seed_noise(drawn: list[Figure], tmp_path: Path) -> None:
    """out_dim x head_nlayers, one seed each: the out_dim plot's interval at each value spans two
    configurations (head_nlayers 1 and 3), and its legend called it 'mean ± 95% CI over repeats'."""
    grid = pd.DataFrame({"point": [0, 1, 2, 3], "out_dim": [256, 256, 4096, 4096],
                         "head_nlayers": [1, 3, 1, 3], "knn_top1": [40.0, 50.0, 41.0, 52.0],
                         "collapsed": pd.array([False] * 4, dtype="boolean")})
    plots.effect_plot(grid, "out_dim", tmp_path / "g.png", categorical=True)
    repeats = grid.assign(point=[0, 0, 1, 1])  # two seeds of each value, nothing else varies
    plots.effect_plot(repeats, "out_dim", tmp_path / "r.png", categorical=True)
    legends = [fig.axes[0].get_legend() for fig in drawn]
    texts = [[t.get_text() for t in legend.get_texts()] for legend in legends if legend is not None]
    assert "mean over trials (other parameters vary)" in texts[0]
    assert "mean ± 95% CI over repeats" in texts[1]


def interval_bars(fig: Figure) -> list[tuple[float, float]]:
    """The (low, high) of every error bar an effect plot draws."""
    from matplotlib.collections import LineCollection

    return [(float(seg[:, 1].min()), float(seg[:, 1].max())) for c in fig.axes[0].collections
            if isinstance(c, LineCollection) for seg in c.get_segments() if len(seg)]


def test_a_grids_value_gets_its_mean_and_no_interval(drawn: list[Figure], tmp_path: Path) -> None:
    """momentum_teacher x center_momentum, one seed each: the t-interval over a value's two
    configurations (1 degree of freedom) ran from -47 to 119 % kNN top-1, the axis with it, and the
    four trials sat in a sliver of the plot. A value pooling configurations gets its mean only; a
    value whose trials differ in their seed alone keeps its interval."""
    grid = pd.DataFrame({"point": [0, 1, 2, 3], "momentum_teacher": [0.9, 0.9, 0.996, 0.996],
                         "center_momentum": [0.0, 0.9, 0.0, 0.9], "knn_top1": [42.3, 29.3, 36.1, 36.2],
                         "collapsed": pd.array([False] * 4, dtype="boolean")})
    plots.effect_plot(grid, "momentum_teacher", tmp_path / "g.png", categorical=True)
    mixed = grid.assign(point=[0, 1, 2, 2])  # 0.996: one configuration, two seeds
    plots.effect_plot(mixed, "momentum_teacher", tmp_path / "m.png", categorical=True)
    assert interval_bars(drawn[0]) == []
    lo, hi = drawn[0].axes[0].get_ylim()
    assert 20 < lo and hi < 50
    (bar,) = interval_bars(drawn[1])
    assert bar[0] < 36.1 and bar[1] > 36.2
    texts = [t.get_text() for t in drawn[1].axes[0].get_legend().get_texts()]
    assert "mean; ± 95% CI over repeats where only the seed varies" in texts


def test_a_kNN_axis_stays_within_0_and_100_percent(drawn: list[Figure], tmp_path: Path) -> None:
    """Two seeds 20 points apart: their t-interval (12.7 standard errors each side) reaches below
    0 and above 100 %, where no kNN top-1 can lie; the axis stops at 0 and 100, the bar at the frame."""
    repeats = pd.DataFrame({"point": [0, 0, 1, 1], "teacher_temp": [0.04, 0.04, 0.08, 0.08],
                            "knn_top1": [30.0, 50.0, 31.0, 33.0],
                            "collapsed": pd.array([False] * 4, dtype="boolean")})
    plots.effect_plot(repeats, "teacher_temp", tmp_path / "r.png")
    assert drawn[0].axes[0].get_ylim() == (0.0, 100.0)


def test_a_log_axis_names_every_tick_only_where_they_fit(drawn: list[Figure], tmp_path: Path) -> None:
    """teacher_temp 0.012 to 0.095 (Optuna, log): naming every tick wrote 0.07, 0.08, 0.09 into one
    another at the top of the decade; there the axis keeps its 2s and 5s."""
    trials = pd.DataFrame({"teacher_temp": [0.0122, 0.0354, 0.0442, 0.0619, 0.0952],
                           "knn_top1": [83.9, 83.6, 83.9, 84.2, 83.6],
                           "collapsed": pd.array([False] * 5, dtype="boolean")})
    plots.effect_plot(trials, "teacher_temp", tmp_path / "e.png", log=True)
    assert not overlapping_any(drawn[0])


def overlapping_any(fig: Figure) -> bool:
    """Whether any two x tick labels (major or minor) in view overlap once the figure is drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    boxes = sorted((t.get_window_extent() for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True)
                    if t.get_text() and lo <= t.get_position()[0] <= hi), key=lambda box: box.x0)
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:], strict=False))


def test_importance_panels_keep_their_names_apart(drawn: list[Figure], tmp_path: Path) -> None:
    """fANOVA and PED-ANOVA side by side: the right panel's 'warmup_teacher_temp_epochs' was written
    across the left panel's bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    values = {"teacher_temp": 0.3, "warmup_teacher_temp_epochs": 0.6, "student_temp": 0.1}
    plots.importance_plot({"fANOVA": values, "PED-ANOVA": values}, tmp_path / "i.png")
    FigureCanvasAgg(drawn[0]).draw()
    left, right = drawn[0].axes
    names = [t.get_window_extent() for t in right.get_yticklabels() if t.get_text()]
    assert min(box.x0 for box in names) > left.get_window_extent().x1


def test_a_lone_value_is_coloured_where_the_colour_bar_puts_it(drawn: list[Figure], tmp_path: Path) -> None:
    """One trial not collapsed (an ASHA sweep whose others collapsed), or a one-trial sweep: its line
    was drawn in the scale's bottom colour (dark purple) while the colour bar, widened by matplotlib,
    put its value mid-scale (teal)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    trials = pd.DataFrame({"teacher_temp": [0.02], "knn_top1": [34.07],
                           "collapsed": pd.array([False], dtype="boolean")})
    plots.parallel_plot(trials, ["teacher_temp"], tmp_path / "p.png")
    fig = drawn[0]
    FigureCanvasAgg(fig).draw()
    ax, bar = fig.axes
    (line,) = [line for line in ax.lines if line.get_color() != "black"]  # the trial, not the axes
    lo, hi = bar.get_ylim()
    assert lo < 34.07 < hi
    expected = matplotlib.colormaps["viridis"]((34.07 - lo) / (hi - lo))
    assert np.allclose(matplotlib.colors.to_rgba(line.get_color()), expected, atol=0.02)


def test_the_parallel_plot_marks_collapsed_trials(drawn: list[Figure], tmp_path: Path) -> None:
    """temps.yaml: the collapsed trials (teacher_temp 0.0619, kNN 32.7-36.0 at the epoch they were
    stopped) were drawn in the colour scale's dark purple like a working trial of 44 %, the only figure
    where nothing said they collapsed, and the colour bar was stretched down to their values."""
    from matplotlib.colors import to_rgb

    trials = pd.DataFrame({"teacher_temp": [0.0354, 0.0442, 0.0619], "knn_top1": [50.1, 44.1, 32.7],
                           "collapsed": pd.array([False, False, True], dtype="boolean")})
    plots.parallel_plot(trials, ["teacher_temp"], tmp_path / "p.png", log_params=["teacher_temp"])
    ax, bar = drawn[0].axes
    lines = [line for line in ax.lines if line.get_color() != "black"]  # the trials, not the axes
    red = [line for line in lines if to_rgb(line.get_color()) == to_rgb(plots.COLLAPSE_COLOR)]
    assert len(lines) == 3 and len(red) == 1 and red[0].get_linestyle() == "--"
    assert [float(v) for v in np.asarray(red[0].get_ydata())] == [1.0, 0.0]  # 0.0619 to the lowest kNN
    assert bar.get_ylim()[0] > 40  # the scale of the working trials
    assert ax.get_title().endswith("\n1 collapsed: red, dashed")
    plots.parallel_plot(trials.assign(collapsed=pd.array([True] * 3, dtype="boolean")), ["teacher_temp"],
                        tmp_path / "q.png")
    assert len(drawn[1].axes) == 1  # every trial red: no colour bar of a scale no line uses


def test_the_effect_plots_legend_covers_no_trial(drawn: list[Figure], tmp_path: Path) -> None:
    """Trials spread over the whole height at every value (a searched parameter whose other
    parameters vary): inside the axes, loc="best" still put the legend on some of them."""
    values = [0, 1, 2] * 4
    knn = [50.0, 44.0, 31.0, 36.0, 33.0, 49.5, 44.2, 34.0, 43.5, 31.5, 36.3, 40.0]
    trials = pd.DataFrame({"warmup": values, "knn_top1": knn, "point": range(12),
                           "collapsed": pd.array([k < 37 for k in knn], dtype="boolean")})
    assert plots.effect_plot(trials, "warmup", tmp_path / "e.png", categorical=True,
                             reference={"pixel_knn_top1": 22.9, "untrained_knn_top1": 29.8}) is not None
    (fig,) = drawn
    ax = fig.axes[0]
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    points = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    on_screen = ax.transData.transform(points)
    inside = ((on_screen[:, 0] >= legend.x0) & (on_screen[:, 0] <= legend.x1)
              & (on_screen[:, 1] >= legend.y0) & (on_screen[:, 1] <= legend.y1))
    assert len(points) == 12 and not inside.any()


def test_the_learning_curves_legend_covers_no_line(drawn: list[Figure], tmp_path: Path) -> None:
    """The kNN panel's legend (raw pixels, untrained network, collapsed) sat inside the axes, where
    "best" put it over the raw-pixel line, drawn along the bottom of the panel (the main job's report).
    It is under the axes now, below the x label, and every line is inside the axes."""
    trials, epochs = tables(epochs_done=3, collapsed=True)
    reference = {"pixel_knn_top1": 22.9, "untrained_knn_top1": 29.8}
    assert plots.learning_curves(epochs, trials, tmp_path / "c.png", reference) is not None
    (fig,) = drawn
    ax_knn = fig.axes[1]
    fig.canvas.draw()
    legend = ax_knn.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[-1] == "collapsed" and any(t.startswith("raw pixels") for t in texts)
    box, label = legend.get_window_extent(), ax_knn.xaxis.label.get_window_extent()
    assert box.y1 < label.y0 and box.y1 < ax_knn.get_window_extent().y0


def test_the_uniform_level_label_clears_the_collapsed_lines(drawn: list[Figure], tmp_path: Path) -> None:
    """A trial that collapsed to the uniform teacher ends at entropy ln K, at the right of the panel:
    the 'ln(out_dim) = 6.93 (uniform)' label, written under the line at the right, had that trial's
    red line and its end mark drawn through it (the main job's collapse plot). It sits above the line
    now, where no entropy can reach, at the left, inside the frame."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    ln_k = float(np.log(1024))
    trials, epochs = tables(epochs_done=3, collapsed=True)
    epochs["teacher_entropy"] = [None, 6.0, 6.6, ln_k] * 2
    epochs["ln_out_dim"] = ln_k
    plots.collapse_plot(epochs, trials, tmp_path / "collapse.png")
    fig = drawn[0]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax = fig.axes[0]
    (label,) = [t for t in ax.texts if t.get_text().startswith("ln(out_dim)")]
    box = label.get_window_extent(canvas.get_renderer())
    line_y = ax.transData.transform((0, ln_k))[1]
    assert box.y0 >= line_y - 0.5, "the label hangs below the ln K line, over the collapsed trials"
    assert box.y1 <= ax.get_window_extent().y1 + 0.5, "the label sticks out of the panel"
    ends = ax.transData.transform(epochs[["epoch", "teacher_entropy"]].dropna().to_numpy(dtype=float))
    mark = 9 / 72 * fig.dpi  # the end mark's size (ms=9 points), in pixels
    clear = Bbox.from_extents(box.x0 - mark, box.y0 - mark, box.x1 + mark, box.y1 + mark)
    assert not any(clear.contains(x, y) for x, y in ends), "a trial's line or end mark crosses the label"


@pytest.mark.parametrize("log", [True, False])
def test_two_sweeps_at_one_value_are_drawn_side_by_side(drawn: list[Figure], tmp_path: Path,
                                                        log: bool) -> None:
    """`ablate compare` of two sweeps that both ran teacher_temp 0.0354 (the main job and a tiny one):
    the second sweep's mean, error bar and trials were drawn on the first's, which hid them. Each
    sweep sits beside the value now, by one distance on the page on a log axis and a linear one, and
    its artists still hold the values themselves. With 3 seeds each, the sweeps at the lowest value
    stood half over the frame under the default margins; they stay inside it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    trials = pd.DataFrame({"sweep": ["main"] * 5 + ["tiny"] * 3,
                           "knn_top1": [50.1, 44.1, 47.0, 45.7, 43.9, 33.7, 32.4, 33.0],
                           "teacher_temp": [0.0354] * 3 + [0.0442] * 2 + [0.0354] * 3,
                           "collapsed": pd.array([False] * 8, dtype="boolean")})
    plots.effect_plot(trials, "teacher_temp", tmp_path / "c.png", hue="sweep", log=log)
    (fig,) = drawn
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    means = {bars.get_label().split(":")[0]: bars.lines[0] for bars in ax.containers}
    page_x = {name: line.get_transform().transform(np.column_stack([xs(line), line.get_ydata()]))[:, 0]
              for name, line in means.items()}
    values_x = ax.transData.transform(np.column_stack([[0.0354, 0.0442], [40.0, 40.0]]))[:, 0]
    marker = 6 * fig.dpi / 72  # the means' diameter on the page
    assert page_x["tiny"][0] - page_x["main"][0] > marker  # at the shared value, side by side
    assert np.allclose(page_x["main"] - values_x, -(page_x["tiny"][0] - values_x[0]))  # one distance
    assert xs(means["main"]) == [0.0354, 0.0442] and xs(means["tiny"]) == [0.0354]
    dots = page_dots(fig)
    colours = {name: dot_colour(line.get_color()) for name, line in means.items()}
    main, tiny = (dots[colours[name]] for name in ("main", "tiny"))
    assert max(x for v, x, _ in main if v == 0.0354) < min(x for _, x, _ in tiny)  # trials beside their mean
    for name, sweep in (("main", main), ("tiny", tiny)):
        for i, value in enumerate(xs(means[name])):
            assert around([x for v, x, _ in sweep if v == value], page_x[name][i], fig)
    frame = ax.get_window_extent()
    dot = np.sqrt(22) * fig.dpi / 72
    assert all(frame.x0 + dot / 2 < x < frame.x1 - dot / 2 for _, x, _ in main + tiny)


def dot_colour(colour: object) -> tuple[float, ...]:
    from matplotlib.colors import to_rgb

    return tuple(round(c, 3) for c in to_rgb(colour))  # type: ignore[arg-type]


def page_dots(fig: Figure) -> dict[tuple[float, ...], list[tuple[float, float, float]]]:
    """The trials' dots of the figure's first axes, by colour: (x value held, x on the page in pixels, y)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    dots: dict[tuple[float, ...], list[tuple[float, float, float]]] = {}
    for c in fig.axes[0].collections:
        if isinstance(c, PathCollection) and len(c.get_offsets()):
            held = np.asarray(c.get_offsets(), dtype=float)
            # a marker's outline may sit beside its offset, in units of sqrt(s) points
            outline = np.array([path.get_extents().intervalx.mean() for path in c.get_paths()])
            unit = np.sqrt(c.get_sizes()) * fig.dpi / 72
            page = c.get_offset_transform().transform(held)[:, 0] + outline * unit
            dots.setdefault(dot_colour(c.get_facecolor()[0]), []).extend(
                zip(held[:, 0], page, held[:, 1], strict=True))
    return dots


def mean_page_x(fig: Figure) -> dict[tuple[float, ...], list[tuple[float, float]]]:
    """Each mean marker of the figure's first axes, by colour: (x value held, x on the page in pixels)."""
    out = {}
    for bars in fig.axes[0].containers:
        line = bars.lines[0]
        page = line.get_transform().transform(np.column_stack([xs(line), line.get_ydata()]))[:, 0]
        out[dot_colour(line.get_color())] = list(zip(xs(line), page, strict=True))
    return out


def around(seeds: list[float], mean_x: float, fig: Figure) -> bool:
    """Whether the trials' dots stand either side of their mean's marker, two thirds of each out from
    under it (page x in pixels)."""
    clear = (6 / 2 + np.sqrt(22) / 6) * fig.dpi / 72  # the marker's radius and a third of a dot
    return min(seeds) < mean_x < max(seeds) and all(abs(x - mean_x) >= clear - 1e-6 for x in seeds)


@pytest.mark.parametrize("log", [True, False])
def test_each_repeat_shows_beside_the_others(drawn: list[Figure], tmp_path: Path, log: bool) -> None:
    """A sweep's report, teacher_temp 0.02 and 0.04 with 3 seeds each: the seeds of a configuration
    share its value, and their dots were drawn at one x, so 3 seeds looked like 1 (kNN 40.0 and 40.1
    as one dot). They stand a dot's width apart on the page now, either side of the mean, which stays
    at the value and hides none of them, and every dot still holds the value itself; repeat 0 on the
    left at every value."""
    trials = pd.DataFrame({"teacher_temp": [0.02] * 3 + [0.04] * 3, "repeat": [2, 0, 1, 1, 2, 0],
                           "knn_top1": [40.2, 40.0, 40.1, 45.1, 45.2, 45.0],  # tenths: the repeat
                           "collapsed": pd.array([False] * 6, dtype="boolean")})
    plots.effect_plot(trials, "teacher_temp", tmp_path / "e.png", log=log)
    (fig,) = drawn
    (dots,) = page_dots(fig).values()
    (means,) = mean_page_x(fig).values()
    ax = fig.axes[0]
    dot = np.sqrt(22) * fig.dpi / 72  # a dot's diameter on the page (s=22 points²)
    for value, mean_x in means:
        at_value = sorted(x for v, x, _ in dots if v == value)
        assert len(at_value) == 3
        left_to_right = [round(y % 1, 1) for v, _, y in sorted(dots, key=lambda d: d[1]) if v == value]
        assert left_to_right == [0.0, 0.1, 0.2]  # by repeat
        assert min(np.diff(at_value)) > 0.9 * dot  # each seed its own dot
        assert around(at_value, mean_x, fig)
        assert np.isclose(mean_x, ax.transData.transform((value, 40.0))[0])  # the mean at the value


def test_two_sweeps_at_one_category_keep_their_repeats_apart(drawn: list[Figure], tmp_path: Path) -> None:
    """`ablate compare` of two temps sweeps, warmup_teacher_temp_epochs 0/1/2 with 3 seeds each: the
    sweeps sat 0.12 of a category apart and their seeds were spread by their row number, so at 1 a
    seed of one sweep was drawn on a seed of the other. At every value now each sweep's seeds are a
    dot apart either side of its mean, and the two sweeps' seeds do not meet."""
    one = pd.DataFrame({"warmup_teacher_temp_epochs": [0, 0, 0, 1, 1, 1, 2, 2, 2], "repeat": [0, 1, 2] * 3,
                        "knn_top1": [40.0, 40.1, 39.9, 45.0, 45.1, 44.9, 42.0, 42.1, 41.9],
                        "collapsed": pd.array([False] * 9, dtype="boolean")})
    trials = pd.concat([one.assign(sweep="a"), one.assign(sweep="b", knn_top1=one["knn_top1"] + 0.05)])
    plots.effect_plot(trials, "warmup_teacher_temp_epochs", tmp_path / "c.png", hue="sweep", categorical=True)
    (fig,) = drawn
    dots, means = page_dots(fig), mean_page_x(fig)
    a, b = (means[dot_colour(bars.lines[0].get_color())] for bars in fig.axes[0].containers)
    dot = np.sqrt(22) * fig.dpi / 72
    for position in (0, 1, 2):
        left, right = ([x for v, x, _ in dots[colour] if round(v) == position] for colour in means)
        assert len(left) == len(right) == 3
        assert min(right) - max(left) > dot  # the sweeps' seeds apart
        for seeds, sweep in ((left, a), (right, b)):
            assert min(np.diff(sorted(seeds))) > 0.9 * dot
            assert around(seeds, sweep[position][1], fig)


def test_the_parallel_plots_labels_stand_clear_of_its_lines(drawn: list[Figure], tmp_path: Path) -> None:
    """Parallel coordinates of the main job: the lines that meet at an axis ran through its labels
    (0.1206, 1, 40.83), written on the bare plot. Each label is on white above the lines now: no
    line's colour shows inside a label, categorical or numeric."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    trials = pd.DataFrame({"warmup": [0, 1, 2, 1], "student_temp": [0.06, 0.12, 0.18, 0.12],
                           "knn_top1": [30.0, 40.0, 50.0, 40.0],  # two lines level through the middle
                           "collapsed": pd.array([True, False, False, False], dtype="boolean")})
    plots.parallel_plot(trials, ["warmup", "student_temp"], tmp_path / "p.png", categorical_params=["warmup"])
    canvas = FigureCanvasAgg(drawn[0])
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].astype(float) / 255
    height = pixels.shape[0]
    ax = drawn[0].axes[0]
    middle = [t for t in ax.texts if t.get_text() in ("1", "0.12", "40")]
    assert len(middle) == 3
    for label in middle:
        box = label.get_window_extent()
        inside = pixels[int(height - box.y1) + 1:int(height - box.y0) - 1, int(box.x0) + 1:int(box.x1) - 1]
        colour = float((inside.max(axis=-1) - inside.min(axis=-1)).max())  # grey and black text: 0
        assert inside.size and colour < 0.2, f"{label.get_text()}: a line's colour {colour:.2f} shows through"


def test_the_uniform_level_label_clears_an_early_end_mark(drawn: list[Figure], tmp_path: Path) -> None:
    """The main job's collapse plot: three trials collapsed to the uniform teacher by epoch 3 of 8, and
    the top half of their end cross, drawn on the ln K line under the label at the left, ran through
    '(uniform)'. The label stands above the cross now."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    ln_k = float(np.log(1024))
    trials, epochs = tables(epochs_done=8, collapsed=True)
    trials["collapsed"] = pd.array([True, False], dtype="boolean")  # b runs its 8 epochs
    epochs["teacher_entropy"] = [None, 6.8, ln_k, ln_k, *[None] * 5] + [None, *[6.0] * 8]
    epochs["ln_out_dim"] = ln_k
    plots.collapse_plot(epochs, trials, tmp_path / "collapse.png")
    fig = drawn[0]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax = fig.axes[0]
    (label,) = [t for t in ax.texts if t.get_text().startswith("ln(out_dim)")]
    box = label.get_window_extent(canvas.get_renderer())
    (mark,) = [line for line in ax.lines if line.get_marker() == "x"]  # where trial a stopped: epoch 3
    x, y = ax.transData.transform((3, ln_k))
    top = y + float(mark.get_markersize()) / 2 * fig.dpi / 72
    assert box.x0 < x < box.x1, "the case in question: the end mark under the label"
    assert box.y0 >= top, "the end mark's top half runs into the label"


def legend_texts(fig: Figure, axis: int = 0) -> list[str]:
    legend = fig.axes[axis].get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def test_a_legend_names_only_what_is_drawn(drawn: list[Figure], tmp_path: Path) -> None:
    """One repeat per value: the effect plot drew no interval, and its legend said 'mean ± 95% CI over
    repeats'. Nothing collapsed: the collapse diagnostics' legend showed a red 'collapsed (0)'."""
    single = pd.DataFrame({"point": [0, 1, 2], "out_dim": [256, 1024, 4096], "knn_top1": [40.0, 45.0, 43.0],
                           "collapsed": pd.array([False] * 3, dtype="boolean")})
    plots.effect_plot(single, "out_dim", tmp_path / "s.png", categorical=True)
    assert interval_bars(drawn[0]) == []
    assert legend_texts(drawn[0]) == ["mean (one trial per value: no interval)", "one trial"]
    partly = pd.concat([single, single.iloc[[0]].assign(knn_top1=42.0)])  # 256: two seeds, the rest one
    plots.effect_plot(partly, "out_dim", tmp_path / "p.png", categorical=True)
    assert len(interval_bars(drawn[1])) == 1
    assert "mean; ± 95% CI over repeats where a value has two or more" in legend_texts(drawn[1])
    trials, epochs = tables(epochs_done=2)
    plots.collapse_plot(epochs, trials, tmp_path / "c.png")
    assert legend_texts(drawn[2], axis=1) == ["trial"]
    plots.collapse_plot(epochs, trials.assign(collapsed=pd.array([True, False], dtype="boolean")),
                        tmp_path / "c1.png")
    assert legend_texts(drawn[3], axis=1) == ["trial", "collapsed (1)"]


def test_the_main_effects_bars_carry_their_interval_verdict_and_collapse(drawn: list[Figure],
                                                                         tmp_path: Path) -> None:
    """A bar per parameter, the largest on top; a whisker only where seeds gave an interval; the legend
    names the verdicts drawn and, where a value collapsed, the hatch and the other values' spread."""
    effects = pd.DataFrame({"param": ["teacher_temp", "out_dim", "center_momentum"],
                            "spread": [31.45, 0.67, 0.4], "half": [3.27, 0.9, float("nan")],
                            "kind": ["beyond", "within", "no repeats"], "failed": [True, False, False],
                            "working": [2.75, float("nan"), float("nan")]})
    assert plots.main_effects_plot(effects, tmp_path / "m.png") is not None
    ax = drawn[0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["center_momentum", "out_dim", "teacher_temp"]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0 and p.get_hatch() is None]
    assert sorted(round(b.get_width(), 2) for b in bars) == [0.4, 0.67, 31.45]
    [whiskers] = [c for c in ax.collections if isinstance(c, LineCollection)]  # none for center_momentum
    assert [round(float(s[1][0] - s[0][0]) / 2, 2) for s in whiskers.get_segments()] == [0.9, 3.27]
    assert legend_texts(drawn[0]) == ["beyond seed noise", "within seed noise", "no seed-noise verdict",
                                      "a value collapsed or diverged", "spread of the other values"]
    plots.main_effects_plot(effects.iloc[[1]], tmp_path / "w.png")  # nothing collapsed, one verdict
    assert legend_texts(drawn[1]) == ["within seed noise"]
    assert plots.main_effects_plot(effects.assign(spread=float("nan")), tmp_path / "n.png") is None


def test_main_effects_that_are_all_zero_get_an_axis_of_one_unit(drawn: list[Figure], tmp_path: Path) -> None:
    """A grid whose configurations all tie (every spread 0, or a mean's rounding noise) drew an x axis
    of 0 to 1.25e-12, its ticks read 0.0 ... 1.2 with '1e-12' under them: as if the effects had a
    size. The axis is one unit (points) wide, the bars at 0."""
    effects = pd.DataFrame({"param": ["global_crops_scale", "warmup_teacher_temp_epochs"],
                            "spread": [0.0, 1.4e-14], "half": [float("nan")] * 2, "kind": ["no repeats"] * 2,
                            "failed": [False, False], "working": [float("nan")] * 2})
    assert plots.main_effects_plot(effects, tmp_path / "m.png") is not None
    ax = drawn[0].axes[0]
    assert ax.get_xlim() == (0.0, 1.25)
    drawn[0].canvas.draw()
    assert ax.xaxis.get_offset_text().get_text() == ""


def test_every_trial_diverged_at_its_first_epoch_is_no_figure(drawn: list[Figure], tmp_path: Path) -> None:
    """Every trial's loss was NaN at epoch 1 (lr 1e6): epochs.parquet has no loss column and no kNN
    after epoch 0, and the report drew an empty Loss panel beside a kNN panel holding epoch 0 alone.
    The section now says why in words (reports/render.py ``add_curves``)."""
    from reports.document import Document
    from reports.render import add_curves

    trials, epochs = tables(epochs_done=1, status="diverged")
    epochs = epochs.drop(columns=["loss", "teacher_entropy", "kl_teacher_student"])
    epochs.loc[epochs["epoch"] == 1, ["knn_top1", "knn_evaluated"]] = [float("nan"), False]
    assert plots.learning_curves(epochs, trials, tmp_path / "curves.png") is None
    assert drawn == []
    doc = Document("t")
    add_curves(doc, trials, epochs, tmp_path)
    text = doc.markdown(tmp_path)
    assert "No trained epoch has a finite loss or a kNN top-1: the loss was NaN or inf" in text
    assert "No trial has finished a training epoch yet" not in text


def test_importance_bars_read_top_down_in_the_table_s_order(drawn: list[Figure], tmp_path: Path) -> None:
    """Each panel sorted its bars by its own evaluator and the table under them was alphabetical: three
    orders of one set of parameters. Now every panel and the table (render.add_importance) list them as
    ``by_importance`` does: fANOVA's largest first."""
    from reports.importance import by_importance

    importances = {"fANOVA": {"a_temp": 0.1, "b_temp": 0.6, "c_temp": 0.3},
                   "PED-ANOVA": {"a_temp": 0.5, "b_temp": 0.2, "c_temp": 0.3}}
    assert by_importance(importances) == ["b_temp", "c_temp", "a_temp"]
    plots.importance_plot(importances, tmp_path / "i.png")
    for ax in drawn[0].axes:  # barh draws bottom-up: the top bar is the last label
        assert [t.get_text() for t in ax.get_yticklabels()][::-1] == ["b_temp", "c_temp", "a_temp"]


def test_every_effect_plot_name_is_one_the_report_knows_as_its_own(tmp_path: Path) -> None:
    """remove_undrawn knows the effect plots by EFFECT_FILE, which restated the characters effect_file
    keeps (with '+' where a name may keep none): the plot of a parameter named '' (a trials.parquet from
    elsewhere), effect_.png, was left in plots/ when no longer drawn. Both now read EFFECT_CHARS."""
    from reports.plots import EFFECT_FILE, effect_file, remove_undrawn

    names = ["teacher_temp", "", ".", "..", "../x", "a b/c", "ünïcode", "x\ny", "-", "a.b"]
    files = [effect_file(tmp_path, n) for n in names]
    for name, file in zip(names, files, strict=True):
        assert file.parent == tmp_path and EFFECT_FILE.fullmatch(file.name), (name, file.name)
        file.write_bytes(b"png")
    other = tmp_path / "effect_ notes.png"  # not a name effect_file makes: not the report's
    other.write_bytes(b"mine")
    assert sorted(remove_undrawn(tmp_path, [files[0]])) == sorted(set(files[1:]))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([files[0].name, other.name])
