"""Benchmark cases: one claim × architecture × dataset × metric, run at a tier.

A case names the experiments its claim needs; the experiments come from the cache (so
cases sharing an experiment compute it once), and the claim's verdict is computed from
them. Every failure becomes a row with verdict "error" and a one-line message.
"""

from __future__ import annotations

import dataclasses
import itertools

from ntkbench.cache import ExperimentCache
from ntkbench.controls import CONTROLS
from ntkbench.convergence import check_trained
from ntkbench.claims import ERROR, EvolutionClaim, evaluate_evolution, evaluate_scaling, get_claim
from ntkbench.experiments import ExperimentSpec, NotApplicableError, check_applicable, get_kind
from ntkbench.fit import alternative_windows, paired_exponents, window_indices
from ntkbench.regression import relative_distance
from ntkbench.travel import TooShortError, per_seed_statistics
from ntkbench.registry import ARCHITECTURES, DATASETS
from ntkbench.tiers import Tier


@dataclasses.dataclass(frozen=True)
class Case:
    claim: str
    arch: str
    dataset: str
    metric: str
    variant: tuple[tuple[str, object], ...] = ()  # spec fields a swept claim sets, e.g. n0
    control: str = ""  # a key of CONTROLS, for a control case

    @property
    def variant_text(self) -> list[str]:
        return [",".join(v[1]) if k == "set" else f"{k}={v}" for k, v in self.variant]

    @property
    def id(self) -> str:
        control = [f"{self.control.split(':')[1]}-control"] if self.control else []
        return "-".join([*control, self.arch, self.dataset, self.metric, *self.variant_text])

    @property
    def label(self) -> str:
        control = [f"({self.control.split(':')[1]} control)"] if self.control else []
        return " ".join([f"{self.arch}/{self.dataset}", *self.variant_text, *control])

    @property
    def family(self) -> str:
        """The label without the pre-training size n0: C2's cases of every n0 form one
        family (one figure, one α_after(n0) trend)."""
        return dataclasses.replace(self, variant=tuple(v for v in self.variant if v[0] != "n0")).label


def control_cases() -> list[Case]:
    """Every control's cases (one per metric)."""
    return [Case(c.claim, c.arch, c.dataset, m, control=key)
            for key, c in CONTROLS.items() for m in (c.metrics or get_claim(c.claim).metrics)]


def cases_for(claim_id: str, archs=None, datasets=None, tier: Tier | None = None) -> list[Case]:
    """Every (architecture, dataset, metric[, swept value]) case of a claim; defaults: the
    registered architectures that take the dataset's kind of input (vectors, images), and
    the claim's datasets plus the tier's. Named architectures are paired with every
    dataset; unknown names still make cases: they fail when run, listing the known names."""
    claim = get_claim(claim_id)
    datasets = datasets or [*claim.datasets, *(tier.datasets if tier else ())]
    pairs = [(a, d) for a in archs for d in datasets] if archs else [
        (a, d) for d in datasets for a in ARCHITECTURES.names() if _same_inputs(a, d)]
    variants = [()]
    if claim.sweep is not None:
        field, tier_field = claim.sweep
        variants = [((field, value),) for value in getattr(tier, tier_field)] if tier else []
    return [Case(claim.id, a, d, m, v)
            for (a, d), m, v in itertools.product(pairs, claim.metrics, variants)
            if not v or v[0][0] != "set" or v[0][1][0] in ("*", a)]


def _same_inputs(arch: str, dataset: str) -> bool:
    return dataset not in DATASETS.names() or ARCHITECTURES.get(arch).input_kind == DATASETS.get(dataset).input_kind


def experiment_spec(kind: str, case: Case, tier: Tier, swept: bool = False) -> ExperimentSpec:
    """The experiment of ``kind`` a case needs; ``swept``: apply the case's variant."""
    experiment = get_kind(kind)
    control = CONTROLS[case.control] if case.control else None
    tier = control.tier(tier) if control else tier
    settings = dict(case.variant).get("set")
    tier = tier.with_overrides(list(settings[1])) if settings else tier
    return ExperimentSpec(
        kind=kind, arch=case.arch, dataset=case.dataset, n_grid=tier.n_grid, n_val=tier.n_val,
        n_test=tier.n_test, seeds=tier.seeds,
        arch_kwargs=tuple(sorted(tier.arch_kwargs.get(case.arch, {}).items())),
        data_kwargs=control.data_kwargs if control else (),
        train=tier.train if experiment.trains else None,
        entk_precision=tier.entk_precision if experiment.entk else ExperimentSpec.entk_precision,
        convention=tier.convention, n_pool=tier.pool_factor * max(tier.n_grid),
        **{"n0": getattr(tier, experiment.n0_from) if experiment.n0_from else None,
           **{k: v for k, v in case.variant if swept and k != "set"}})


