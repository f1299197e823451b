"""Figures from the experiments behind the leaderboard rows (matplotlib, PNG).

* one scaling figure per case and metric: mean test loss against n on log–log axes for
  every curve the claims compared (NN, eNTK at init, NTK(∞), after kernels), each with its
  log–log least-squares line;
* one evolution figure per experiment along training: the kernel's angle from
  initialisation (plain and centred) and the test loss and error of the kernel taken at
  each checkpoint, against the fraction of training (learning-rate time).

Which figure an experiment gets is its kind's ``figure``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ntkbench.fit import fit_loglog

def _load(path: str) -> tuple[dict, pd.DataFrame]:
    stored = json.loads(Path(path).read_text())
    return stored["spec"], pd.DataFrame(stored["records"])


def _figure_kind(path: str) -> str:
    """How the experiment stored at ``path`` is drawn (its kind's ``figure``)."""
    from ntkbench.experiments import get_kind

    return get_kind(_load(path)[0]["kind"]).figure


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9=.-]+", "_", text).strip("_")


def write_plots(frame: pd.DataFrame, directory: Path) -> list[Path]:
    """Write every figure the rows of ``frame`` support into ``directory``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    if frame.empty or "source_paths" not in frame:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    for stale in [*directory.glob("scaling-*.png"), *directory.glob("evolution-*.png")]:
        stale.unlink()  # figures of an earlier run
    sources: dict[tuple[str, str], set[str]] = {}
    evolution: set[str] = set()
    for row in frame.dropna(subset=["source_paths"]).to_dict("records"):
        for path in row["source_paths"]:
            figure = _figure_kind(path)
            if figure == "evolution":
                evolution.add(path)
            elif figure == "scaling" and row["metric"] in ("test_mse", "test_error"):
                sources.setdefault((row["family"], row["metric"]), set()).add(path)
    written = [_scaling_figure(case, metric, sorted(paths), directory)
               for (case, metric), paths in sorted(sources.items())]
    written += [_evolution_figure(path, directory) for path in sorted(evolution)]
    return written


def curve_fit(records: pd.DataFrame, metric: str) -> tuple[float, float]:
    """(α, log a) of a curve as the rows fit it on the whole grid: per seed, then the mean."""
    seeds = records.sort_values("n").groupby("seed")
    alpha, intercept = np.mean([fit_loglog(g["n"], g[metric]) for _, g in seeds], axis=0)
    return float(alpha), float(intercept)


def _scaling_figure(case: str, metric: str, paths: list[str], directory: Path) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from ntkbench.experiments import get_kind

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for path in paths:
        spec, records = _load(path)
        curve = records.groupby("n")[metric].mean()
        n, loss = curve.index.to_numpy(float), curve.to_numpy(float)
        label = get_kind(spec["kind"]).label.format(**spec)
        if np.all(records[metric] > 0):
            alpha, intercept = curve_fit(records, metric)
            label += f"  α={alpha:.2f}"
            line = ax.plot(n, loss, "o", label=label)[0]
            ax.plot(n, np.exp(intercept) * n ** (-alpha), "-", color=line.get_color(), alpha=0.6)
        else:
            ax.plot(n, loss, "o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="training samples n", ylabel=f"{metric} (mean over seeds)",
           title=f"{case}: {metric}")
    ax.xaxis.set_minor_formatter(NullFormatter())  # crowded labels on short log ranges
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = directory / f"scaling-{_slug(case)}-{metric}.png"
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
    out = directory / f"evolution-{_slug(spec['arch'] + '-' + spec['dataset'])}-{Path(path).stem}.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
