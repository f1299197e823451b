"""Scaling claims: curve ``a`` (an experiment kind, e.g. the trained network) has a better
data-scaling exponent than curve ``b`` (e.g. its eNTK at initialisation).

Both curves are fitted per seed over a window fixed in advance, and the claim holds when the
lower end of the 95% t interval of the paired per-seed gaps α_a − α_b exceeds the claim's
margin δ. When the whole interval lies below δ the claim does not hold; otherwise the
verdict is inconclusive.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ntkbench.claims import Claim, SpecBuilder, register_claim, scaling_verdict, with_ci
from ntkbench.fit import PairedFit, alternative_windows, paired_exponents, window_indices


@dataclasses.dataclass(frozen=True)
class ScalingClaim(Claim):
    a: str = "nn"  # experiment kind of the curve expected to scale better
    b: str = "entk_init"  # experiment kind it is compared against
    margin: float = 0.05  # δ
    fit_method: str = "loglog"
    window: tuple[int, int] | None = None  # (n_min, n_max); None: the tier's fit window
    # largest change of the gap or either exponent that still matches a reference row
    drift_tolerance: float = 0.02
    fit_from_sweep: bool = False  # fit only the sizes at or above the swept value (C2: n ≥ n0)
    # below the leaderboard: α_b against the swept value, per family (reported, not a verdict)
    trend: bool = False

    def fit_window(self, variant: dict, tier) -> tuple[int, int] | None:
        """The window fixed for a case before any loss is seen: the claim's; from the swept
        value to the largest size (``fit_from_sweep``); else the tier's (None: whole grid)."""
        if self.window is not None:
            return self.window
        if self.fit_from_sweep:
            return int(variant[self.sweep[0]]), max(tier.n_grid)
        return tier.fit_window

    def threshold(self, metric: str) -> float:
        return self.margin

    def tolerance(self, metric: str) -> float:
        return self.drift_tolerance

    def experiments(self, case, spec: SpecBuilder) -> list:
        from ntkbench.experiments import check_applicable

        for kind in (self.a, self.b):
            check_applicable(kind, case.arch)
        return [spec(self.a), spec(self.b, swept=True)]

    def evaluate(self, case, tier, results: list, cache) -> dict:
        from ntkbench.experiments import get_kind

        a, b = results
        n_grid, loss_a = a.curve(case.metric)
        _, loss_b = b.curve(case.metric)
        window = self.fit_window(dict(case.variant), tier)
        fit = paired_exponents(n_grid, loss_a, loss_b, self.fit_method, window,
                               alternatives=alternative_windows(n_grid, window))
        names = tuple(get_kind(r.spec.kind).label.format(**r.spec.to_dict()) for r in results)
        sizes = [n_grid[i] for i in window_indices(n_grid, fit.window)]
        return {**evaluate_scaling(self, fit, names), **sanity(a, b, case.metric),
                "function_distance": function_distance(cache, a, b, sizes)}

    def summaries(self, rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        if not self.trend or self.sweep is None:
            return []
        table = sweep_trend(rows, self.sweep[0])
        title = (f"{self.id} secondary finding (reported, not required): α_b, the exponent of curve "
                 f"{self.b}, by {self.sweep[0]}")
        return [(title, table)] if not table.empty else []


def evaluate_scaling(claim: ScalingClaim, fit: PairedFit, names: tuple[str, str] | None = None) -> dict:
    """The verdict and every number behind it, as one flat leaderboard row fragment;
    ``names``: of the two curves (default: their experiment kinds)."""
    if names is None:
        from ntkbench.experiments import KINDS  # jax: only once there are fits to evaluate

        names = tuple(KINDS[k].label.format(n0="n0") if k in KINDS else k for k in (claim.a, claim.b))
    return {
        "verdict": scaling_verdict(fit.gap_ci, claim.margin),
        "expected": claim.expected,
        "margin": claim.margin, "tolerance": claim.drift_tolerance,
        "curve_a": names[0], "curve_b": names[1],
        "alpha_a": fit.alpha_a, "alpha_a_lo": fit.alpha_a_ci[0], "alpha_a_hi": fit.alpha_a_ci[1],
        "alpha_b": fit.alpha_b, "alpha_b_lo": fit.alpha_b_ci[0], "alpha_b_hi": fit.alpha_b_ci[1],
        "gap": fit.gap, "gap_lo": fit.gap_ci[0], "gap_hi": fit.gap_ci[1],
        "window_lo": fit.window[0], "window_hi": fit.window[1],
        "method": fit.method, "points": fit.points, "seeds": fit.seeds,
        **{key: value for i, ((lo, hi), gap) in enumerate(fit.alternatives, 1)
           for key, value in ((f"gap_alt{i}", gap), (f"gap_alt{i}_window", f"{lo}–{hi}"))},
        "slopes_a": " ".join(f"{s:.3f}" for s in fit.slopes_a), "slopes_b": " ".join(f"{s:.3f}" for s in fit.slopes_b),
    }


def function_distance(cache, a, b, sizes: list[int]) -> float | None:
    """max over ``sizes`` of the mean over seeds of ‖f_a − f_b‖² / ‖f_b‖² on the test points
    (None when a curve stored no predictions)."""
    from ntkbench.regression import relative_distance

    worst = 0.0
    for n in sizes:
        pairs = [(cache.load_predictions(a.spec, seed, n), cache.load_predictions(b.spec, seed, n)) for seed in a.spec.seeds]
        if any(p is None for pair in pairs for p in pair):
            return None
        worst = max(worst, float(sum(relative_distance(pa, pb) for pa, pb in pairs) / len(pairs)))
    return worst


def sanity(a, b, metric: str) -> dict:
    """The trivial predictor's test loss, the first n at which each curve's mean beats it
    (None: never), and how many kernel fits chose a ridge at an edge of the grid."""
    trivial = float(a.records[f"trivial_{metric}"].mean())
    row = {"trivial": trivial}
    for name, result in (("a", a), ("b", b)):
        n_grid, losses = result.curve(metric)
        row[f"beats_trivial_{name}"] = next((n for n, loss in zip(n_grid, losses.mean(axis=0)) if loss < trivial), None)
    edges = [r for r in (a, b) if "ridge_at_edge" in r.records]
    row["ridge_at_edge"] = int(sum(r.records["ridge_at_edge"].sum() for r in edges))
    return row


def sweep_trend(rows: pd.DataFrame, field: str) -> pd.DataFrame:
    """Per family and metric: α_b with its CI in increasing ``field``, and whether the point
    estimates grow with it ("grows", "falls", "mixed"; "one value" when there is no trend)."""
    if field not in rows or "alpha_b" not in rows:
        return pd.DataFrame()
    swept = rows[rows[field].notna() & rows["alpha_b"].notna()]
    table = []
    for (family, metric), group in swept.groupby(["family", "metric"], sort=True):
        group = group.sort_values(field)
        steps = np.diff(group["alpha_b"].to_numpy(float))
        trend = ("one value" if steps.size == 0 else "grows" if np.all(steps > 0)
                 else "falls" if np.all(steps < 0) else "mixed")
        table.append({"case": family, "metric": metric, "trend": trend,
                      f"α_b by {field} [CI]": "; ".join(
                          f"{value:.0f}: {with_ci(r['alpha_b'], r['alpha_b_lo'], r['alpha_b_hi'])}"
                          for value, r in zip(group[field], group.to_dict("records")))})
    return pd.DataFrame(table)


register_claim(ScalingClaim(
    "C1", "trained network scales better than its eNTK at initialisation", a="nn", b="entk_init"))
register_claim(ScalingClaim(
    "C1'", "trained network scales better than its infinite-width NTK", a="nn", b="ntk_inf"))
register_claim(ScalingClaim(
    "C1b", "C1 holds across learning rate, batch size, optimizer and width", a="nn", b="entk_init",
    sweep=("set", "robustness")))
register_claim(ScalingClaim(
    "C2", "an eNTK pre-trained on n0 samples still scales worse than the network",
    a="nn", b="entk_after", sweep=("n0", "after_n0"), fit_from_sweep=True, trend=True))
