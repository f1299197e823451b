"""Engines that compute one block of the logit-summed eNTK Gram.

* ``layerwise`` — per-layer factors (layer inputs and output cotangents of one batched
  forward and backward pass, see :mod:`ntkbench.layer_factors`) for networks made of this
  project's dense and convolution layers; per-sample Jacobians only for convolutions.
* ``jacobian`` — per-sample gradients of the summed logits flattened into a Jacobian block
  (rows × parameters), then one matrix product per block pair, at a chosen precision;
  with more than one local device the rows of every block are split over the devices.
* ``structured`` — neural-tangents' structured derivatives (via ntkbench.nt_compat):
  per-layer factors instead of Jacobians, far cheaper for dense layers.
* ``neural_tangents`` — neural-tangents' Jacobian contraction: the oracle in tests.

``auto`` picks ``layerwise`` where it applies, else ``structured`` for networks whose
weights are all matrices (dense layers), else ``jacobian``. The Jacobian and layerwise
engines share the block and device logic: a block's "Jacobian" is any pytree of arrays
with one row per sample.
"""

from __future__ import annotations

import functools

from ntkbench import _env  # noqa: F401  (XLA flags before jax starts)
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ntkbench.layer_factors import UnsupportedNetworkError, discover, factor_product, factors_fn

ENGINES = ("auto", "layerwise", "jacobian", "structured", "neural_tangents")
#: matrix-product precision: full float32; TF32 (GPU tensor cores; float32 elsewhere);
#: bfloat16 inputs with float32 accumulation
PRECISIONS = {"float32": "highest", "tf32": "tensorfloat32", "bf16": "bfloat16"}


def summed_logits(model):
    """f(params, x) → Σ_k f_k(x), one scalar per input row."""
    return lambda params, x: jnp.sum(model.apply(params, x), axis=-1)


@functools.cache
def jacobian_fn(model):
    """jit-compiled (params, x_block) → (rows, num_params) Jacobian of the summed logits
    (one per model: flax modules hash by their fields, so equal models share compilations)."""
    f = summed_logits(model)

    def one_row(params, xi):
        grads = jax.grad(lambda p: f(p, xi[None])[0])(params)
        return ravel_pytree(grads)[0]

    return jax.jit(jax.vmap(one_row, in_axes=(None, 0)))


def check_choice(name: str, value: str, known) -> None:
    if value not in known:
        raise ValueError(f"unknown eNTK {name} {value!r}; known: {', '.join(known)}")


def resolve(engine: str, model, params, example) -> str:
    """The engine ``auto`` stands for, given the network and an input ``example`` batch."""
    check_choice("implementation", engine, ENGINES)
    if engine != "auto":
        return engine
    from ntkbench.nt_compat import STRUCTURED_DERIVATIVES

    try:
        discover(model, params, example)
        return "layerwise"
    except UnsupportedNetworkError:
        pass

    dense = all(np.ndim(leaf) <= 2 for leaf in jax.tree.leaves(params))
    return "structured" if dense and STRUCTURED_DERIVATIVES else "jacobian"


class JacobianEngine:
    """Jacobian blocks (``jacobian``), kept by the caller when they fit, and their products.

    With several devices, a block's rows are split over them: each device computes the
    Jacobian of its rows (async dispatch runs them side by side) and the product of its rows
    with the whole other block. Explicit placement rather than jit sharding: letting XLA's
    partitioner split per-sample gradients gives wrong values on jax 0.10.2."""

    keeps_jacobians = True
    name = "jacobian"

    def __init__(self, model, params, precision: str = "float32", devices=None):
        check_choice("precision", precision, PRECISIONS)
        self.placement = list(devices or jax.local_devices())
        self.devices = len(self.placement)
        self.precision = precision
        self.row_floats = sum(np.size(leaf) for leaf in jax.tree.leaves(params))
        self._jacobian = jacobian_fn(model)
        self._params = [jax.device_put(params, device) for device in self.placement]
        self._product = _product(precision)

    def jacobian(self, x: np.ndarray) -> list:
        """The Jacobian of a block of inputs, as one row chunk per device."""
        chunks = np.array_split(np.asarray(x), self.devices)
        with jax.default_matmul_precision(PRECISIONS[self.precision]):
            return [self._jacobian(params, jax.device_put(chunk, device))
                    for params, chunk, device in zip(self._params, chunks, self.placement) if len(chunk)]

    def block(self, a: list, b: list) -> np.ndarray:
        """A Gram block from two Jacobian blocks (each a list of row chunks)."""
        rows = []
        for chunk in a:
            device = _device_of(chunk)
            other = b[0] if len(b) == 1 and _device_of(b[0]) == device else \
                jax.tree.map(lambda *parts: jnp.concatenate(parts), *jax.device_put(b, device))
            rows.append(self._product(chunk, other))
        return np.concatenate([np.asarray(r, dtype=np.float64) for r in rows])


