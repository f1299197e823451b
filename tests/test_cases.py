"""Benchmark cases: which cases a claim has, and the leaderboard row a case produces."""

import dataclasses
import itertools
import math
import re

import pytest

from ntkbench.cache import ExperimentCache
from ntkbench.cases import Case, cases_for, experiment_spec, metrics_apart, run_case
from ntkbench.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, METRICS, get_claim
from ntkbench.experiments import KINDS, NotApplicableError
from ntkbench.registry import ARCHITECTURES, DATASETS, UnknownNameError
from ntkbench.tiers import get_tier
from claim_modules import claim_module

NUMERIC = ("margin", "alpha_a", "alpha_a_lo", "alpha_a_hi", "alpha_b", "alpha_b_lo", "alpha_b_hi",
           "gap", "gap_lo", "gap_hi", "window_lo", "window_hi", "points")


def test_cases_cover_every_architecture_dataset_and_metric():
    """Every architecture that takes the dataset's kind of input (MNIST-1D: vectors)."""
    cases = cases_for("C1")
    vector_archs = [a for a in ARCHITECTURES.names() if ARCHITECTURES.get(a).input_kind == "vector"]
    assert set(vector_archs) == {"mlp", "cnn1d"}
    expected = itertools.product(vector_archs, get_claim("C1").datasets, METRICS)
    assert sorted((c.arch, c.dataset, c.metric) for c in cases) == sorted(expected)
    assert {c.claim for c in cases} == {"C1"}
    assert len({c.id for c in cases}) == len(cases)


def test_explicit_architectures_and_datasets_are_honoured():
    cases = cases_for("C1", ["mlp", "nosucharch"], ["teacher"])
    assert [(c.arch, c.dataset, c.metric) for c in cases] == [
        (arch, "teacher", metric) for arch in ("mlp", "nosucharch") for metric in METRICS]


def test_metrics_apart_runs_every_cases_first_metric_before_any_second(pytester):
    """The order the benchmark modules run their cases in (checked on a collection): two
    xdist workers taking the next tests start on different cases' experiments."""
    cases = cases_for("C1", ["cnn1d", "mlp"], ["mnist1d"])
    assert [(c.arch, c.metric) for c in cases] == [(a, m) for a in ("cnn1d", "mlp") for m in METRICS]
    expected = [(a, m) for m in METRICS for a in ("cnn1d", "mlp")]
    assert [(c.arch, c.metric) for c in metrics_apart(cases)] == expected
    pytester.makepyfile(test_c1=claim_module("C1"))
    collected = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "--ntkbench-tier=smoke")
    ids = re.findall(r"test_c1\[(\w+)-mnist1d-(\w+)\]", collected.stdout.str())
    assert ids == expected


def test_metrics_of_a_case_share_its_experiments(tiny_tier):
    mse, error = (Case("C1", "mlp", "mnist1d", metric) for metric in METRICS)
    for kind in ("nn", "entk_init"):
        assert experiment_spec(kind, mse, tiny_tier) == experiment_spec(kind, error, tiny_tier)
    nn, entk = (experiment_spec(kind, mse, tiny_tier) for kind in ("nn", "entk_init"))
    assert nn.train == tiny_tier.train and entk.train is None
    assert nn.arch_kwargs == entk.arch_kwargs == (("width", 16),)
    assert (nn.n_grid, nn.seeds) == (tiny_tier.n_grid, tiny_tier.seeds)


def test_c2_has_one_case_per_after_n0(tiny_tier):
    tier = dataclasses.replace(tiny_tier, after_n0=(8, 16))
    cases = cases_for("C2", ["mlp"], ["mnist1d"], tier)
    assert sorted((c.metric, c.variant) for c in cases) == sorted(
        (metric, (("n0", n0),)) for metric in METRICS for n0 in (8, 16))
    for case in cases:
        n0 = dict(case.variant)["n0"]
        assert case.id == f"mlp-mnist1d-{case.metric}-n0={n0}"
        assert case.label == f"mlp/mnist1d n0={n0}"
        assert case.family == "mlp/mnist1d"
    assert len({c.id for c in cases}) == len(cases)


def test_family_drops_only_the_pre_training_size():
    sgd = Case("C1b", "mlp", "mnist1d", "test_mse", (("set", ("mlp", ("optimizer='sgd'",))),))
    assert sgd.family == sgd.label == "mlp/mnist1d optimizer='sgd'"
    lazy = Case("C1", "mlp", "mnist1d", "test_mse", control="C1:lazy")
    assert lazy.family == lazy.label == "mlp/mnist1d (lazy control)"


def test_c2_without_a_tier_has_no_cases():
    assert cases_for("C2") == []


def test_c2_shares_the_network_experiment_of_c1_and_sweeps_only_the_after_kernel(tiny_tier):
    n0 = tiny_tier.after_n0[0]
    case = Case("C2", "mlp", "mnist1d", "test_mse", (("n0", n0),))
    c1_network = experiment_spec("nn", Case("C1", "mlp", "mnist1d", "test_mse"), tiny_tier)
    network, after = experiment_spec("nn", case, tiny_tier), experiment_spec("entk_after", case, tiny_tier, swept=True)
    assert network.n0 is None and network == c1_network and network.key == c1_network.key
    assert after.n0 == n0 and after.train == tiny_tier.train
    assert after.network() == network


