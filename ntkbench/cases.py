"""Benchmark cases: one claim × architecture × dataset × metric, run at a tier.

A case names the experiments its claim needs; the experiments come from the cache (so
cases sharing an experiment compute it once), and the claim's verdict is computed from
them. Every failure becomes a row with verdict "error" and a one-line message.
"""

from __future__ import annotations

import dataclasses
import itertools

from ntkbench.cache import ExperimentCache
from ntkbench.claims import ERROR, evaluate_scaling, get_claim
from ntkbench.experiments import ExperimentSpec
from ntkbench.fit import paired_exponents
from ntkbench.registry import ARCHITECTURES, DATASETS
from ntkbench.tiers import Tier


@dataclasses.dataclass(frozen=True)
class Case:
    claim: str
    arch: str
    dataset: str
    metric: str

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.dataset}-{self.metric}"


def cases_for(claim_id: str, archs=None, datasets=None) -> list[Case]:
    """Every (architecture, dataset, metric) case of a claim; defaults: all registered
    architectures and the claim's datasets. Unknown names still make cases: they fail
    when run, with an error that lists the known names."""
    claim = get_claim(claim_id)
    archs = archs or ARCHITECTURES.names()
    datasets = datasets or claim.datasets
    return [Case(claim.id, a, d, m) for a, d, m in itertools.product(archs, datasets, claim.metrics)]


def experiment_spec(kind: str, case: Case, tier: Tier) -> ExperimentSpec:
    return ExperimentSpec(
        kind=kind, arch=case.arch, dataset=case.dataset, n_grid=tier.n_grid, n_val=tier.n_val,
        n_test=tier.n_test, seeds=tier.seeds,
        arch_kwargs=tuple(sorted(tier.arch_kwargs.get(case.arch, {}).items())),
        train=tier.train if kind == "nn" else None)


def run_case(case: Case, tier: Tier, cache: ExperimentCache) -> dict:
    """Compute (or load) the case's experiments and evaluate its claim: one leaderboard row."""
    claim = get_claim(case.claim)
    ARCHITECTURES.get(case.arch), DATASETS.get(case.dataset)  # unknown names fail here
    results = {kind: cache.get(experiment_spec(kind, case, tier)) for kind in (claim.a, claim.b)}
    n_grid, loss_a = results[claim.a].curve(case.metric)
    _, loss_b = results[claim.b].curve(case.metric)
    fit = paired_exponents(n_grid, loss_a, loss_b, claim.fit_method, claim.window, tier.bootstrap_reps)
    sources = "; ".join(
        f"{r.spec.label} ({'cached' if r.from_cache else 'computed'}, {r.elapsed_s:.0f}s) {r.path}"
        for r in results.values())
    return {**base_row(case, tier), **evaluate_scaling(claim, fit), "sources": sources, "error": ""}


def base_row(case: Case, tier: Tier) -> dict:
    return {"claim": case.claim, "case": f"{case.arch}/{case.dataset}", "metric": case.metric,
            "tier": tier.name}


def error_row(case: Case, tier: Tier, message: str) -> dict:
    return {**base_row(case, tier), "verdict": ERROR, "error": message}
