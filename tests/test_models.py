"""ntkbench.models and the eNTK Gram of every registered architecture.

The common tests run on whatever ``ARCHITECTURES`` holds, so a newly registered network is
checked without new test code: every architecture is traced (init/apply shapes), and each
builder's smallest network is compiled and run: finite outputs, a symmetric PSD eNTK, and
the Gram equal to an explicit Jacobian product (float64). Architectures that share a
builder's code (myrtle5, 7 and 10) differ only in constants such as the depth. The
remaining tests check that ``entk_gram``'s implementations give the same Gram (its blocks
and memory bounds: test_kernels), and that each architecture's stax twin has, as its
analytic NTK, the limit of the flax model's eNTK.
"""

import functools
import inspect
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from ntkbench.gram_engines import jacobian_fn
from ntkbench.kernels import entk_gram, infinite_ntk_gram
from ntkbench.models import build_model
from ntkbench.models.layers import PARAMETERIZATIONS, StaxTwin, stax_conv, stax_dense
from ntkbench.nt_compat import nt, stax
from ntkbench.registry import ARCHITECTURES, UnknownNameError, register_architecture

ARCHITECTURE_NAMES = ARCHITECTURES.names()


def one_per_builder(names: list[str]) -> list[str]:
    """The first, in natural order, of the architectures whose builders share their code
    (myrtle7 and myrtle10 are myrtle5's builder at other depths, and their twins match them
    by the cheap test of the twin's function): the costly numerical checks run once per
    builder, on its smallest network."""
    seen, kept = set(), []
    for name in sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]):
        build = ARCHITECTURES.get(name).build
        code = getattr(build, "__code__", build)  # a class or partial: itself
        if code not in seen:
            seen.add(code)
            kept.append(name)
    return kept


BUILDER_NAMES = one_per_builder(ARCHITECTURE_NAMES)
# The costly checks of the NTK parameterization: the MLP and the 1-D CNN use every layer that
# carries a parameterization (ScaledDense, ScaledConv: one fan-in rule for 1-D and 2-D
# kernels), so another builder of those layers gets them at the standard one only.
NTK_CHECKED = ["mlp", "cnn1d"]


def costly_cases(names: list[str]) -> list:
    """(name, parameterization) of the costly checks of ``names``' builders."""
    return [pytest.param(name, parameterization, id=f"{name}-{parameterization}")
            for name in one_per_builder(names) for parameterization in PARAMETERIZATIONS
            if parameterization == "standard" or name in NTK_CHECKED]

NUM_OUTPUTS = 3
INPUT_SHAPES = {"vector": (12,), "image": (4, 4, 3)}  # per input_kind; a new kind needs an entry here
SMALL = {"width": 8, "depth": 1, "kernel_size": 3}  # passed where a factory accepts them


def small_kwargs(build) -> dict:
    accepted = inspect.signature(build).parameters
    return {key: value for key, value in SMALL.items() if key in accepted}


def quick_init(model, key, sample):
    """``model.init``, compiled by unoptimised XLA: ~4x faster to compile (the parameters may
    differ from an optimised init's in the last bit, which no test here depends on)."""
    return jax.jit(model.init, compiler_options={"xla_backend_optimization_level": 0})(key, sample)


@functools.cache
def make(name: str, parameterization: str = "standard"):
    """(model, params, input shape) of a small instance of a registered architecture."""
    arch = ARCHITECTURES.get(name)
    model = arch.build(NUM_OUTPUTS, parameterization=parameterization, **small_kwargs(arch.build))
    shape = INPUT_SHAPES[arch.input_kind]
    params = quick_init(model, jax.random.PRNGKey(0), jnp.zeros((1, *shape), jnp.float32))
    return model, params, shape


def make64(name: str, parameterization: str = "standard"):
    """``make``'s network with its parameters in float64 (one compiled init serves both)."""
    model, params, shape = make(name, parameterization)
    return model, jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), params), shape


