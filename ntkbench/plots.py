"""Figures from the experiments behind the leaderboard rows (matplotlib, PNG).

* one scaling figure per case and metric: for every curve the claims compared (NN, eNTK
  at init, NTK(∞), after kernels) the mean test loss against n on log–log axes, the spread
  over seeds (a min–max band), and the log–log least-squares line over the window its rows
  fitted (shaded), with the trivial predictor's level (dashed) and the sample sizes as
  plain-number ticks;
* one evolution figure per experiment along training: the kernel's angle from
  initialisation (plain and centred) and the test loss and error of the kernel taken at
  each checkpoint, against the fraction of training (learning-rate time).

Which figure an experiment gets is its kind's ``figure``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ntkbench.fit import fit_loglog

SCALING_METRICS = ("test_mse", "test_error")
MAX_X_LABELS = 8  # sample sizes labelled on a scaling figure's axis


def _load(path: str) -> tuple[dict, pd.DataFrame]:
    stored = json.loads(Path(path).read_text())
    return stored["spec"], pd.DataFrame(stored["records"])


def _figure_kind(path: str) -> str:
    """How the experiment stored at ``path`` is drawn (its kind's ``figure``)."""
    from ntkbench.experiments import get_kind

    return get_kind(_load(path)[0]["kind"]).figure


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9=.-]+", "_", text).strip("_")


def scaling_figure_name(case: str, metric: str) -> str:
    """The file name of the scaling figure of a case (a row's ``family``) and metric."""
    return f"scaling-{_slug(case)}-{metric}.png"


def evolution_figure_name(spec: dict, path: str) -> str:
    """The file name of the evolution figure of the experiment stored at ``path``."""
    return f"evolution-{_slug(spec['arch'] + '-' + spec['dataset'])}-{Path(path).stem}.png"


def figures_of_row(row: dict, figures) -> list[Path]:
    """The figures among ``figures`` that show ``row``'s experiments: its case's scaling
    figure of its metric and the evolution figure of each experiment it cites (none for a
    row that cites no experiment, e.g. an error)."""
    paths = row.get("source_paths")
    stems = [Path(p).stem for p in paths] if isinstance(paths, list | tuple) else []
    family = row.get("family")
    scaling = scaling_figure_name(family, row.get("metric")) if stems and isinstance(family, str) else None
    return [Path(f) for f in figures
            if Path(f).name == scaling or (Path(f).name.startswith("evolution-")
                                            and any(Path(f).name.endswith(f"-{stem}.png") for stem in stems))]


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value)


def row_window(row: dict) -> tuple[int, int] | None:
    """The (n_min, n_max) a row's exponents were fitted on; None when it has none."""
    bounds = (row.get("window_lo"), row.get("window_hi"))
    return (int(bounds[0]), int(bounds[1])) if all(_number(v) for v in bounds) else None


def _in_window(records: pd.DataFrame, window: tuple[int, int] | None) -> pd.DataFrame:
    return records if window is None else records[records["n"].between(*window)]


@dataclasses.dataclass(frozen=True)
class ScalingCurve:
    """One experiment's curve on a scaling figure: its legend label, its per-(seed, n)
    records and the window its line is fitted on (None: the whole grid)."""

    label: str
    records: pd.DataFrame
    window: tuple[int, int] | None = None


def write_plots(frame: pd.DataFrame, directory: Path) -> list[Path]:
    """Write every figure the rows of ``frame`` support into ``directory``; their paths.

    A scaling figure's curve is fitted on the window of the first row (in leaderboard
    order) that cites it, so its α is that row's; its trivial level is the rows' ``trivial``
    (else the mean of the records' ``trivial_<metric>``)."""
    import matplotlib

    matplotlib.use("Agg")
    if frame.empty or "source_paths" not in frame:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    for stale in [*directory.glob("scaling-*.png"), *directory.glob("evolution-*.png")]:
        stale.unlink()  # figures of an earlier run
    windows: dict[tuple[str, str], dict[str, tuple[int, int] | None]] = {}  # per figure: path → window
    trivial: dict[tuple[str, str], float] = {}
    evolution: set[str] = set()
    for row in frame.dropna(subset=["source_paths"]).to_dict("records"):
        for path in row["source_paths"]:
            figure = _figure_kind(path)
            if figure == "evolution":
                evolution.add(path)
            elif figure == "scaling" and row["metric"] in SCALING_METRICS:
                key = (row["family"], row["metric"])
                windows.setdefault(key, {}).setdefault(path, row_window(row))
                if _number(row.get("trivial")):
                    trivial.setdefault(key, float(row["trivial"]))
    written = [_scaling_figure(case, metric, windows[case, metric], trivial.get((case, metric)), directory)
               for case, metric in sorted(windows)]
    written += [_evolution_figure(path, directory) for path in sorted(evolution)]
    return written


