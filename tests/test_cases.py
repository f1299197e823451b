"""Benchmark cases: which cases a claim has, and the leaderboard row a case produces."""

import dataclasses
import itertools
import math
import re

import pytest

from ntkbench.cache import ExperimentCache
from ntkbench.cases import Case, cases_for, experiment_spec, run_case
from ntkbench.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, METRICS, get_claim
from ntkbench.experiments import RUNNERS, NotApplicableError
from ntkbench.registry import ARCHITECTURES, DATASETS, UnknownNameError

NUMERIC = ("margin", "alpha_a", "alpha_a_lo", "alpha_a_hi", "alpha_b", "alpha_b_lo", "alpha_b_hi",
           "gap", "gap_lo", "gap_hi", "window_lo", "window_hi", "points")


def test_cases_cover_every_architecture_dataset_and_metric():
    cases = cases_for("C1")
    expected = itertools.product(ARCHITECTURES.names(), get_claim("C1").datasets, METRICS)
    assert sorted((c.arch, c.dataset, c.metric) for c in cases) == sorted(expected)
    assert {c.claim for c in cases} == {"C1"}
    assert len({c.id for c in cases}) == len(cases)


def test_explicit_architectures_and_datasets_are_honoured():
    cases = cases_for("C1", ["mlp", "nosucharch"], ["teacher"])
    assert [(c.arch, c.dataset, c.metric) for c in cases] == [
        (arch, "teacher", metric) for arch in ("mlp", "nosucharch") for metric in METRICS]


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


@pytest.mark.parametrize("metric", METRICS)
def test_run_case_returns_a_complete_row(tiny_run, metric, tiny_tier):
    row = tiny_run.rows[metric]
    assert row["claim"] == "C1" and row["case"] == "mlp/mnist1d" and row["metric"] == metric
    assert row["tier"] == tiny_tier.name and row["error"] == ""
    assert row["verdict"] in (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE)
    for field in NUMERIC:
        assert isinstance(row[field], int | float) and math.isfinite(row[field]), field
    assert row["alpha_a_lo"] <= row["alpha_a_hi"] and row["gap_lo"] <= row["gap_hi"]
    assert (row["window_lo"], row["window_hi"]) == (8, 32)
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
    monkeypatch.setitem(RUNNERS, "nn", lambda context, seed: network_seeds.append(seed) or [])  # fast stand-in
    with pytest.raises(NotApplicableError, match="^architecture 'twinless' has no stax twin$"):
        run_case(Case("C1'", twinless, "mnist1d", "test_mse"), tiny_tier, ExperimentCache())
    assert network_seeds == []
    assert not cache_dir.exists()
