"""The linearised network: equal to the network at θ0, linear in θ − θ0, and trained like it."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbench.cache import ExperimentCache
from ntkbench.linearized import Linearized
from ntkbench.models import build_model


@pytest.fixture(scope="module")
def model_and_params():
    model = build_model("mlp", 3, width=16)
    x = np.random.default_rng(0).normal(size=(5, 40)).astype(np.float32)
    return model, Linearized(model), x


def test_it_equals_the_network_at_initialisation(model_and_params):
    model, linear, x = model_and_params
    params = linear.init(jax.random.PRNGKey(0), x[:1])
    np.testing.assert_allclose(linear.apply(params, x), model.apply(params["at"], x), rtol=1e-6)


def test_it_is_the_first_order_expansion(model_and_params):
    """f_lin(θ0 + εv) = f(θ0) + ε J v exactly (linear in ε); f itself is not."""
    model, linear, x = model_and_params
    params = linear.init(jax.random.PRNGKey(0), x[:1])
    direction = jax.tree.map(lambda p: jnp.ones_like(p), params["at"])

    def at(eps):
        moved = jax.tree.map(lambda p, v: p + eps * v, params["at"], direction)
        return np.asarray(linear.apply({"at": params["at"], "params": moved}, x), np.float64), \
            np.asarray(model.apply(moved, x), np.float64)

    (lin0, f0), (lin1, f1), (lin2, f2) = at(0.0), at(0.05), at(0.1)
    np.testing.assert_allclose(lin2 - lin0, 2 * (lin1 - lin0), rtol=1e-3, atol=1e-5)
    assert np.abs((f2 - f0) - 2 * (f1 - f0)).max() > 10 * np.abs((lin2 - lin0) - 2 * (lin1 - lin0)).max()


def test_the_expansion_point_takes_no_gradient(model_and_params):
    _, linear, x = model_and_params
    params = linear.init(jax.random.PRNGKey(0), x[:1])
    # away from θ0, where an expansion point that took gradients would get J'(θ − θ0) ≠ 0
    params = {"at": params["at"], "params": jax.tree.map(lambda p: p + 0.1, params["params"])}
    grads = jax.grad(lambda q: jnp.sum(linear.apply(q, x) ** 2))(params)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads["at"]))
    assert any(float(jnp.abs(g).max()) > 0.0 for g in jax.tree.leaves(grads["params"]))


def test_the_kind_trains_and_stores_its_own_parameters(make_spec, tmp_path):
    """The linearised curve is an experiment of its own: its records and parameters never
    replace the network's."""
    cache = ExperimentCache(tmp_path)
    # a smooth teacher, on which validation improves from the start (on 8 MNIST-1D points it may not)
    nn = make_spec("nn", dataset="teacher", n_grid=(64, 128), n_val=32,
                   train=dataclasses.replace(make_spec().train, max_steps=20, eval_every=5))
    linear = dataclasses.replace(nn, kind="nn_linearized")
    assert linear.network() == linear and nn.network() == nn
    result, network = cache.get(linear), cache.get(nn)
    assert set(result.records["n"]) == set(nn.n_grid) and (result.records["best_step"] >= 1).all()
    assert cache.load_predictions(linear, 0, 64) is not None
    distance = np.sum((cache.load_predictions(linear, 0, 64) - cache.load_predictions(nn, 0, 64)) ** 2)
    assert distance > 0  # a narrow MLP is not its linearisation
    assert network.records["test_mse"].tolist() == cache.get(nn).records["test_mse"].tolist()
