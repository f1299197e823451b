"""Layer factors: per-sample convolution gradients, layer discovery, unsupported networks.
(That factor products equal Jacobian products for every architecture is in test_models.)"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbench.layer_factors import UnsupportedNetworkError, conv_kernel_gradients, discover
from ntkbench.models import build_model
from ntkbench.models.layers import DIMENSION_NUMBERS, ScaledDense


@pytest.mark.parametrize("kernel_size, spatial", [((5,), (9,)), ((4,), (7,)), ((3, 3), (5, 6)), ((2, 3), (4, 4))])
def test_conv_kernel_gradients_equal_per_sample_autodiff(kernel_size, spatial):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, *spatial, 2)), jnp.float32)
    delta = jnp.asarray(rng.normal(size=(3, *spatial, 4)), jnp.float32)
    kernel = jnp.zeros((*kernel_size, 2, 4))

    def gradient(xi, di):
        conv = lambda k: jax.lax.conv_general_dilated(  # noqa: E731
            xi[None], k, (1,) * len(spatial), "SAME", dimension_numbers=DIMENSION_NUMBERS[len(spatial)])
        return jax.vjp(conv, kernel)[1](di[None])[0]

    expected = jax.vmap(gradient)(x, delta).reshape(3, -1, 4).transpose(0, 2, 1)
    np.testing.assert_allclose(conv_kernel_gradients(x, delta, kernel_size), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, shape, expected", [
    ("mlp", (10,), [("ScaledDense_0", None), ("ScaledDense_1", None), ("ScaledDense_2", None)]),
    ("cnn1d", (10,), [("ScaledConv1D_0", (5,)), ("ScaledConv1D_1", (5,)), ("ScaledConv1D_2", (5,)),
                      ("ScaledDense_0", None)]),
    ("myrtle5", (4, 4, 3), [(f"ScaledConv_{i}", (3, 3)) for i in range(4)] + [("ScaledDense_0", None)]),
])
def test_discover_finds_every_layer_in_call_order(name, shape, expected):
    model = build_model(name, 3, width=4)
    x = np.zeros((1, *shape), np.float32)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)  # discover reads shapes only
    layers = discover(model, params, x)
    assert [(layer.path, layer.kernel_size) for layer in layers] == expected
    readout = layers[-1]  # dense: its input, a bias column, its 3 outputs
    assert readout.row_floats == params["params"][readout.path]["kernel"].shape[0] + 1 + 3
    first = layers[0]  # a convolution: its kernel and bias gradients; a dense layer: factors
    kernel = params["params"][first.path]["kernel"]
    assert first.row_floats == (kernel.size + kernel.shape[-1] if first.kernel_size else kernel.shape[0] + 1 + 4)


def test_each_network_is_traced_once_for_its_layers(monkeypatch):
    """``auto`` and the layerwise engine both need the layers: one trace serves both, and
    every later Gram of a network of the same shapes."""
    import ntkbench.layer_factors as layer_factors
    from ntkbench.kernels import entk_gram

    traced, original = [], layer_factors._discover
    monkeypatch.setattr(layer_factors, "_DISCOVERED", {})
    monkeypatch.setattr(layer_factors, "_discover", lambda *args: traced.append(1) or original(*args))
    model = build_model("mlp", 3, width=4)
    x = np.random.default_rng(0).normal(size=(6, 10)).astype(np.float32)
    for seed in (0, 1):
        entk_gram(model, model.init(jax.random.PRNGKey(seed), x[:1]), x)
    assert traced == [1]


class Shared(nn.Module):
    def setup(self):
        self.layer = ScaledDense(4)

    def __call__(self, x):
        return self.layer(self.layer(x))


class Mixed(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(ScaledDense(4)(x))


class Doubled(ScaledDense):
    def __call__(self, x):
        return 2 * super().__call__(x)


class WithSubclass(nn.Module):
    @nn.compact
    def __call__(self, x):
        return Doubled(3)(ScaledDense(4)(x))


class OnSequences(nn.Module):
    @nn.compact
    def __call__(self, x):
        return ScaledDense(3)(x[..., None]).sum(axis=1)


@pytest.mark.parametrize("module, message", [
    (Shared(), "layer layer is applied more than once"),
    (Mixed(), "15 of 35 parameters are outside ScaledDense/ScaledConv layers"),
    (OnSequences(), r"layer ScaledDense_0 gets inputs of shape \(4, 1\)"),
    (WithSubclass(), "15 of 35 parameters are outside"),  # a subclass may compute something else
])
def test_unsupported_networks_are_refused(module, message):
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(UnsupportedNetworkError, match=message):
        discover(module, module.init(jax.random.PRNGKey(0), x), x)


def test_batched_steps_give_the_same_gradients(monkeypatch):
    """Accelerators take several samples per step of the loop (5 samples in steps of 2 here)."""
    import ntkbench.layer_factors as layer_factors

    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(5, 6, 6, 2)), jnp.float32)
    delta = jnp.asarray(rng.normal(size=(5, 6, 6, 3)), jnp.float32)
    one_by_one = conv_kernel_gradients(x, delta, (3, 3))
    monkeypatch.setitem(layer_factors._SAMPLES_PER_STEP, jax.default_backend(), 2)
    np.testing.assert_allclose(conv_kernel_gradients(x, delta, (3, 3)), one_by_one, rtol=1e-6, atol=1e-6)
