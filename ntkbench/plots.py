"""Figures from the experiments behind the leaderboard rows (matplotlib, PNG).

* one scaling figure per case and metric: mean test loss against n on log–log axes for
  every curve the claims compared (NN, eNTK at init, NTK(∞), after kernels), each with its
  log–log least-squares line;
* one evolution figure per C3 experiment: kernel distances, velocity and the test loss of
  the kernel taken at each checkpoint, against epochs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ntkbench.fit import fit_loglog

LABELS = {"nn": "NN", "entk_init": "eNTK(init)", "ntk_inf": "NTK(∞)", "entk_after": "eNTK(after n0={n0})"}


def _load(path: str) -> tuple[dict, pd.DataFrame]:
    stored = json.loads(Path(path).read_text())
    return stored["spec"], pd.DataFrame(stored["records"])


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
            if Path(path).name.startswith("entk_evolution-"):
                evolution.add(path)
            elif row["metric"] in ("test_mse", "test_error"):
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

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for path in paths:
        spec, records = _load(path)
        curve = records.groupby("n")[metric].mean()
        n, loss = curve.index.to_numpy(float), curve.to_numpy(float)
        label = LABELS.get(spec["kind"], spec["kind"]).format(**spec)
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
    panels = [("distance_from_init", "S(K₀, K_t)"), ("distance_to_final", "S(K_t, K_T)"),
              ("velocity", "S(K_t, K_t+Δ)/Δ per epoch"), ("kernel_test_mse", "test MSE, kernel at t")]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    for ax, (column, title) in zip(axes, panels):
        for seed, run in records.sort_values("step").groupby("seed"):
            run = run[run["epoch"] > 0]
            ax.plot(run["epoch"], run[column].astype(float), "o-", label=f"seed {seed}")
        ax.set(xscale="log", xlabel="epoch", title=title)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"eNTK evolution: {spec['arch']}/{spec['dataset']}, n={spec['n0']}")
    fig.tight_layout()
    out = directory / f"evolution-{_slug(spec['arch'] + '-' + spec['dataset'])}-{Path(path).stem}.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
