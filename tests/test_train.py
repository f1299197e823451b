"""Training: config validation, optimisation, early stopping, divergence and determinism."""

import dataclasses

import jax
import numpy as np
import pytest

from ntkbench.models import build_model
from ntkbench.train import DivergedError, TrainConfig, init_params, mse, train

CONFIGS = {
    "adam": TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=8, max_steps=60, eval_every=10),
    "sgd": TrainConfig(optimizer="sgd", learning_rate=0.05, schedule="cosine", batch_size=8,
                       max_steps=60, eval_every=10),
}


@pytest.mark.parametrize("changes, message", [
    ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'; known: adam, sgd"),
    ({"schedule": "step"}, "unknown schedule 'step'; known: constant, cosine"),
    ({"max_steps": 0}, "must be positive"),
    ({"eval_every": 0}, "must be positive"),
    ({"batch_size": 0}, "must be positive"),
    ({"patience": 0}, "must be positive"),
    ({"patience_epochs": -1}, "patience_epochs non-negative"),
], ids=["optimizer", "schedule", "max_steps", "eval_every", "batch_size", "patience", "patience_epochs"])
def test_config_rejects_bad_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


@dataclasses.dataclass(frozen=True)
class Problem:
    model: object
    params: object
    x: np.ndarray
    y: np.ndarray

    def loss(self, params, targets=None) -> float:
        """Mean squared error on the training inputs (against ``targets``, default ``y``)."""
        return float(mse(self.model.apply(params, self.x), self.y if targets is None else targets))

    def train(self, config, seed=0, val_targets=None):
        """Train from ``params``; validate on the training inputs (against ``val_targets``)."""
        val_targets = self.y if val_targets is None else val_targets
        return train(self.model, self.params, seed, self.x, self.y, self.x, val_targets, config)


