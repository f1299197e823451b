"""Figures written from the experiments behind leaderboard rows."""

import json

import pandas as pd
import pytest

from ntkbench.plots import write_plots
from ntkbench.report import leaderboard_frame

PNG = b"\x89PNG\r\n\x1a\n"


def test_scaling_figures_for_each_case_and_metric(tiny_run, tmp_path):
    rows = [*tiny_run.rows.values(), {"claim": "C1", "case": "zzz/mnist1d", "metric": "test_mse",
                                      "verdict": "error", "error": "UnknownNameError: ..."}]
    stale = tmp_path / "scaling-old-test_mse.png"
    stale.write_bytes(PNG)
    written = write_plots(leaderboard_frame(rows), tmp_path)
    assert sorted(p.name for p in written) == ["scaling-mlp_mnist1d-test_error.png",
                                               "scaling-mlp_mnist1d-test_mse.png"]
    assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 10_000 for p in written)
    assert not stale.exists()


def test_evolution_figure_from_checkpoint_records(tmp_path):
    steps = (0, 10, 50, 100)
    records = [{"seed": s, "step": t, "time": t / 1000, "epoch": t / 2, "angle_to": [abs(t - u) / 100 for u in steps],
                "cka_angle_to": [abs(t - u) / 200 for u in steps], "kernel_test_mse": 1 - t / 200,
                "kernel_test_error": 0.5 - t / 400} for s in (0, 1) for t in steps]
    source = tmp_path / "entk_evolution-0123456789abcdef0123.json"
    source.write_text(json.dumps({"spec": {"kind": "entk_evolution", "arch": "mlp", "dataset": "mnist1d", "n0": 64},
                                  "records": records}))
    frame = pd.DataFrame([{"claim": "C3", "case": "mlp/mnist1d", "metric": "travel_ahead_25", "verdict": "holds",
                           "source_paths": [str(source)]}])
    (written,) = write_plots(frame, tmp_path / "plots")
    assert written.name == "evolution-mlp-mnist1d-entk_evolution-0123456789abcdef0123.png"
    assert written.read_bytes().startswith(PNG)


def test_no_rows_no_figures(tmp_path):
    assert write_plots(leaderboard_frame([]), tmp_path) == []


def test_a_figures_exponent_is_the_rows(tiny_run):
    from ntkbench.plots import curve_fit

    row = tiny_run.rows["test_mse"]
    network = next(path for path in row["source_paths"] if "/nn-" in path)
    records = pd.DataFrame(json.loads(open(network).read())["records"])
    assert curve_fit(records, "test_mse")[0] == pytest.approx(row["alpha_a"], rel=1e-9)


SIZES = (128, 256, 512, 1024, 2048, 4096)


def seed_records(seeds=(0, 1, 2), metric="test_mse") -> pd.DataFrame:
    """A power law n^(−0.3) whose seeds differ by a factor, per (seed, n)."""
    return pd.DataFrame([{"seed": s, "n": n, metric: (1 + 0.1 * s) * 3 * n ** -0.3} for s in seeds for n in SIZES])


def drawn(curves, trivial=None, metric="test_mse"):
    """The Axes of the scaling figure of ``curves``, drawn (tick labels are set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ntkbench.plots import scaling_figure

    fig = scaling_figure("mlp/mnist1d", metric, curves, trivial)
    fig.canvas.draw()
    plt.close(fig)  # pyplot lets it go; its artists stay readable
    return fig.axes[0]


def x_extent(patch) -> tuple[float, float]:
    """The data x-range of a patch (axvspan's Rectangle or Polygon alike)."""
    xs = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 0]
    return float(xs.min()), float(xs.max())


def test_scaling_axis_labels_every_size_of_the_grid_as_a_plain_number():
    from ntkbench.plots import ScalingCurve

    ax = drawn([ScalingCurve("NN", seed_records())])
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(n) for n in SIZES]
    values = [float(t.get_text()) for t in ax.get_yticklabels()]
    low, high = ax.get_ylim()
    assert len(values) >= 3 and all(low <= v <= high for v in values)  # a range under a decade


@pytest.mark.parametrize("low, high, expected", [(0.37, 1.02, [0.4, 0.6, 0.8, 1.0]),
                                                 (0.08, 1.1, [0.1, 0.2, 0.5, 1.0]),
                                                 (0.0, 1.0, []), (2.0, 1.0, [])])
def test_log_axis_ticks_are_round_and_inside_the_range(low, high, expected):
    from ntkbench.plots import log_axis_ticks

    assert log_axis_ticks(low, high) == pytest.approx(expected)


