"""The eNTK along training: angles between probe kernels at every checkpoint, kernel-at-t
regression at the checkpoints the statistics read."""

import numpy as np
import pytest

from ntkbench.cache import ExperimentCache
from ntkbench.experiments import Context
from ntkbench.kernels import entk_gram, kernel_angle
from ntkbench.train import TrainConfig
from ntkbench.travel import even_checkpoints, per_seed_statistics


@pytest.fixture(scope="module")
def evolution(tmp_path_factory):
    from ntkbench.experiments import ExperimentSpec

    spec = ExperimentSpec(kind="entk_evolution", arch="mlp", dataset="teacher", n_grid=(128, 256), n_val=64,
                          n_test=64, seeds=(0, 1), arch_kwargs=(("width", 16),), n0=256,
                          train=TrainConfig(max_steps=300, eval_every=10, patience=300, learning_rate=3e-4))
    cache = ExperimentCache(tmp_path_factory.mktemp("cache"))
    return spec, cache, cache.get(spec).records


def test_kernel_regression_runs_at_the_even_checkpoints_only(evolution):
    spec, _, records = evolution
    for _, run in records.groupby("seed"):
        run = run.sort_values("step")
        even = even_checkpoints(run["step"].to_numpy(), run["time"].to_numpy())
        assert len(run) > len(even)  # early log-spaced checkpoints besides the eighths
        regressed = np.flatnonzero(run["kernel_test_mse"].notna().to_numpy())
        assert regressed.tolist() == sorted(set(even.tolist()))
        assert run["kernel_test_error"].notna().sum() == len(regressed)
    assert per_seed_statistics(records)["kernel_improvement_mse"].notna().all()


def test_angles_are_those_of_the_probe_kernels(evolution):
    spec, cache, records = evolution
    run = records[records["seed"] == 0].sort_values("step")
    angles = np.array(run["angle_to"].tolist())
    assert np.allclose(np.diag(angles), 0.0, atol=1e-3) and np.allclose(angles, angles.T)
    ctx = Context(spec, cache)
    checkpoints = dict(cache.load_checkpoints(spec.network(), "seed0-n256-step", _template(ctx)))
    first, last = int(run["step"].iloc[0]), int(run["step"].iloc[-1])
    probe = ctx.inputs(0)[spec.n_max + spec.n_val:][:min(256, spec.n_test)]
    kernels = [entk_gram(ctx.model, checkpoints[step], probe) for step in (first, last)]
    assert angles[0, -1] == pytest.approx(kernel_angle(*kernels), rel=1e-4, abs=1e-5)


def _template(ctx):
    from ntkbench.train import init_params

    return init_params(ctx.model, 0, ctx.splits.x_train)