def test_the_tiers_entk_precision_goes_to_the_kernels_only(tiny_tier):
    tier = tiny_tier.with_overrides(["entk_precision=tf32"])
    case = Case("C2", "mlp", "mnist1d", "test_mse", (("n0", tiny_tier.after_n0[0]),))
    precisions = {kind: experiment_spec(kind, case, tier, swept=kind == "entk_after").entk_precision
                  for kind in ("nn", "ntk_inf", "entk_init", "entk_after")}
    assert precisions == {"nn": "float32", "ntk_inf": "float32", "entk_init": "tf32", "entk_after": "tf32"}
    assert experiment_spec("nn", case, tier) == experiment_spec("nn", case, tiny_tier)  # no retraining
    assert experiment_spec("entk_after", case, tier, swept=True).network() == experiment_spec("nn", case, tier)


@pytest.mark.parametrize("metric", METRICS)
def test_run_case_returns_a_complete_row(tiny_run, metric, tiny_tier):
    row = tiny_run.rows[metric]
    assert row["claim"] == "C1" and row["case"] == "mlp/mnist1d" and row["metric"] == metric
    assert row["tier"] == tiny_tier.name and row["error"] == ""
    assert row["verdict"] in (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE)
    for field in NUMERIC:
        assert isinstance(row[field], int | float) and math.isfinite(row[field]), field
    assert row["alpha_a_lo"] <= row["alpha_a_hi"] and row["gap_lo"] <= row["gap_hi"]
    assert (row["window_lo"], row["window_hi"]) == (64, 256)
    nn_source, entk_source = row["sources"]
    assert nn_source["label"].startswith("nn:mlp/mnist1d@") and entk_source["label"].startswith("entk_init:mlp/mnist1d@")
    assert row["source_paths"] == [nn_source["path"], entk_source["path"]]


def test_cases_sharing_experiments_compute_them_once(tiny_run):
    # Both metric cases ran with one cache: one NN curve and one eNTK curve in all.
    assert len(tiny_run.cache.computed) == 2


@pytest.mark.parametrize("registry, arch, dataset, unknown", [
    pytest.param(ARCHITECTURES, "nosucharch", "mnist1d", "nosucharch", id="architecture"),
    pytest.param(DATASETS, "mlp", "nosuchdata", "nosuchdata", id="dataset"),
])
def test_unknown_names_fail_listing_the_known_ones(registry, arch, dataset, unknown, tiny_tier, cache_dir):
    message = f"unknown {registry.kind} '{unknown}'; known: {', '.join(registry.names())}"
    with pytest.raises(UnknownNameError, match=f"^{re.escape(message)}$"):
        run_case(Case("C1", arch, dataset, "test_mse"), tiny_tier, ExperimentCache())
    assert not cache_dir.exists()  # failed before computing anything


def test_not_applicable_case_computes_nothing(twinless, tiny_tier, cache_dir, monkeypatch):
    """Like an unknown name: C1' without a twin is known before any experiment runs, so the
    network curve (minutes to hours at the larger tiers) is not computed only to be skipped."""
    network_seeds = []
    fake = lambda context, seed: network_seeds.append(seed) or []  # noqa: E731  (a fast stand-in)
    monkeypatch.setitem(KINDS, "nn", dataclasses.replace(KINDS["nn"], runner=fake, batched=None))
    with pytest.raises(NotApplicableError, match="^architecture 'twinless' has no stax twin$"):
        run_case(Case("C1'", twinless, "mnist1d", "test_mse"), tiny_tier, ExperimentCache())
    assert network_seeds == []
    assert not cache_dir.exists()


# --- input kinds: vector networks on vector datasets, image networks on image datasets --

def pairs(cases) -> set[tuple[str, str]]:
    return {(c.arch, c.dataset) for c in cases}


def test_default_cases_pair_only_vector_networks_with_mnist1d():
    assert pairs(cases_for("C1", tier=get_tier("small"))) == {("mlp", "mnist1d"), ("cnn1d", "mnist1d")}


@pytest.mark.parametrize("claim", ["C1", "C1'", "C1b", "C2", "C3"])
def test_paper_tier_pairs_myrtle_networks_with_cifar_only(claim):
    myrtles = {("myrtle5", "cifar10"), ("myrtle7", "cifar10"), ("myrtle10", "cifar10"),
               ("myrtle5", "cifar5m"), ("myrtle7", "cifar5m"), ("myrtle10", "cifar5m")}
    assert pairs(cases_for(claim, tier=get_tier("paper"))) == {("mlp", "mnist1d"), ("cnn1d", "mnist1d"), *myrtles}


def test_named_datasets_choose_the_networks_of_their_input_kind():
    assert {c.arch for c in cases_for("C1", datasets=["cifar10"])} == {"myrtle5", "myrtle7", "myrtle10"}
    assert {c.arch for c in cases_for("C1", datasets=["teacher"])} == {"mlp", "cnn1d"}


@pytest.mark.parametrize("arch, dataset, message", [
    ("myrtle5", "mnist1d", "myrtle5 takes image inputs, mnist1d has vectors"),
    ("mlp", "cifar10", "mlp takes vector inputs, cifar10 has images"),
])
def test_named_architecture_on_other_inputs_is_not_applicable(arch, dataset, message, tiny_tier, cache_dir,
                                                              tmp_path, monkeypatch):
    """Named architectures are paired with every dataset; such a case fails before any data is
    read (no CIFAR files exist here) or any experiment computed."""
    monkeypatch.setenv("NTKBENCH_DATA_DIR", str(tmp_path / "no-data"))
    fail = lambda context, seed: pytest.fail("computed an experiment")  # noqa: E731
    monkeypatch.setitem(KINDS, "nn", dataclasses.replace(KINDS["nn"], runner=fail, batched=None))
    case = cases_for("C1", [arch], [dataset], tiny_tier)[0]
    assert pairs(cases_for("C1", [arch], tier=get_tier("small"))) == {(arch, "mnist1d")}
    with pytest.raises(NotApplicableError, match=f"^{message}$"):
        run_case(case, tiny_tier, ExperimentCache())
    assert not cache_dir.exists()
