"""Evolution claims: the eNTK keeps evolving through most of training (C3), measured against
a lazy run.

Each case's metric is a statistic of :mod:`ntkbench.travel`, computed per seed for the
case's run and for the run of a reference control (a lazy network, whose kernel is frozen
by design), paired by seed, with a t interval against the statistic's margin:

* ``late_travel_ratio`` (primary): the angle between the case's kernels at a quarter of its
  training and at its end over the angle between the lazy kernels at initialisation and at
  the end (net displacements: the path over the eighths is 2.8–3.5× longer at the small
  tier, mostly back and forth, for trained and lazy runs alike).
  The claim holds when it exceeds 10: after the first quarter the kernel still moves ten
  times as far as a lazy kernel does at all, the same factor by which the lazy control must
  be frozen relative to a trained network. A kernel that freezes early has a small late
  travel; a kernel that barely moves (near-lazy training) has a small one too.
* the shape statistics (the fraction of the run's own travel still ahead after 25% / 50% of
  training, the late over early angular speed, the CKA fraction) and the kernel-at-t loss
  drops: the case's minus the lazy run's. Relative to the run's own travel, they say when a
  kernel moves, not whether it moves more than a lazy one (a lazy kernel moves a little,
  at an even pace); they are secondary.

The reference control's own metric, ``travel_ratio``, is its kernel's total travel over that
of the run it calibrates (expected below 0.1).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ntkbench.claims import Claim, SpecBuilder, register_claim, scaling_verdict, with_ci
from ntkbench.fit import t_interval
from ntkbench.travel import STATISTICS, TooShortError, per_seed_statistics, statistic_window


#: ratio metrics: (statistic of the run, statistic of the run it is compared with)
RATIOS = {"travel_ratio": ("travel", "travel"), "late_travel_ratio": ("late_travel", "travel")}


@dataclasses.dataclass(frozen=True)
class EvolutionClaim(Claim):
    metrics: tuple[str, ...] = ("late_travel_ratio", *(s for s in STATISTICS if s not in ("travel", "late_travel")))
    # δ per statistic: ten times the lazy run's travel (the lazy control's factor), a tenth of
    # the run's travel (fractions, speed ratio), a 1% relative drop of the kernel's test
    # loss, a tenth of the calibrated run's travel
    margins: tuple[tuple[str, float], ...] = (
        ("late_travel_ratio", 10.0), ("travel_ahead_25", 0.1), ("travel_ahead_50", 0.1), ("velocity_ratio", 0.1),
        ("cka_travel_ahead_25", 0.1), ("kernel_improvement_mse", 0.01), ("kernel_improvement_error", 0.01),
        ("travel_ratio", 0.1))
    primary: str = "late_travel_ratio"
    reference: str = "C3:lazy"  # the control whose run is the frozen-kernel baseline
    kind: str = "entk_evolution"  # the experiment kind that follows the kernel along training

    def threshold(self, metric: str) -> float:
        return dict(self.margins)[metric]

    def tolerance(self, metric: str) -> float:
        """Half the statistic's threshold; a tenth of it for a ratio (a ratio of 10 that moves
        by 5 has moved)."""
        return self.threshold(metric) / (10 if metric in RATIOS else 2)

    def compared(self, case) -> str:
        """The setting of the run a case is compared with: the reference control's (a frozen
        kernel), or, for that control itself, the case's own setting without it ("")."""
        return "" if case.control == self.reference else self.reference

    def experiments(self, case, spec: SpecBuilder) -> list:
        return [spec(self.kind), spec(self.kind, control=self.compared(case))]

    def evaluate(self, case, tier, results: list, cache) -> dict:
        names = [f"{r.spec.arch} ({'lazy' if lazy else 'as trained'})"
                 for r, lazy in zip(results, (bool(case.control), bool(self.compared(case))))]
        try:
            statistics = [per_seed_statistics(r.records) for r in results]
        except TooShortError as exc:  # a tier without meaningful verdicts may train that briefly
            if tier.verdicts:
                raise
            from ntkbench.experiments import NotApplicableError

            raise NotApplicableError(f"{exc} (at the {tier.name} tier, which decides no verdicts)") from None
        return evaluate_evolution(self, case.metric, *statistics, names)


    def summaries(self, rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        """Every statistic of each case's run beside the reference run's, with their paired
        difference (or ratio) and the verdict (the numbers of the rows, read across)."""
        measured = rows[rows["alpha_a"].notna()] if "alpha_a" in rows else rows.iloc[:0]
        order = {metric: i for i, metric in enumerate(self.metrics)}
        table = [{"case": r["case"], "statistic": r["metric"], "run [CI]": with_ci(r["alpha_a"], r["alpha_a_lo"], r["alpha_a_hi"]),
                  "reference run [CI]": with_ci(r["alpha_b"], r["alpha_b_lo"], r["alpha_b_hi"]),
                  "difference or ratio [CI]": with_ci(r["gap"], r["gap_lo"], r["gap_hi"]), "δ": f"{r['margin']:g}",
                  "verdict": r["verdict"]}
                 for r in sorted(measured.to_dict("records"), key=lambda r: (r["case"], order.get(r["metric"], 99)))]
        title = f"{self.id}: each statistic of the run beside the {self.reference} run's (paired by seed)"
        return [(title, pd.DataFrame(table))] if table else []


def evaluate_evolution(claim: EvolutionClaim, metric: str, own: pd.DataFrame, other: pd.DataFrame,
                       names: tuple[str, str], level: float = 0.95) -> dict:
    """Verdict of one statistic from per-seed statistics (:func:`ntkbench.travel.per_seed_statistics`)
    of the case's run (``own``) and the run it is compared with (``other``), paired by seed:
    a ratio metric (:data:`RATIOS`) is a statistic of own over one of other, any other metric
    own − other."""
    seeds = own.index.intersection(other.index)
    if len(seeds) < 2:
        raise ValueError(f"{metric}: the runs share {len(seeds)} seeds; a t interval needs two")
    column, other_column = RATIOS.get(metric, (metric, metric))
    a, b = own.loc[seeds, column].to_numpy(float), other.loc[seeds, other_column].to_numpy(float)
    values = a / b if metric in RATIOS else a - b
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{metric} is undefined for these checkpoints (a loss or a travel of zero)")
    mean, low, high = t_interval(values, level)
    threshold = claim.threshold(metric)
    (alpha_a, *ci_a), (alpha_b, *ci_b) = t_interval(a, level), t_interval(b, level)
    window = statistic_window(column)
    return {
        "verdict": scaling_verdict((low, high), threshold),
        "expected": claim.expected, "margin": threshold, "tolerance": claim.tolerance(metric),
        "curve_a": names[0], "alpha_a": alpha_a, "alpha_a_lo": ci_a[0], "alpha_a_hi": ci_a[1],
        "curve_b": names[1], "alpha_b": alpha_b, "alpha_b_lo": ci_b[0], "alpha_b_hi": ci_b[1],
        "gap": mean, "gap_lo": low, "gap_hi": high, "window_lo": window[0], "window_hi": window[1],
        "method": "of training", "points": len(seeds), "seeds": len(seeds),
    }


register_claim(EvolutionClaim("C3", "the eNTK keeps evolving through most of training"))