def curve_fit(records: pd.DataFrame, metric: str, window: tuple[int, int] | None = None) -> tuple[float, float]:
    """(α, log a) of a curve as the rows fit it: per seed over ``window`` (None: the whole
    grid), then the mean."""
    seeds = _in_window(records, window).sort_values("n").groupby("seed")
    alpha, intercept = np.mean([fit_loglog(g["n"], g[metric]) for _, g in seeds], axis=0)
    return float(alpha), float(intercept)


def draw_scaling(ax, curves: list[ScalingCurve], metric: str, trivial: float | None = None) -> None:
    """Draw ``curves`` on ``ax``: per curve the mean over seeds against n (points), the
    min–max band over seeds and the fitted line over its window; each distinct window
    shaded; the trivial predictor's level as a dashed line (when given)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    for curve in curves:
        spread = curve.records.groupby("n")[metric].agg(["mean", "min", "max"])
        n = spread.index.to_numpy(float)
        label, line = curve.label, None
        fitted = _in_window(curve.records, curve.window)
        if fitted["n"].nunique() >= 2 and np.all(fitted[metric] > 0):
            alpha, intercept = curve_fit(fitted, metric)
            label += f"  α={alpha:.2f}"
            sizes = np.unique(fitted["n"].to_numpy(float))
            line = ax.plot(sizes, np.exp(intercept) * sizes ** (-alpha), "-", alpha=0.7)[0]
        points = ax.plot(n, spread["mean"], "o", label=label, color=line.get_color() if line else None)[0]
        ax.fill_between(n, spread["min"], spread["max"], color=points.get_color(), alpha=0.2, linewidth=0)
    for lo, hi in sorted({c.window for c in curves if c.window is not None}):
        ax.axvspan(lo, hi, facecolor=(0.5, 0.5, 0.5, 0.12), edgecolor="0.4", linestyle=":", linewidth=1, zorder=0,
                   label=f"fitted window {lo}–{hi}")
    if trivial is not None:
        ax.axhline(trivial, color="0.3", linestyle="--", linewidth=1, label=f"trivial predictor {trivial:.3g}")
    ax.set(xscale="log", yscale="log", xlabel="training samples n",
           ylabel=f"{metric}: mean over seeds (band: min–max)")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    sizes = sorted({int(n) for curve in curves for n in curve.records["n"]})
    ax.xaxis.set_major_locator(FixedLocator(sizes[::math.ceil(len(sizes) / MAX_X_LABELS)] if sizes else []))
    if ticks := log_axis_ticks(*ax.get_ylim()):
        ax.yaxis.set_major_locator(FixedLocator(ticks))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_locator(NullLocator())
    ax.grid(True, which="major", alpha=0.3)


def log_axis_ticks(low: float, high: float) -> list[float]:
    """Round ticks inside [low, high] for a log axis: 1, 2, 5 per decade over a decade or
    more, else a few evenly spaced values (so a short range still shows several)."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    if low <= 0 or high <= low:
        return []
    if high / low >= 10:
        ticks = LogLocator(base=10, subs=(1.0, 2.0, 5.0)).tick_values(low, high)
    else:
        ticks = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    return [float(t) for t in ticks if low <= t <= high]


def scaling_figure(case: str, metric: str, curves: list[ScalingCurve], trivial: float | None = None):
    """The scaling figure of a case and metric, as a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    draw_scaling(ax, curves, metric, trivial)
    ax.set_title(f"{case}: {metric}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _scaling_figure(case: str, metric: str, windows: dict[str, tuple[int, int] | None], trivial: float | None,
                    directory: Path) -> Path:
    import matplotlib.pyplot as plt

    from ntkbench.experiments import get_kind

    curves = []
    for path, window in sorted(windows.items()):
        spec, records = _load(path)
        curves.append(ScalingCurve(get_kind(spec["kind"]).label.format(**spec), records, window))
        if trivial is None and f"trivial_{metric}" in records:
            trivial = float(records[f"trivial_{metric}"].mean())
    fig = scaling_figure(case, metric, curves, trivial)
    path = directory / scaling_figure_name(case, metric)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _evolution_figure(path: str, directory: Path) -> Path:
    import matplotlib.pyplot as plt

    spec, records = _load(path)
    records["angle_from_init"] = [angles[0] for angles in records["angle_to"]]
    records["cka_angle_from_init"] = [angles[0] for angles in records["cka_angle_to"]]
    panels = [("angle_from_init", "angle(K₀, K_t) (rad)"), ("cka_angle_from_init", "centred angle (CKA)"),
              ("kernel_test_mse", "test MSE, kernel at t"), ("kernel_test_error", "test error, kernel at t")]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    for ax, (column, title) in zip(axes, panels):
        for seed, run in records.sort_values("step").groupby("seed"):
            shown = run[run[column].notna()]  # kernel regression runs at the even checkpoints only
            ax.plot(shown["time"] / run["time"].max(), shown[column].astype(float), "o-", label=f"seed {seed}")
        ax.set(xlabel="fraction of training (learning-rate time)", title=title)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"eNTK evolution: {spec['arch']}/{spec['dataset']}, n={spec['n0']}")
    fig.tight_layout()
    out = directory / evolution_figure_name(spec, path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
