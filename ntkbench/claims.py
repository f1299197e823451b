"""Claims as open objects: what a claim is, the registry, and the verdict rule they share.

A claim owns its cases (its metrics, datasets and sweep), names the experiments a case
needs, turns their results into a leaderboard row (its verdict and every number behind it)
and may add summaries of its own below the leaderboard. The built-in claims
(:mod:`ntkbench.scaling_claims`: C1, C1', C1b, C2; :mod:`ntkbench.evolution_claims`: C3) are
instances of these objects; a user registers another with :func:`register_claim` from a
``conftest.py`` or a plugin module, the same way as an architecture.

This module stays free of jax: reference tables are validated against the registry before
any case runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pandas as pd

HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
ERROR, NOT_APPLICABLE, NOT_COMPUTED = "error", "not applicable", "not computed"
METRICS = ("test_mse", "test_error")

#: ``spec(kind, swept=False, control=None)`` → the ExperimentSpec of ``kind`` for a case:
#: with its swept value applied (``swept``), or under a control's setting (``control``: a key
#: of ntkbench.controls.CONTROLS, or "" for the case's setting without its control)
SpecBuilder = Callable[..., object]


@dataclasses.dataclass(frozen=True)
class Claim:
    """What every claim declares. Subclasses implement :meth:`experiments` and :meth:`evaluate`."""

    id: str
    title: str
    metrics: tuple[str, ...] = METRICS
    # the metric whose rows the verdict counts rest on; the others are reported as secondary
    primary: str = "test_mse"
    expected: str = HOLDS  # what the paper reports
    datasets: tuple[str, ...] = ("mnist1d",)  # default datasets of its cases
    # (spec field, tier field): one case per value of the tier field; the field "set" takes
    # (architecture, overrides) pairs applied to the whole tier instead of a spec field
    sweep: tuple[str, str] | None = None

    def variants(self, tier) -> list[tuple[tuple[str, object], ...]]:
        """The swept settings of its cases at ``tier`` (one empty variant without a sweep)."""
        if self.sweep is None:
            return [()]
        field, tier_field = self.sweep
        return [((field, value),) for value in getattr(tier, tier_field)] if tier is not None else []

    def experiments(self, case, spec: SpecBuilder) -> list:
        """The experiments ``case`` reads, in the order :meth:`evaluate` gets their results
        (raise ntkbench.experiments.NotApplicableError for a case that cannot run)."""
        raise NotImplementedError

    def evaluate(self, case, tier, results: list, cache) -> dict:
        """The verdict and the numbers behind it, from the loaded ``results`` of
        :meth:`experiments` (``cache``: for stored predictions)."""
        raise NotImplementedError

    def threshold(self, metric: str) -> float:
        """δ: what the statistic must exceed for the claim to hold."""
        raise NotImplementedError

    def tolerance(self, metric: str) -> float:
        """Largest change of a number that still matches a reference row."""
        raise NotImplementedError

    def summaries(self, rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        """Extra tables (title, table) shown below the leaderboard, from this claim's rows."""
        return []


CLAIMS: dict[str, Claim] = {}


def register_claim(claim: Claim) -> Claim:
    """Make a claim known to the plugin, the references and the reports."""
    CLAIMS[claim.id] = claim
    return claim


def get_claim(claim_id: str) -> Claim:
    if claim_id not in CLAIMS:
        raise ValueError(f"unknown claim {claim_id!r}; known: {', '.join(sorted(CLAIMS))}")
    return CLAIMS[claim_id]


def scaling_verdict(ci: tuple[float, float], margin: float) -> str:
    """holds: CI above δ; does not hold: CI below δ; inconclusive: CI straddles δ.
    (Used for every claim: the CI of the claim's statistic against its threshold.)"""
    low, high = ci
    if low > margin:
        return HOLDS
    if high < margin:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def with_ci(value, low, high) -> str:
    """A number with its interval, in scientific notation when any part is below 0.01."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    small = any(0 < abs(v) < 0.01 for v in (value, low, high))
    fmt = ".2e" if small else ".3f"
    return f"{value:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


import ntkbench.scaling_claims  # noqa: E402,F401  (registers C1, C1', C1b, C2)
import ntkbench.evolution_claims  # noqa: E402,F401  (registers C3)