def case_experiments(case: Case, tier: Tier) -> list[ExperimentSpec]:
    """The experiments a case reads, in the order it reads them (raises
    :class:`NotApplicableError` for a case that does not apply)."""
    claim = get_claim(case.claim)
    arch, dataset = ARCHITECTURES.get(case.arch), DATASETS.get(case.dataset)  # unknown names fail here
    if arch.input_kind != dataset.input_kind:
        raise NotApplicableError(f"{arch.name} takes {arch.input_kind} inputs, {dataset.name} has {dataset.input_kind}s")
    if isinstance(claim, EvolutionClaim):
        return [experiment_spec(claim.kind, case, tier), experiment_spec(claim.kind, compared_run(claim, case), tier)]
    for kind in (claim.a, claim.b):
        check_applicable(kind, case.arch)
    return [experiment_spec(claim.a, case, tier), experiment_spec(claim.b, case, tier, swept=True)]


def run_case(case: Case, tier: Tier, cache: ExperimentCache) -> dict:
    """Compute (or load) the case's experiments and evaluate its claim: one leaderboard row."""
    claim = get_claim(case.claim)
    specs = case_experiments(case, tier)
    loaded = [cache.get(spec) for spec in specs]
    for network in {spec.network() for spec in specs if spec.train is not None}:
        check_trained(cache.get(network))  # no verdict from a network that did not train
    if isinstance(claim, EvolutionClaim):
        names = [f"{spec.arch} ({'lazy' if c.control else 'as trained'})"
                 for spec, c in zip(specs, (case, compared_run(claim, case)))]
        try:
            row = evaluate_evolution(claim, case.metric, *(per_seed_statistics(r.records) for r in loaded), names)
        except TooShortError as exc:  # a tier without meaningful verdicts may train that briefly
            if tier.verdicts:
                raise
            raise NotApplicableError(f"{exc} (at the {tier.name} tier, which decides no verdicts)") from None
    else:
        a, b = loaded
        n_grid, loss_a = a.curve(case.metric)
        _, loss_b = b.curve(case.metric)
        window = claim.fit_window(dict(case.variant), tier)
        fit = paired_exponents(n_grid, loss_a, loss_b, claim.fit_method, window,
                               alternatives=alternative_windows(n_grid, window))
        names = tuple(get_kind(r.spec.kind).label.format(**r.spec.to_dict()) for r in loaded)
        row = {**evaluate_scaling(claim, fit, names), **sanity(a, b, case.metric),
               "function_distance": function_distance(cache, a, b, [n_grid[i] for i in window_indices(n_grid, fit.window)])}
    row = {**row, **base_row(case, tier), **_sources(loaded)}
    return {**row, **CONTROLS[case.control].decide(row)} if case.control else row


def compared_run(claim: EvolutionClaim, case: Case) -> Case:
    """The case whose run an evolution case is compared with: the reference control's run
    (a frozen kernel), or, for that control itself, the run as trained it calibrates."""
    if case.control == claim.reference:
        return dataclasses.replace(case, control="")
    control = CONTROLS[claim.reference]
    return Case(claim.id, control.arch, control.dataset, case.metric, control=claim.reference)


def function_distance(cache: ExperimentCache, a, b, sizes: list[int]) -> float | None:
    """max over ``sizes`` of the mean over seeds of ‖f_a − f_b‖² / ‖f_b‖² on the test points
    (None when a curve stored no predictions)."""
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


def _sources(results) -> dict:
    """Where the numbers came from: each experiment's label, file, compute time and whether
    this process computed it (``sources``), and the files alone (``source_paths``)."""
    results = list(results)
    return {"sources": [{"label": r.spec.label, "path": str(r.path), "elapsed_s": r.elapsed_s,
                         "computed": not r.from_cache} for r in results],
            "source_paths": [str(r.path) for r in results], "error": ""}


def base_row(case: Case, tier: Tier) -> dict:
    row = {"claim": case.claim, "case": case.label, "metric": case.metric,
           "primary": case.metric == get_claim(case.claim).primary, "tier": tier.name,
           "arch": case.arch, "dataset": case.dataset, "variant": " ".join(case.variant_text),
           "family": case.family, **{k: v for k, v in case.variant if k != "set"}}
    if case.control:
        row.update(claim=f"{case.claim} control", control=case.control,
                   expected=CONTROLS[case.control].expected)
    return row


def error_row(case: Case, tier: Tier, message: str, verdict: str = ERROR) -> dict:
    """A row without numbers: an error, or a case that is not applicable."""
    return {**base_row(case, tier), "verdict": verdict, "error": message}