@pytest.fixture(scope="module")
def problem() -> Problem:
    """32 Gaussian inputs, 3 smooth targets, a width-16 MLP."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(6, 3))).astype(np.float32)
    model = build_model("mlp", 3, width=16)
    return Problem(model, init_params(model, 0, x), x, y)


@pytest.fixture(scope="module")
def trained(problem):
    """A training run with each optimizer of CONFIGS, by name."""
    return {name: problem.train(config) for name, config in CONFIGS.items()}


@pytest.mark.parametrize("optimizer", sorted(CONFIGS))
def test_training_lowers_the_loss(problem, trained, optimizer):
    config, result = CONFIGS[optimizer], trained[optimizer]
    early = [0, 1, 2, 4, 8]  # the start, and evaluations before the first eval_every steps
    assert [h["step"] for h in result.history] == [*early, *range(config.eval_every, config.max_steps + 1,
                                                                 config.eval_every)]
    assert problem.loss(result.params) < 0.5 * problem.loss(problem.params)
    assert result.history[-1]["train_loss"] < 0.5 * problem.loss(problem.params)


def test_same_seed_gives_identical_parameters(problem, trained):
    config, result = CONFIGS["adam"], trained["adam"]
    again = problem.train(config)
    for first, second in zip(jax.tree.leaves(result.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(first, second)
    other_seed = problem.train(config, seed=1)  # minibatches differ, so must the result
    assert problem.loss(other_seed.params) != problem.loss(result.params)


def test_returns_the_parameters_with_the_best_validation_loss_and_stops_after_patience(problem):
    # Validation targets opposite to the training ones: fitting the training set worsens
    # the validation loss, so the best parameters are an early evaluation, not the last.
    config = dataclasses.replace(CONFIGS["adam"], max_steps=1000, eval_every=5, patience=30)
    result = problem.train(config, val_targets=-problem.y)
    val_losses = {h["step"]: h["val_loss"] for h in result.history}
    assert result.best_step == min(val_losses, key=val_losses.get)
    assert problem.loss(result.params, -problem.y) == pytest.approx(val_losses[result.best_step], rel=1e-5)
    assert result.last_step == max(val_losses) < config.max_steps  # stopped by patience, not the cap
    assert result.best_step + config.patience <= result.last_step < result.best_step + config.patience + 5
    assert not result.cut


def test_a_run_that_never_beats_its_start_on_validation_keeps_its_initial_parameters(problem):
    # validation targets equal to the initial outputs: step 0 is a perfect fit that no
    # training step can beat, as the zero function is for a centred network that only overshoots
    start = np.asarray(problem.model.apply(problem.params, problem.x))
    config = dataclasses.replace(CONFIGS["adam"], max_steps=200, eval_every=5, patience=30)
    result = problem.train(config, val_targets=start)
    assert result.history[0] == {"step": 0, "train_loss": pytest.approx(problem.loss(problem.params)),
                                 "val_loss": pytest.approx(0.0, abs=1e-12)}
    assert result.best_step == 0 and result.last_step == 30 and not result.cut
    assert jax.tree.all(jax.tree.map(np.array_equal, result.params, problem.params))


def test_a_run_stopped_by_the_cap_while_still_improving_is_flagged_cut(problem):
    still_improving = problem.train(dataclasses.replace(CONFIGS["adam"], learning_rate=1e-3, patience=50))
    assert still_improving.last_step == 60 and still_improving.best_step == 60 and still_improving.cut
    converged = problem.train(dataclasses.replace(CONFIGS["adam"], patience=50), val_targets=-problem.y)
    assert converged.last_step == 60 and converged.best_step <= 10 and not converged.cut


def test_huge_learning_rate_raises_diverged_error(problem):
    config = dataclasses.replace(CONFIGS["adam"], learning_rate=1e6, max_steps=20)
    with pytest.raises(DivergedError, match=r"diverged by step 1: .* with adam at learning rate 1e\+06") as error:
        problem.train(config)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("n, patience", [(8, 100), (64, 100), (512, 128), (4096, 1024)])
def test_patience_is_the_longer_of_steps_and_epochs(n, patience):
    config = TrainConfig(batch_size=16, patience=100, patience_epochs=4)
    assert config.steps_per_epoch(n) == max(1, n // 16)
    assert config.patience_for(n) == patience


def test_each_epoch_visits_every_point_once(problem, monkeypatch):
    """Minibatches are one permutation of the points an epoch, cut into batches."""
    import ntkbench.train

    seen, original = [], np.random.default_rng

    class Recording:
        def __init__(self, seed):
            self.rng = original(seed)

        def permutation(self, n):
            seen.append(self.rng.permutation(n))
            return seen[-1]

    monkeypatch.setattr(ntkbench.train.np.random, "default_rng", Recording)
    problem.train(dataclasses.replace(CONFIGS["adam"], max_steps=12, batch_size=8))  # 4 steps an epoch
    assert len(seen) == 3 and all(sorted(order) == list(range(32)) for order in seen)
    assert not np.array_equal(seen[0], seen[1])


def test_batched_runs_match_the_same_runs_one_at_a_time(problem):
    from ntkbench.train import train_many

    config = CONFIGS["adam"]
    inits = [init_params(problem.model, seed, problem.x) for seed in (0, 1)]
    args = (problem.model, inits, [0, 1], [problem.x] * 2, [problem.y, -problem.y], problem.x, problem.y, config)
    batched, alone = train_many(*args, batched=True), train_many(*args, batched=False)
    for b, a in zip(batched, alone):
        assert (b.best_step, b.last_step, b.cut) == (a.best_step, a.last_step, a.cut)
        for first, second in zip(jax.tree.leaves(b.params), jax.tree.leaves(a.params)):
            np.testing.assert_allclose(first, second, rtol=1e-4, atol=1e-5)


def test_checkpoints_are_log_spaced_up_to_the_best_step(problem):
    from ntkbench.train_config import checkpoint_steps

    steps = checkpoint_steps(800)
    assert steps[0] == 0 and steps[-1] == 800
    assert {400, 600} <= set(steps) and steps == tuple(sorted(set(steps)))
    assert steps[1] <= 800 / 256 + 1
    result = train(problem.model, problem.params, 0, problem.x, problem.y, problem.x, problem.y,
                   dataclasses.replace(CONFIGS["adam"], max_steps=200), checkpoints=True)
    kept = sorted(result.checkpoints)
    assert kept[0] == 0 and kept[-1] == result.best_step
    assert len(kept) >= 5
    for first, second in zip(jax.tree.leaves(result.checkpoints[result.best_step]), jax.tree.leaves(result.params)):
        np.testing.assert_array_equal(first, second)


def test_scanned_steps_give_the_parameters_of_one_call_per_step(problem):
    config = dataclasses.replace(CONFIGS["adam"], max_steps=65)  # chunks of 1, of 10 and a last of 5
    scanned = train(problem.model, problem.params, 0, problem.x, problem.y, problem.x, problem.y, config,
                    checkpoints=True, scanned=True)
    stepwise = train(problem.model, problem.params, 0, problem.x, problem.y, problem.x, problem.y, config,
                     checkpoints=True, scanned=False)
    table = [[[h["step"], h["train_loss"], h["val_loss"]] for h in r.history] for r in (scanned, stepwise)]
    np.testing.assert_allclose(*table, rtol=1e-6)
    assert sorted(scanned.checkpoints) == sorted(stepwise.checkpoints)
    for first, second in zip(jax.tree.leaves(scanned.checkpoints), jax.tree.leaves(stepwise.checkpoints)):
        np.testing.assert_allclose(first, second, rtol=1e-6, atol=1e-7)


def test_chunks_end_at_every_evaluation_and_kept_step():
    from ntkbench.train import chunk_ends, evaluates
    from ntkbench.train_config import kept_steps

    config = TrainConfig(max_steps=1005, eval_every=20)
    ends = chunk_ends(config)
    assert ends == sorted(set(ends)) and ends[-1] == config.max_steps
    assert {s for s in range(1, 1006) if evaluates(s, config)} <= set(ends)
    assert set(kept_steps(config.max_steps)) - {0} <= set(ends)
    assert ends[:21] == list(range(1, 22)) and {40, 60, 80} <= set(ends)  # then evaluations and kept steps
    assert [s for s in range(1, 21) if evaluates(s, config)] == [1, 2, 4, 8, 16, 20]


def test_scanning_is_chosen_per_model_and_device(monkeypatch):
    import ntkbench.train
    from ntkbench.train import scans_steps

    x, long, short = np.zeros((1, 40), np.float32), TrainConfig(max_steps=20000), TrainConfig(max_steps=2000)
    assert scans_steps(build_model("mlp", 10, width=8), x, long)
    assert not scans_steps(build_model("mlp", 10, width=8), x, short)  # the extra compile is not repaid
    assert not scans_steps(build_model("cnn1d", 10, width=4), x, long)  # convolutions on a CPU
    monkeypatch.setattr(ntkbench.train.jax, "default_backend", lambda: "gpu")
    assert scans_steps(build_model("cnn1d", 10, width=4), x, long)
    assert not scans_steps(build_model("cnn1d", 10, width=4), x, short)


def test_runs_on_host_threads_match_the_same_runs_in_turn(problem, monkeypatch):
    import ntkbench.train
    from ntkbench.train import train_many

    inits = [init_params(problem.model, seed, problem.x) for seed in (0, 1, 2)]
    xs, ys = [problem.x[:8], problem.x[:16], problem.x], [problem.y[:8], problem.y[:16], problem.y]  # largest last
    args = (problem.model, inits, [0, 1, 2], xs, ys, problem.x, problem.y, CONFIGS["adam"])
    monkeypatch.setattr(ntkbench.train, "host_threads", lambda: 1)
    in_turn = train_many(*args, batched=False)
    monkeypatch.setattr(ntkbench.train, "host_threads", lambda: 2)
    threaded = train_many(*args, batched=False)
    for a, b in zip(in_turn, threaded):  # same order, same numbers
        assert a.history == b.history
        for first, second in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
            np.testing.assert_array_equal(first, second)
    with pytest.raises(DivergedError):  # an error in one thread reaches the caller
        train_many(*args[:-1], dataclasses.replace(CONFIGS["adam"], learning_rate=1e6), batched=False)


@pytest.mark.parametrize("workers, expected", [(None, 2), ("1", 2), ("2", 1), ("4", 1)])
def test_host_threads_share_the_cores_among_xdist_workers(monkeypatch, workers, expected):
    import ntkbench.train

    monkeypatch.setattr(ntkbench.train.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    if workers is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", workers)
    assert ntkbench.train.host_threads() == expected


@pytest.mark.parametrize("count, pieces", [(1, [1]), (13, [8, 4, 1]), (20, [16, 4]), (64, [64])])
def test_chunks_are_scanned_in_power_of_two_pieces(count, pieces):
    from ntkbench.train import power_of_two_pieces

    assert power_of_two_pieces(count) == pieces and sum(pieces) == count


def test_training_sizes_share_one_compiled_step(problem):
    """Minibatches are gathered on the host: a second training size compiles nothing new."""
    from ntkbench.train import _compiled

    config = TrainConfig(max_steps=12, eval_every=4, batch_size=8)
    train(problem.model, problem.params, 0, problem.x[:16], problem.y[:16], problem.x, problem.y, config,
          scanned=True)
    steps = _compiled(problem.model, config, False, True)[0]
    compiled = [cell.cell_contents for cell in steps.__closure__ if hasattr(cell.cell_contents, "_cache_size")]
    before = [f._cache_size() for f in compiled]
    train(problem.model, problem.params, 0, problem.x[:24], problem.y[:24], problem.x, problem.y, config,
          scanned=True)
    assert compiled and [f._cache_size() for f in compiled] == before