def inputs(n: int, shape, seed: int = 0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(dtype)


def assert_close_relative(actual, expected, rtol: float) -> None:
    """Equal up to ``rtol`` times the largest entry (small off-diagonal entries included)."""
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.fixture(scope="module", params=BUILDER_NAMES)
def network(request):
    """Each builder's smallest architecture at the standard parameterization: at the NTK one
    it computes the same function (below), and its eNTK is checked against the Jacobian
    product."""
    return make(request.param)


def test_registered_architectures():
    assert {"mlp", "cnn1d"} <= set(ARCHITECTURE_NAMES)


# --- common tests: every registered architecture, compiled once per builder -------------

@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_every_architecture_maps_a_batch_to_logits(name):
    """Traced, not compiled: each architecture (myrtle7 and myrtle10 included, whose builder
    is compiled and run below as myrtle5) builds, initialises and maps inputs to logits."""
    arch = ARCHITECTURES.get(name)
    model = arch.build(NUM_OUTPUTS, **small_kwargs(arch.build))
    x = jax.ShapeDtypeStruct((5, *INPUT_SHAPES[arch.input_kind]), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    out = jax.eval_shape(model.apply, params, x)
    assert out.shape == (5, NUM_OUTPUTS) and out.dtype == jnp.float32


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


@pytest.mark.parametrize("name", BUILDER_NAMES)
def test_parameterizations_agree_at_init(name):
    """Same key, same function: NTK parameterization only moves the scale out of the init."""
    (standard, standard_params, shape), (ntk, ntk_params, _) = (make(name, p) for p in ("standard", "ntk"))
    x = inputs(4, shape)
    np.testing.assert_allclose(ntk.apply(ntk_params, x), standard.apply(standard_params, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, parameterization", costly_cases(ARCHITECTURE_NAMES))
def test_entk_equals_explicit_jacobian_product(name, parameterization):
    """In float64: K(x1, x2) = J(x1) J(x2)ᵀ, J from jacrev of the summed logits."""
    with jax.enable_x64(True):
        model, params, shape = make64(name, parameterization)
        flat, unravel = ravel_pytree(params)
        assert flat.dtype == jnp.float64
        x = inputs(8, shape, seed=1, dtype=np.float64)
        x1, x2 = x[:5], x[5:]
        summed_logits = lambda p: jnp.sum(model.apply(unravel(p), x), axis=-1)  # noqa: E731
        jac = np.asarray(jax.jit(jax.jacrev(summed_logits))(flat))
        assert jac.shape == (8, flat.size)
        j1, j2 = jac[:5], jac[5:]
        for engine in ("layerwise", "jacobian", "structured"):
            assert_close_relative(entk_gram(model, params, x1, implementation=engine), j1 @ j1.T, rtol=1e-10)
            assert_close_relative(entk_gram(model, params, x1, x2, implementation=engine), j1 @ j2.T, rtol=1e-10)


# --- entk_gram: implementations (blocks and memory bounds: test_kernels) ----------------

@pytest.fixture(scope="module", params=[False, True], ids=["symmetric", "x2"])
def gram_case(network, request):
    """(model, params, entk_gram args, Gram from the default single-block computation)."""
    model, params, shape = network
    args = (inputs(7, shape, seed=5),) + ((inputs(5, shape, seed=6),) if request.param else ())
    return model, params, args, entk_gram(model, params, *args)


def test_neural_tangents_engine_gives_the_same_gram(gram_case):
    """The engine of neural-tangents against the default one (the other engines are checked
    against the Jacobian product above, and in float32 in test_gram_engines)."""
    model, params, args, expected = gram_case
    assert_close_relative(entk_gram(model, params, *args, implementation="neural_tangents"), expected, rtol=1e-4)


def test_unknown_implementation(network):
    model, params, shape = network
    with pytest.raises(ValueError, match="known: auto, layerwise, jacobian, structured, neural_tangents"):
        entk_gram(model, params, inputs(2, shape), implementation="autodiff")


# --- stax twins: the analytic NTK is the wide limit of the flax model's mean eNTK -------

TWIN_NAMES = [name for name in ARCHITECTURE_NAMES if ARCHITECTURES.get(name).twin is not None]
# The base width w of each architecture (compared with 4w; 16 for others): an architecture
# with a twin takes a ``width`` keyword, the size its infinite-width limit grows.
TWIN_WIDTHS = {"mlp": 32, "cnn1d": 8}
REPLICAS, MEMBERS = 8, 8  # 8 Monte-Carlo averages over 8 seeds each (64 initialisations in all)
TWIN_POINTS = 16


def converges(errors) -> bool:
    """The twin criterion on (error at w, error at 4w): the Monte-Carlo error falls roughly
    as 1/sqrt(width) (ratio about 0.5; measured 0.35-0.70 over 8 other draws per case), and
    is small at 4w (measured at most 0.09)."""
    return errors[1] < 0.75 * errors[0] and errors[1] < 0.12


def twin_kwargs(name: str, width: int) -> dict:
    return {**small_kwargs(ARCHITECTURES.get(name).build), "width": width}


@functools.cache
def monte_carlo_entk(name: str, parameterization: str, width: int):
    """(inputs, REPLICAS Monte-Carlo averages over MEMBERS seeds of the logit-summed eNTK
    divided by the number of outputs: the cross-output terms average out, leaving the
    one-output NTK), for fixed seeds. One compiled program maps over the 64 networks
    (``lax.map``: vmapping over convolution weights is slow on CPU)."""
    arch = ARCHITECTURES.get(name)
    shape = INPUT_SHAPES[arch.input_kind]
    x = inputs(TWIN_POINTS, shape, seed=3)
    model = arch.build(NUM_OUTPUTS, parameterization=parameterization, **twin_kwargs(name, width))
    # 64 calls, one compilation per model: unoptimised XLA compiles init in half the time
    init = jax.jit(model.init, compiler_options={"xla_backend_optimization_level": 0})
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(0), REPLICAS * MEMBERS))  # numpy: fast to iterate
    params = jax.tree.map(lambda *leaves: np.stack(leaves), *(init(key, x[:1]) for key in keys))
    jacobian = jacobian_fn(model)
    grams = jax.jit(lambda stacked: jax.lax.map(lambda p: (j := jacobian(p, x)) @ j.T, stacked))(params)
    members = np.asarray(grams, dtype=np.float64).reshape(REPLICAS, MEMBERS, TWIN_POINTS, TWIN_POINTS)
    return x, members.sum(axis=1) / (MEMBERS * NUM_OUTPUTS)


def twin_error(name: str, parameterization: str, width: int, twin=None) -> float:
    """Relative Frobenius error of the Monte-Carlo eNTK against the twin's analytic NTK
    (root mean square over the replicas, which steadies the width-to-width ratio)."""
    x, averages = monte_carlo_entk(name, parameterization, width)
    if twin is None:
        twin = ARCHITECTURES.get(name).twin(NUM_OUTPUTS, parameterization=parameterization,
                                            **twin_kwargs(name, width))
    analytic = infinite_ntk_gram(twin, x)
    return float(np.sqrt(np.mean(np.sum((averages - analytic) ** 2, axis=(1, 2)))) / np.linalg.norm(analytic))


def twin_errors(name: str, parameterization: str, twin_for=None) -> list[float]:
    """Errors at widths w and 4w; ``twin_for(parameterization, width)`` replaces the twin."""
    w = TWIN_WIDTHS.get(name, 16)
    return [twin_error(name, parameterization, width, twin_for and twin_for(parameterization, width))
            for width in (w, 4 * w)]


@pytest.mark.parametrize("name, parameterization", [
    *(pytest.param(name, "standard", id=f"{name}-standard") for name in TWIN_NAMES),
    *(pytest.param(name, "ntk", id=f"{name}-ntk") for name in one_per_builder(TWIN_NAMES))])
def test_twin_computes_the_module_function_with_its_parameters(name, parameterization):
    """Layer by layer the same network: the module's parameters, in creation order, put in
    the twin's weighted layers give the twin the module's outputs."""
    arch = ARCHITECTURES.get(name)
    kwargs = {"parameterization": parameterization, **twin_kwargs(name, 4)}
    model, twin = arch.build(NUM_OUTPUTS, **kwargs), arch.twin(NUM_OUTPUTS, **kwargs)
    x = inputs(5, INPUT_SHAPES[arch.input_kind], seed=9)
    params = quick_init(model, jax.random.PRNGKey(1), x[:1])["params"]
    slots = jax.eval_shape(lambda key: twin.init_fn(key, twin.prepare(x).shape)[1], jax.random.PRNGKey(0))
    layers = iter(params.values())
    twin_params = [(lambda layer, w, b: (layer["kernel"], layer["bias"].reshape(b.shape)))(next(layers), *slot)
                   if slot else slot for slot in slots]
    assert next(layers, None) is None  # every module layer has a twin layer
    assert_close_relative(jax.jit(twin.apply_fn)(twin_params, twin.prepare(x)),
                          jax.jit(model.apply)({"params": params}, x), rtol=1e-5)


@pytest.mark.parametrize("name, parameterization", costly_cases(TWIN_NAMES))
def test_monte_carlo_entk_approaches_the_twin_ntk(name, parameterization):
    errors = twin_errors(name, parameterization)
    assert converges(errors), f"errors at widths w, 4w: {errors}"


def _prepare_channels(x):
    return x.reshape(x.shape[0], x.shape[1], -1)


def mlp_without_hidden_layer(parameterization: str, width: int) -> StaxTwin:
    return StaxTwin(*stax.serial(stax.Flatten(), stax_dense(NUM_OUTPUTS, parameterization, w_std=1.0)))


def cnn1d_without_relu(parameterization: str, width: int) -> StaxTwin:
    layers = stax.serial(stax_conv(width, (SMALL["kernel_size"],), parameterization), stax.Flatten(),
                         stax_dense(NUM_OUTPUTS, parameterization, w_std=1.0))
    return StaxTwin(*layers, prepare=_prepare_channels)


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("name, wrong_twin", [
    pytest.param("mlp", mlp_without_hidden_layer, id="mlp-hidden-layer-dropped"),
    pytest.param("cnn1d", cnn1d_without_relu, id="cnn1d-relu-dropped"),
])
def test_twin_test_rejects_a_twin_with_a_layer_dropped(name, wrong_twin, parameterization):
    """The same samples against a wrong twin: the error stays large as width grows."""
    assert name in TWIN_NAMES and SMALL["depth"] == 1  # the twins above mirror depth-1 models
    errors = twin_errors(name, parameterization, wrong_twin)
    assert not converges(errors), errors
    assert min(errors) > 0.5, errors


@pytest.fixture
def batch_sizes(monkeypatch):
    """The batch size of every ``nt.batch`` call."""
    sizes, original = [], nt.batch

    def spy(kernel_fn, batch_size, **kwargs):
        sizes.append(batch_size)
        return original(kernel_fn, batch_size, **kwargs)

    monkeypatch.setattr(nt, "batch", spy)
    return sizes


@pytest.mark.parametrize("name", one_per_builder(TWIN_NAMES))
def test_infinite_ntk_gram_in_blocks_equals_the_whole_kernel(name, batch_sizes):
    """Sizes that no block size divides (13 x 7, a prime and a prime) are padded to whole
    blocks: blocks of 3 (asked for) or of 13 (asking for 256, more than either size);
    the Gram is the same as the unbatched kernel. In float64, so that the comparison sees
    the blocking alone: a ReLU layer's arc-cosine kernel at a point and itself, arccos(1 − ε)
    ≈ √(2ε), turns a rounding of ε into about √ε, which two compilations of the same
    formula round differently (measured on the MLP's diagonal: 5.8e-5 relative in float32,
    3.4e-9 in float64; √eps is 3.5e-4 and 1.5e-8)."""
    arch = ARCHITECTURES.get(name)
    twin = arch.twin(NUM_OUTPUTS, **small_kwargs(arch.build))
    shape = INPUT_SHAPES[arch.input_kind]
    with jax.enable_x64(True):
        x1, x2 = inputs(13, shape, seed=7, dtype=np.float64), inputs(7, shape, seed=8, dtype=np.float64)
        kernel_fn = jax.jit(twin.kernel_fn, static_argnames="get")  # jit: eager stax is slow
        whole = np.asarray(kernel_fn(twin.prepare(x1), twin.prepare(x2), get="ntk"))  # no nt.batch
        assert whole.dtype == np.float64
        for batch_size in (3, 256):
            gram = infinite_ntk_gram(twin, x1, x2, batch_size=batch_size)
            assert gram.shape == (13, 7) and gram.dtype == np.float64
            assert_close_relative(gram, whole, rtol=1e-7)
        small, large = (infinite_ntk_gram(twin, x1, batch_size=batch_size) for batch_size in (3, 256))
    assert batch_sizes == [3, 13, 3, 13]
    assert small.shape == (13, 13)
    assert_close_relative(small, large, rtol=1e-7)
    np.testing.assert_allclose(small, small.T, rtol=1e-7)


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


@pytest.mark.parametrize("name, layers", [
    ("mlp", ["ScaledDense_0", "ScaledDense_1", "ScaledDense_2"]),
    ("cnn1d", ["ScaledConv1D_0", "ScaledConv1D_1", "ScaledConv1D_2", "ScaledDense_0"]),
])
def test_layer_names_are_stable(name, layers):
    """flax derives each layer's initialisation from its name: renaming a layer changes every
    cached experiment and reference number of the network without changing its cache key."""
    model = ARCHITECTURES.get(name).build(NUM_OUTPUTS)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 40)))
    assert list(shapes["params"]) == layers


@pytest.mark.parametrize("name", ["mlp"])
def test_symmetric_infinite_ntk_gram_in_tiles_equals_the_whole_kernel(name):
    """A symmetric Gram larger than a tile is computed on and above the diagonal only (13
    rows in tiles of 4: the last tile padded) and mirrored: the same Gram as one pass (in
    float64, as in the test above: in float32 the diagonal differs by ~√eps)."""
    arch = ARCHITECTURES.get(name)
    twin = arch.twin(NUM_OUTPUTS, **small_kwargs(arch.build))
    with jax.enable_x64(True):
        x = inputs(13, INPUT_SHAPES[arch.input_kind], seed=9, dtype=np.float64)
        tiled = infinite_ntk_gram(twin, x, batch_size=2, chunk=4)
        whole = infinite_ntk_gram(twin, x, x, batch_size=13)
    assert tiled.shape == (13, 13) and np.array_equal(tiled, tiled.T)
    assert_close_relative(tiled, whole, rtol=1e-7)
