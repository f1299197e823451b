"""The training gate: a network that did not learn, or was cut while improving, gives no verdict."""

import pandas as pd
import pytest

from ntkbench.cache import ExperimentCache
from ntkbench.cases import Case, run_case
from ntkbench.convergence import NotConvergedError, training_failures


def record(**changes) -> dict:
    base = {"seed": 0, "n": 64, "min_train_mse": 0.1, "trivial_train_mse": 0.9, "cut": False,
            "best_step": 300, "last_step": 800}
    return {**base, **changes}


@pytest.mark.parametrize("changes, failure", [
    ({}, None),
    ({"min_train_mse": 0.85}, "n=64 seed 0 did not learn (train MSE 0.85 vs trivial 0.9)"),
    ({"cut": True, "best_step": 800}, "n=64 seed 0 was cut at step 800 while still improving (best step 800)"),
], ids=["trained", "did-not-learn", "cut"])
def test_each_failed_run_is_named(changes, failure):
    records = pd.DataFrame([record(seed=1), record(**changes)])
    assert training_failures(records) == ([failure] if failure else [])


def test_a_network_that_cannot_learn_makes_its_case_an_error(tiny_tier, cache_dir):
    tier = tiny_tier.with_overrides(["learning_rate=1e-7"])
    with pytest.raises(NotConvergedError, match=r"^nn:mlp/mnist1d@\w+: n=64 seed 0 did not learn "
                                                r"\(train MSE .* vs trivial .*\) \(and 7 more runs\)$"):
        run_case(Case("C1", "mlp", "mnist1d", "test_mse"), tier, ExperimentCache())


def test_a_network_cut_by_the_cap_makes_its_case_an_error(tiny_tier, cache_dir):
    tier = tiny_tier.with_overrides(["max_steps=6", "eval_every=2", "learning_rate=1e-3"])
    with pytest.raises(NotConvergedError, match=r"was cut at step 6 while still improving"):
        run_case(Case("C1", "mlp", "mnist1d", "test_mse"), tier, ExperimentCache())