class LayerwiseEngine(JacobianEngine):
    """Per-layer factors instead of whole Jacobians (``layerwise``); raises
    :class:`UnsupportedNetworkError` for networks with other layers."""

    name = "layerwise"

    def __init__(self, model, params, example, precision: str = "float32", devices=None):
        super().__init__(model, params, precision, devices)
        layers = discover(model, params, example)
        self.row_floats = sum(layer.row_floats for layer in layers)
        self._jacobian = factors_fn(model, layers)
        self._product = _layerwise_product(precision)


def _device_of(block):
    """The device holding a (pytree) block."""
    (device,) = {device for leaf in jax.tree.leaves(block) for device in leaf.devices()}
    return device


def matmul_t(a, b, precision: str):
    """A Bᵀ at ``precision`` (bf16: bfloat16 inputs, float32 sums)."""
    if precision == "bf16":
        return jnp.matmul(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16).T, preferred_element_type=jnp.float32)
    return jnp.matmul(a, b.T, precision=PRECISIONS[precision])


@functools.cache
def _product(precision: str):
    """jit-compiled A Bᵀ of two Jacobian blocks at ``precision``."""
    return jax.jit(functools.partial(matmul_t, precision=precision))


@functools.cache
def _layerwise_product(precision: str):
    """jit-compiled Gram block of two blocks of layer factors at ``precision``."""
    return jax.jit(lambda a, b: factor_product(a, b, functools.partial(matmul_t, precision=precision)))


@functools.cache
def _kernel_fn(model, implementation: str):
    """jit-compiled neural-tangents eNTK function (x1, x2 or None, params) of a model."""
    from ntkbench.nt_compat import nt

    kinds = {"structured": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
             "neural_tangents": nt.NtkImplementation.JACOBIAN_CONTRACTION}
    f = lambda p, x: summed_logits(model)(p, x)[:, None]  # noqa: E731
    return jax.jit(nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0, implementation=kinds[implementation]))


class KernelFnEngine:
    """A neural-tangents empirical-NTK function applied to blocks of inputs (``structured``
    and ``neural_tangents``); Jacobians are never materialised."""

    keeps_jacobians = False

    def __init__(self, model, params, implementation: str, precision: str = "float32"):
        check_choice("precision", precision, PRECISIONS)
        self.name, self.params, self.precision = implementation, params, PRECISIONS[precision]
        self._ntk = _kernel_fn(model, implementation)

    def jacobian(self, x: np.ndarray):
        return jnp.asarray(x)  # the "Jacobian" of a block is its inputs

    def block(self, a, b) -> np.ndarray:
        """A Gram block from two input blocks (the same block: its symmetric kernel)."""
        with jax.default_matmul_precision(self.precision):
            return np.asarray(self._ntk(a, None if a is b else b, self.params), dtype=np.float64)


def make_engine(model, params, engine: str, precision: str = "float32", devices=None, example=None):
    """The engine for a network; ``example`` is an input batch (needed by ``auto`` and
    ``layerwise`` to find the layers)."""
    engine = resolve(engine, model, params, example)
    if engine == "layerwise":
        return LayerwiseEngine(model, params, example, precision, devices)
    if engine == "jacobian":
        return JacobianEngine(model, params, precision, devices)
    return KernelFnEngine(model, params, engine, precision)
