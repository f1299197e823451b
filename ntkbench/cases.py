"""Benchmark cases: one claim × architecture × dataset × metric, run at a tier.

A case names the experiments its claim needs; the experiments come from the cache (so
cases sharing an experiment compute it once), and the claim's verdict is computed from
them. Every failure becomes a row with verdict "error" and a one-line message.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools

from ntkbench.cache import ExperimentCache
from ntkbench.controls import CONTROLS
from ntkbench.convergence import check_trained
from ntkbench.claims import CLAIMS, ERROR, get_claim
from ntkbench.experiments import ExperimentSpec, NotApplicableError, get_kind
from ntkbench.scaling_claims import function_distance
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
        """The label without a swept spec field (such as C2's pre-training size n0): the cases
        of every value share curve a and form one family (one figure, one trend). Cases
        swept over whole settings ("set") stay apart: each has its own curves."""
        return dataclasses.replace(self, variant=tuple(v for v in self.variant if v[0] == "set")).label


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
    variants = claim.variants(tier)
    return [Case(claim.id, a, d, m, v)
            for (a, d), m, v in itertools.product(pairs, claim.metrics, variants)
            if not v or v[0][0] != "set" or v[0][1][0] in ("*", a)]


def metrics_apart(cases: list[Case]) -> list[Case]:
    """The cases reordered: every case's first metric, then every case's second, and so on
    (stable otherwise). A case's metrics read the same experiments, so under pytest-xdist two
    workers that take the next tests wait less often on each other's experiment locks (cases
    of other metrics may still share a network); the later metrics load what the first one
    computed."""
    counts: collections.Counter = collections.Counter()
    ranks = []
    for case in cases:
        metricless = dataclasses.replace(case, metric="")
        ranks.append(counts[metricless])
        counts[metricless] += 1
    return [cases[i] for i in sorted(range(len(cases)), key=ranks.__getitem__)]


def defined_case_keys(tiers: list[Tier]) -> set[tuple[str, str, str]]:
    """(claim, case, metric) of every case the registered claims and controls define at any
    of ``tiers``: what a reference row may belong to."""
    keys = set()
    for tier in tiers:
        cases = [case for claim in CLAIMS for case in cases_for(claim, tier=tier)] + control_cases()
        keys.update((row["claim"], row["case"], row["metric"]) for row in (base_row(case, tier) for case in cases))
    return keys


def _same_inputs(arch: str, dataset: str) -> bool:
    return dataset not in DATASETS.names() or ARCHITECTURES.get(arch).input_kind == DATASETS.get(dataset).input_kind


def experiment_spec(kind: str, case: Case, tier: Tier, swept: bool = False) -> ExperimentSpec:
    """The experiment of ``kind`` a case needs; ``swept``: apply the case's variant."""
    experiment = get_kind(kind)
    if (case.arch, kind) in tier.deferred:
        raise NotApplicableError(f"{experiment.label} of {case.arch} is not run at the {tier.name} tier, for its cost "
                                 f"(--ntkbench-set \"deferred=()\" runs it)")
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
    """Every experiment a case reads: its claim's, then its control's agreement experiment,
    if any (raises :class:`NotApplicableError` for a case that does not apply)."""
    specs, agreement = _claim_experiments(case, tier)
    return specs + ([agreement] if agreement is not None else [])


def _claim_experiments(case: Case, tier: Tier) -> tuple[list[ExperimentSpec], ExperimentSpec | None]:
    """The experiments the case's claim reads, in its order, and the experiment its control
    compares curve a with in function space (None: no such check)."""
    claim = get_claim(case.claim)
    arch, dataset = ARCHITECTURES.get(case.arch), DATASETS.get(case.dataset)  # unknown names fail here
    if arch.input_kind != dataset.input_kind:
        raise NotApplicableError(f"{arch.name} takes {arch.input_kind} inputs, {dataset.name} has {dataset.input_kind}s")

    def spec(kind: str, swept: bool = False, control: str | None = None) -> ExperimentSpec:
        return experiment_spec(kind, case if control is None else under_control(case, control), tier, swept)

    agreement = CONTROLS[case.control].agreement if case.control else None
    return claim.experiments(case, spec), spec(agreement[0]) if agreement else None


def under_control(case: Case, control: str) -> Case:
    """The case's claim and metric in a control's setting (its architecture and dataset), or
    in the case's own setting without its control (``control`` "")."""
    if not control:
        return dataclasses.replace(case, control="")
    setting = CONTROLS[control]
    return Case(case.claim, setting.arch, setting.dataset, case.metric, control=control)


def run_case(case: Case, tier: Tier, cache: ExperimentCache) -> dict:
    """Compute (or load) the case's experiments and evaluate its claim: one leaderboard row."""
    specs, agreement = _claim_experiments(case, tier)
    loaded = [cache.get(spec) for spec in specs]
    compared = cache.get(agreement) if agreement is not None else None
    for network in {spec.network() for spec in [*specs, agreement] if spec is not None and spec.train is not None}:
        check_trained(cache.get(network))  # no verdict from a network that did not train
    row = get_claim(case.claim).evaluate(case, tier, loaded, cache)
    row = {**row, **base_row(case, tier), **_sources(loaded + ([compared] if compared else []))}
    if not case.control:
        return row
    if compared is not None:  # curve a against the control's agreement experiment, on the window
        window = [n for n in compared.spec.n_grid if row["window_lo"] <= n <= row["window_hi"]]
        row["agreement_distance"] = function_distance(cache, loaded[0], compared, window)
    return {**row, **CONTROLS[case.control].decide(row)}


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
