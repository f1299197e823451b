"""ntkbench.nt_compat: neural-tangents 0.6.5 imports and runs on the pinned jax."""

import importlib.util
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from ntkbench import nt_compat
from ntkbench.nt_compat import RESTORED_SYMBOLS, nt, stax

EXPERIMENTAL = "neural_tangents.experimental"
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def _symbol_id(entry):
    module, name, _ = entry
    return f"{module.__name__}.{name}"


def test_import_in_fresh_interpreter():
    """The restore list is complete: neural-tangents imports from a clean process."""
    code = "import ntkbench.nt_compat as c; import neural_tangents.stax; print(c.nt.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.6.5"


@pytest.mark.parametrize("entry", RESTORED_SYMBOLS, ids=_symbol_id)
def test_restored_symbol_present(entry):
    module, name, value = entry
    assert getattr(module, name) is value


@pytest.mark.parametrize("entry", RESTORED_SYMBOLS, ids=_symbol_id)
def test_restore_puts_back_a_missing_symbol(entry, monkeypatch):
    module, name, value = entry
    monkeypatch.delattr(module, name)
    nt_compat._restore_symbols()
    assert getattr(module, name) is value


def test_jax_util_shim():
    import jax.util

    assert jax.util.safe_zip([1, 2], "ab") == [(1, "a"), (2, "b")]
    assert jax.util.safe_map(lambda x: 2 * x, [1, 2]) == [2, 4]


def test_stax_analytic_ntk_of_one_dense_layer():
    """One NTK-parameterised Dense layer without bias: NTK = NNGP = W_std² x·x'/d."""
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    _, _, kernel_fn = stax.serial(stax.Dense(1, W_std=1.5, b_std=0.0))
    expected = 1.5**2 * x @ x.T / x.shape[1]
    kernels = jax.jit(kernel_fn, static_argnames="get")(x, x, get=("nngp", "ntk"))
    np.testing.assert_allclose(kernels.ntk, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kernels.nngp, expected, rtol=1e-5, atol=1e-6)


def test_stax_analytic_ntk_of_relu_network_is_symmetric_psd():
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    _, _, kernel_fn = stax.serial(stax.Dense(16), stax.Relu(), stax.Dense(1))
    ntk = np.asarray(jax.jit(kernel_fn, static_argnames="get")(x, x, get="ntk"), dtype=np.float64)
    assert ntk.shape == (5, 5) and np.all(np.isfinite(ntk))
    np.testing.assert_allclose(ntk, ntk.T, rtol=1e-6)
    assert np.linalg.eigvalsh(ntk).min() > -1e-6 * np.abs(ntk).max()


def test_empirical_ntk_of_linear_model_is_gram_of_inputs():
    """f(w, x) = x·w has Jacobian x, so its empirical NTK is x x'ᵀ."""
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    w = jnp.asarray(rng.normal(size=(4, 1)), dtype=jnp.float32)
    ntk_fn = jax.jit(nt.empirical_ntk_fn(lambda p, x: x @ p, trace_axes=(-1,)))
    ntk = ntk_fn(jnp.asarray(x1, jnp.float32), jnp.asarray(x2, jnp.float32), w)
    np.testing.assert_allclose(ntk, x1 @ x2.T, rtol=1e-5, atol=1e-5)


def test_empirical_ntk_of_stax_network_matches_jacobian_product():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(3, 2)), jnp.float32)
    init_fn, apply_fn, _ = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    ntk = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,)))(x, None, params)
    flat, unravel = ravel_pytree(params)
    jac = jax.jit(jax.jacrev(lambda p: apply_fn(unravel(p), x)[:, 0]))(flat)
    np.testing.assert_allclose(ntk, jac @ jac.T, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(HAS_TENSORFLOW, reason="tensorflow installed: the real subpackage is used")
def test_experimental_is_the_stand_in_without_tensorflow():
    experimental = sys.modules[EXPERIMENTAL]
    assert nt.experimental is experimental
    assert "Stand-in" in experimental.__doc__
    assert not hasattr(experimental, "__file__")


@pytest.mark.parametrize("tensorflow_found", [False, True])
def test_stub_only_when_tensorflow_is_absent(tensorflow_found, monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        if name == "tensorflow":
            return object() if tensorflow_found else None
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.delitem(sys.modules, EXPERIMENTAL, raising=False)
    nt_compat._stub_experimental_without_tensorflow()
    assert (EXPERIMENTAL in sys.modules) is not tensorflow_found


@pytest.mark.parametrize("layers, shape", [
    pytest.param(lambda: stax.serial(stax.Dense(16), stax.Relu(), stax.Dense(8), stax.Relu(), stax.Dense(3)),
                 (6, 10), id="mlp"),
    pytest.param(lambda: stax.serial(stax.Conv(4, (3,), padding="SAME"), stax.Relu(), stax.Flatten(), stax.Dense(3)),
                 (6, 5, 2), id="conv"),
])
def test_structured_derivatives_equal_the_jacobian_contraction(layers, shape):
    """The adapter to jax's current ``ad.linearize`` gives neural-tangents' fastest
    implementation for dense networks the same kernels as the Jacobian contraction."""
    assert nt_compat.STRUCTURED_DERIVATIVES
    init_fn, apply_fn, _ = layers()
    x = jnp.asarray(np.random.default_rng(4).normal(size=shape), jnp.float32)
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    kernels = [jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=impl))(x, None, params)
               for impl in (nt.NtkImplementation.JACOBIAN_CONTRACTION, nt.NtkImplementation.STRUCTURED_DERIVATIVES)]
    np.testing.assert_allclose(kernels[1], kernels[0], rtol=1e-5, atol=1e-5 * float(jnp.abs(kernels[0]).max()))
