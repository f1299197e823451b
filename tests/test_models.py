"""ntkbench.models and the eNTK Gram of every registered architecture.

The common tests run on whatever ``ARCHITECTURES`` holds, so a newly registered network is
checked without new test code: init/apply shapes, a symmetric PSD eNTK, and the Gram equal
to an explicit Jacobian product (float64). The remaining tests check that ``entk_gram``'s
implementations, block sizes and memory bounds all give the same Gram.
"""

import functools
import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import ntkbench.kernels as kernels
from ntkbench.kernels import entk_gram
from ntkbench.models import build_model
from ntkbench.models.layers import PARAMETERIZATIONS
from ntkbench.registry import ARCHITECTURES, UnknownNameError, register_architecture

ARCHITECTURE_NAMES = ARCHITECTURES.names()
NUM_OUTPUTS = 3
INPUT_SHAPES = {"vector": (12,)}  # per input_kind; a new kind needs an entry here
SMALL = {"width": 8, "depth": 1, "kernel_size": 3}  # passed where a factory accepts them


def small_kwargs(build) -> dict:
    accepted = inspect.signature(build).parameters
    return {key: value for key, value in SMALL.items() if key in accepted}


@functools.cache
def make(name: str, parameterization: str = "standard", dtype=jnp.float32):
    """(model, params, input shape) of a small instance of a registered architecture."""
    arch = ARCHITECTURES.get(name)
    model = arch.build(NUM_OUTPUTS, parameterization=parameterization, **small_kwargs(arch.build))
    shape = INPUT_SHAPES[arch.input_kind]
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape), dtype))
    return model, params, shape