def test_scaling_band_spans_the_seeds_at_every_size():
    from ntkbench.plots import ScalingCurve

    records = seed_records()
    ax = drawn([ScalingCurve("NN", records)])
    (band,) = ax.collections
    vertices = band.get_paths()[0].vertices
    spread = records.groupby("n")["test_mse"].agg(["min", "max"])
    assert set(vertices[:, 0]) == set(map(float, SIZES))
    assert sorted(set(vertices[:, 1].round(12))) == sorted(set(spread.to_numpy().ravel().round(12)))


def test_fitted_window_is_shaded_and_the_line_fitted_on_it_only():
    from ntkbench.plots import ScalingCurve, curve_fit

    bent = seed_records()
    bent.loc[bent["n"] < 512, "test_mse"] *= 2  # a knee: the window's exponent differs from the whole grid's
    ax = drawn([ScalingCurve("NN", bent, (512, 4096))])
    (span,) = [p for p in ax.patches if p.get_label().startswith("fitted window")]
    assert x_extent(span) == pytest.approx((512, 4096))
    assert span.get_label() == "fitted window 512–4096"
    (fit,) = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert list(fit.get_xdata()) == [512, 1024, 2048, 4096]
    alpha = curve_fit(bent, "test_mse", (512, 4096))[0]
    assert alpha == pytest.approx(0.3) and alpha != pytest.approx(curve_fit(bent, "test_mse")[0])
    assert f"NN  α={alpha:.2f}" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_trivial_level_is_a_dashed_horizontal_line():
    from ntkbench.plots import ScalingCurve

    ax = drawn([ScalingCurve("NN", seed_records())], trivial=0.9)
    (level,) = [line for line in ax.get_lines() if line.get_label().startswith("trivial predictor")]
    assert list(level.get_ydata()) == [0.9, 0.9] and level.get_linestyle() == "--"
    assert ax.get_ylim()[1] > 0.9  # in view above the curves


def test_without_window_or_trivial_level_none_is_drawn():
    from ntkbench.plots import ScalingCurve

    ax = drawn([ScalingCurve("NN", seed_records())])
    assert not ax.patches
    assert not [line for line in ax.get_lines() if line.get_label().startswith("trivial")]
    (fit,) = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert list(fit.get_xdata()) == list(SIZES)  # the whole grid


def test_write_plots_fits_each_curve_on_its_rows_window_with_the_rows_trivial_level(tiny_run, tmp_path, monkeypatch):
    from ntkbench import plots

    drawn_with = {}

    def spy(case, metric, curves, trivial=None):
        drawn_with[metric] = ({c.label.split(" ")[0]: c.window for c in curves}, trivial)
        return scaling_figure(case, metric, curves, trivial)

    scaling_figure = plots.scaling_figure
    monkeypatch.setattr(plots, "scaling_figure", spy)
    windowed = {**tiny_run.rows["test_mse"], "window_lo": 128, "window_hi": 256, "trivial": 0.75}
    bare = {k: v for k, v in tiny_run.rows["test_error"].items() if k not in ("window_lo", "window_hi", "trivial")}
    written = plots.write_plots(leaderboard_frame([windowed, bare]), tmp_path)
    assert len(written) == 2 and all(p.read_bytes().startswith(PNG) for p in written)
    windows, trivial = drawn_with["test_mse"]
    assert set(windows.values()) == {(128, 256)} and trivial == 0.75
    windows, trivial = drawn_with["test_error"]  # no window: the whole grid; the records' trivial level
    records = pd.DataFrame(json.loads(open(bare["source_paths"][0]).read())["records"])
    assert set(windows.values()) == {None} and trivial == pytest.approx(records["trivial_test_error"].mean())


def test_rows_find_their_scaling_and_evolution_figures(tmp_path):
    from ntkbench.plots import evolution_figure_name, figures_of_row, scaling_figure_name

    evolution = "/cache/entk_evolution-0123456789abcdef0123.json"
    figures = [tmp_path / scaling_figure_name("mlp/mnist1d", "test_mse"),
               tmp_path / scaling_figure_name("mlp/mnist1d", "test_error"),
               tmp_path / scaling_figure_name("cnn1d/mnist1d", "test_mse"),
               tmp_path / evolution_figure_name({"arch": "mlp", "dataset": "mnist1d"}, evolution)]
    row = {"family": "mlp/mnist1d", "metric": "test_mse", "source_paths": ["/cache/nn-0123.json"]}
    assert figures_of_row(row, figures) == [figures[0]]
    c3 = {"family": "mlp/mnist1d", "metric": "travel_ahead_25", "source_paths": [evolution]}
    assert figures_of_row(c3, figures) == [figures[3]]
    failed = {"family": "mlp/mnist1d", "metric": "test_mse", "source_paths": float("nan")}
    assert figures_of_row(failed, figures) == []
