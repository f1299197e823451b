"""Tiers: the built-in ones are usable; ``KEY=VALUE`` overrides are applied or rejected clearly."""

import dataclasses
import operator

import pytest

from ntkbench.cases import Case, experiment_spec
from ntkbench.tiers import TIERS, Tier, get_tier
from ntkbench.train import TrainConfig


@pytest.mark.parametrize("name", sorted(TIERS))
def test_builtin_tier_is_valid(name):
    tier = get_tier(name)
    assert tier.name == name
    assert len(tier.n_grid) >= 4  # enough sizes for a fit window
    assert len(set(tier.seeds)) == len(tier.seeds) >= 1
    assert min(tier.n_val, tier.n_test) >= 1
    assert isinstance(tier.train, TrainConfig)
    for kind in ("nn", "entk_init"):  # its experiments pass ExperimentSpec's validation
        experiment_spec(kind, Case("C1", "mlp", "mnist1d", "test_mse"), tier)


def test_tiers_grow_from_smoke_to_paper():
    smoke, small, paper = (get_tier(name) for name in ("smoke", "small", "paper"))
    assert max(smoke.n_grid) < max(small.n_grid) < max(paper.n_grid)
    assert smoke.train.max_steps < small.train.max_steps < paper.train.max_steps
    assert len(small.seeds) >= 5 and len(paper.seeds) >= 5


OVERRIDES = [  # (assignment, attribute of the tier, expected value)
    ("learning_rate=0.1", "train.learning_rate", 0.1),
    ("optimizer=sgd", "train.optimizer", "sgd"),
    (" max_steps = 7 ", "train.max_steps", 7),
    ("seeds=(0, 1, 2)", "seeds", (0, 1, 2)),
    ("n_grid=[8, 16]", "n_grid", (8, 16)),
    ("n_val=16", "n_val", 16),
    ("fit_window=(128, 1024)", "fit_window", (128, 1024)),
    ("mlp.width=64", "arch_kwargs", {"mlp": {"width": 64}}),
    ("cnn1d.parameterization=ntk", "arch_kwargs", {"cnn1d": {"parameterization": "ntk"}}),
]


@pytest.mark.parametrize("assignment, attribute, expected", OVERRIDES, ids=[o[0].strip() for o in OVERRIDES])
def test_override_sets_the_field(assignment, attribute, expected):
    read = operator.attrgetter(attribute)
    base = get_tier("smoke")
    tier = base.with_overrides([assignment])
    assert read(tier) == expected
    assert type(read(tier)) is type(expected)
    assert read(base) != expected  # the tier itself is left unchanged
    assert tier.name == base.name


def test_overrides_combine_and_the_last_one_wins():
    base = Tier("t", n_grid=(8, 16, 32), n_val=8, n_test=8, seeds=(0,), train=TrainConfig(),
                arch_kwargs={"mlp": {"width": 8}})
    tier = base.with_overrides(["mlp.depth=3", "max_steps=10", "max_steps=20", "mlp.width=16"])
    assert tier.arch_kwargs == {"mlp": {"width": 16, "depth": 3}}
    assert tier.train == dataclasses.replace(TrainConfig(), max_steps=20)
    assert base.arch_kwargs == {"mlp": {"width": 8}}  # not mutated
    assert base.with_overrides([]) == base


@pytest.mark.parametrize("assignment, message", [
    ("nosuchkey=1", r"unknown override 'nosuchkey'; known: .*learning_rate.*seeds.*, or ARCH\.KWARG"),
    ("name=other", "unknown override 'name'"),
    ("learning_rate", "override 'learning_rate' is not KEY=VALUE"),
    ("optimizer=rmsprop", "unknown optimizer 'rmsprop'; known: adam, sgd"),
    ("schedule=step", "unknown schedule 'step'; known: constant, cosine"),
    ("max_steps=0", "must be positive"),
    ("max_steps=abc", "max_steps"),
], ids=["unknown-key", "not-overridable", "no-equals-sign", "unknown-optimizer", "unknown-schedule",
        "zero-steps", "non-integer-steps"])
def test_bad_override_raises_a_clear_value_error(assignment, message):
    with pytest.raises(ValueError, match=message) as error:
        get_tier("smoke").with_overrides([assignment])
    assert "\n" not in str(error.value)


def test_unknown_tier_is_rejected_with_the_known_names():
    with pytest.raises(ValueError, match="unknown tier 'bogus'; known: smoke, small, paper"):
        get_tier("bogus")