def inputs(n: int, shape, seed: int = 0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(dtype)


def assert_close_relative(actual, expected, rtol: float) -> None:
    """Equal up to ``rtol`` times the largest entry (small off-diagonal entries included)."""
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.fixture(scope="module", params=[(a, p) for a in ARCHITECTURE_NAMES for p in PARAMETERIZATIONS],
                ids=lambda ap: f"{ap[0]}-{ap[1]}")
def network(request):
    return make(*request.param)


@pytest.fixture(scope="module", params=ARCHITECTURE_NAMES)
def standard_network(request):
    return make(request.param, "standard")


def test_registered_architectures():
    assert {"mlp", "cnn1d"} <= set(ARCHITECTURE_NAMES)


# --- common tests: every registered architecture, both parameterizations ---------------

def test_apply_shape(network):
    model, params, shape = network
    out = model.apply(params, inputs(5, shape))
    assert out.shape == (5, NUM_OUTPUTS)
    assert np.all(np.isfinite(out))


def test_entk_symmetric_psd(network):
    model, params, shape = network
    gram = entk_gram(model, params, inputs(6, shape))
    assert gram.shape == (6, 6) and gram.dtype == np.float64
    np.testing.assert_array_equal(gram, gram.T)
    eigvals = np.linalg.eigvalsh(gram)
    assert eigvals.min() >= -1e-6 * eigvals.max()
    assert eigvals.max() > 0


@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_parameterizations_agree_at_init(name):
    """Same key, same function: NTK parameterization only moves the scale out of the init."""
    (standard, standard_params, shape), (ntk, ntk_params, _) = (make(name, p) for p in ("standard", "ntk"))
    x = inputs(4, shape)
    np.testing.assert_allclose(ntk.apply(ntk_params, x), standard.apply(standard_params, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_entk_equals_explicit_jacobian_product(name, parameterization):
    """In float64: K(x1, x2) = J(x1) J(x2)ᵀ, J from jacrev of the summed logits."""
    with jax.enable_x64(True):
        model, params, shape = make(name, parameterization, dtype=jnp.float64)
        flat, unravel = ravel_pytree(params)
        assert flat.dtype == jnp.float64
        x = inputs(8, shape, seed=1, dtype=np.float64)
        x1, x2 = x[:5], x[5:]
        summed_logits = lambda p: jnp.sum(model.apply(unravel(p), x), axis=-1)  # noqa: E731
        jac = np.asarray(jax.jit(jax.jacrev(summed_logits))(flat))
        assert jac.shape == (8, flat.size)
        j1, j2 = jac[:5], jac[5:]
        assert_close_relative(entk_gram(model, params, x1), j1 @ j1.T, rtol=1e-10)
        assert_close_relative(entk_gram(model, params, x1, x2), j1 @ j2.T, rtol=1e-10)


# --- entk_gram: implementations, blocks, memory bound -----------------------------------

@pytest.fixture(scope="module", params=[False, True], ids=["symmetric", "x2"])
def gram_case(standard_network, request):
    """(model, params, entk_gram args, Gram from the default single-block computation)."""
    model, params, shape = standard_network
    args = (inputs(7, shape, seed=5),) + ((inputs(5, shape, seed=6),) if request.param else ())
    return model, params, args, entk_gram(model, params, *args)


@pytest.fixture
def contract_calls(monkeypatch):
    """The ``from_jacobians`` flag of every block contraction."""
    calls = []
    original = kernels._block_fn.contract

    def spy(self, a, b, from_jacobians):
        calls.append(from_jacobians)
        return original(self, a, b, from_jacobians)

    monkeypatch.setattr(kernels._block_fn, "contract", spy)
    return calls


def test_neural_tangents_implementation_matches(gram_case):
    model, params, args, expected = gram_case
    assert_close_relative(entk_gram(model, params, *args, implementation="neural_tangents"), expected, rtol=1e-4)


def test_blocked_equals_unblocked(gram_case, contract_calls):
    model, params, args, expected = gram_case
    blocked = entk_gram(model, params, *args, block_size=3)
    # 3 row blocks: symmetric, the 6 pairs on and above the diagonal; with x2, 3 x 2 pairs
    assert len(contract_calls) == 6 and all(contract_calls)
    assert_close_relative(blocked, expected, rtol=1e-5)
    if len(args) == 1:
        np.testing.assert_array_equal(blocked, blocked.T)


def test_memory_bound_recomputes_jacobians(gram_case, contract_calls):
    model, params, args, expected = gram_case
    recomputed = entk_gram(model, params, *args, block_size=3, memory_bytes=1)
    assert len(contract_calls) == 6 and not any(contract_calls)  # Jacobians recomputed per pair
    assert_close_relative(recomputed, expected, rtol=1e-5)


def test_unknown_implementation(standard_network):
    model, params, shape = standard_network
    with pytest.raises(ValueError, match="known: jacobian, neural_tangents"):
        entk_gram(model, params, inputs(2, shape), implementation="autodiff")


def test_block_size_for_memory():
    assert kernels.block_size_for(1000, memory_bytes=32 * 1000 * 100) == 100
    assert kernels.block_size_for(10**9, memory_bytes=1) == 16
    assert kernels.block_size_for(1, memory_bytes=10**12) == 4096


# --- build_model and the registry ------------------------------------------------------

def test_unknown_architecture_lists_known_names():
    with pytest.raises(UnknownNameError) as info:
        build_model("transformer", NUM_OUTPUTS)
    message = str(info.value)
    assert message == f"unknown architecture 'transformer'; known: {', '.join(ARCHITECTURE_NAMES)}"
    assert "\n" not in message


@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_unknown_parameterization(name):
    with pytest.raises(ValueError, match="unknown parameterization 'mup'; known: standard, ntk"):
        build_model(name, NUM_OUTPUTS, parameterization="mup")


@pytest.fixture
def scratch_architectures(monkeypatch):
    """Registrations made during the test are dropped afterwards."""
    monkeypatch.setattr(ARCHITECTURES, "_entries", dict(ARCHITECTURES._entries))


def test_register_architecture(scratch_architectures):
    def toy_twin(num_outputs, width=4, parameterization="standard"):
        return None

    @register_architecture("toy_linear", input_kind="vector", twin=toy_twin)
    def toy_linear(num_outputs, width=4, parameterization="standard"):
        return nn.Dense(num_outputs)

    assert "toy_linear" in ARCHITECTURES.names() and "toy_linear" in ARCHITECTURES
    entry = ARCHITECTURES.get("toy_linear")
    assert entry.build is toy_linear and entry.twin is toy_twin
    model = build_model("toy_linear", 2)
    assert isinstance(model, nn.Dense) and model.features == 2
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("toy_linear")(toy_linear)
