"""Per-layer factors of the logit-summed eNTK for networks built from this project's layers.

One batched forward pass records each :class:`ScaledDense`/:class:`ScaledConv` layer's input
x, and one batched backward pass of Σ_i Σ_k f_k(x_i) gives each layer's output cotangent δ
(the gradient with respect to a zero added to the layer's output). Samples do not interact,
so both are per-sample. The weight gradient of sample i is the layer's multiplier times
x_i ⊗ δ_i (dense) or Σ_p patch_p(x_i) ⊗ δ_i[p] (convolution), hence:

* dense layers: ⟨∇f(a), ∇f(b)⟩ = (w² x_a·x_b + b²)(δ_a·δ_b) — no per-sample gradient is formed;
* convolutions: per-sample kernel gradients, one matrix product δᵀ·patches per sample, then
  one product of the flattened gradients of two blocks.

Only public jax and flax APIs are used (``jax.vjp``, ``flax.linen.intercept_methods``).
A network with other parameters, or one that applies a layer twice, is unsupported.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import flax.linen as nn
from ntkbench import _env  # noqa: F401  (XLA flags before jax starts)
import jax
import jax.numpy as jnp
import numpy as np

from ntkbench.models.layers import ScaledConv, ScaledDense, multipliers


#: samples per step of the per-sample gradient loop: one at a time on a CPU (a batched
#: product there is ~2.5× slower, measured), a batch on accelerators (fewer, larger kernels)
_SAMPLES_PER_STEP = {"gpu": 64, "cuda": 64, "tpu": 64}


class UnsupportedNetworkError(ValueError):
    """The network has parameters outside ScaledDense/ScaledConv layers or reuses a layer."""


class Layer(NamedTuple):
    path: str
    kernel_size: tuple[int, ...] | None  # None: dense
    w_mul: float
    b_mul: float
    row_floats: int  # floats per sample in this layer's factors


def _forward(model, params, x, perturbations=None, found=None):
    """(Σ of all logits, ({layer path: input}, {layer path: output})), with
    ``perturbations[path]`` added to each layer's output; ``found`` collects a
    :class:`Layer` and its parameter count per path."""
    inputs, outputs = {}, {}

    def intercept(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name != "__call__" or type(module) not in (ScaledDense, ScaledConv):
            return out  # (a subclass may compute something else: its parameters count as uncovered)
        path = "/".join(module.path)
        if path in inputs:
            raise UnsupportedNetworkError(f"layer {path} is applied more than once")
        inputs[path], outputs[path] = args[0], out
        if found is not None:
            found[path] = (_describe(module, args[0], out, path),
                           sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(module.variables)))
        return out if perturbations is None else out + perturbations[path]

    with nn.intercept_methods(intercept):
        total = jnp.sum(model.apply(params, x))
    return total, (inputs, outputs)


def _describe(module, x, out, path: str) -> Layer:
    conv = type(module) is ScaledConv
    if x.ndim != (2 + len(module.kernel_size) if conv else 2):
        raise UnsupportedNetworkError(f"layer {path} gets inputs of shape {x.shape[1:]}")
    fan_in = x.shape[-1] * (math.prod(module.kernel_size) if conv else 1)
    w_mul, b_mul = multipliers(module, fan_in)
    row_floats = fan_in * out.shape[-1] + out.shape[-1] if conv else fan_in + 1 + out.shape[-1]
    return Layer(path, tuple(module.kernel_size) if conv else None, w_mul, b_mul, row_floats)


def discover(model, params, x) -> tuple[Layer, ...]:
    """The network's layers, in call order, checked to hold every parameter. They depend on
    the model and the shapes only, so each (model, shapes) is traced once per process."""
    leaves = tuple((np.shape(leaf), str(leaf.dtype)) for leaf in jax.tree.leaves(params))
    key = (model, jax.tree.structure(params), leaves, np.shape(x)[1:], str(x.dtype))
    if key not in _DISCOVERED:
        _DISCOVERED[key] = _discover(model, params, x)
    return _DISCOVERED[key]


_DISCOVERED: dict = {}


def _discover(model, params, x) -> tuple[Layer, ...]:
    found: dict = {}
    jax.eval_shape(lambda p, xx: _forward(model, p, xx, found=found)[0], params, x)
    covered = sum(count for _, count in found.values())
    total = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
    if covered != total:
        raise UnsupportedNetworkError(f"{total - covered} of {total} parameters are outside "
                                      "ScaledDense/ScaledConv layers")
    return tuple(layer for layer, _ in found.values())


def conv_kernel_gradients(x: jax.Array, delta: jax.Array, kernel_size: tuple[int, ...]) -> jax.Array:
    """Per-sample kernel gradients (n, D, prod(kernel_size)·C) — each the transpose of the
    HWIO kernel's gradient, flattened over HWI — of a stride-1 'SAME' convolution with
    inputs x (n, *spatial, C) and output cotangents δ (n, *spatial, D)."""
    spatial = x.shape[1:-1]
    pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_size]

    def one(sample):
        xi, di = sample
        padded = jnp.pad(xi, (*pads, (0, 0)))
        patches = jnp.concatenate([padded[tuple(slice(o, o + s) for o, s in zip(offset, spatial))]
                                   for offset in itertools.product(*map(range, kernel_size))], axis=-1)
        return di.reshape(-1, di.shape[-1]).T @ patches.reshape(-1, patches.shape[-1])  # faster than patchesᵀ δ

    return jax.lax.map(one, (x, delta), batch_size=_SAMPLES_PER_STEP.get(jax.default_backend()))


@functools.cache
def factors_fn(model, layers: tuple[Layer, ...]):
    """jit-compiled (params, x_block) → factors: per convolution its flattened per-sample
    kernel and bias gradients (rows, ·), and per dense layer (x with its multiplier and a
    bias column, δ)."""

    def factors(params, x):
        outputs = jax.eval_shape(lambda p, xx: _forward(model, p, xx)[1][1], params, x)
        zeros = {path: jnp.zeros(shape.shape, shape.dtype) for path, shape in outputs.items()}
        total, pullback, (inputs, _) = jax.vjp(lambda e: _forward(model, params, x, e), zeros, has_aux=True)
        (deltas,) = pullback(jnp.ones_like(total))
        conv, dense = [], []
        for layer in layers:
            xi, di = inputs[layer.path], deltas[layer.path]
            if layer.kernel_size is None:
                bias = jnp.full((len(xi), 1), layer.b_mul, xi.dtype)
                dense.append((jnp.concatenate([layer.w_mul * xi, bias], axis=1), di))
            else:
                grads = conv_kernel_gradients(xi, di, layer.kernel_size).reshape(len(xi), -1)
                conv += [layer.w_mul * grads, layer.b_mul * di.sum(axis=tuple(range(1, di.ndim - 1)))]
        return tuple(conv), tuple(dense)

    return jax.jit(factors)


def factor_product(a, b, matmul_t) -> jax.Array:
    """Gram block ⟨∇f(a_i), ∇f(b_j)⟩ from two blocks' factors; ``matmul_t(u, v)`` = u vᵀ."""
    (conv_a, dense_a), (conv_b, dense_b) = a, b
    gram = 0.0
    for ga, gb in zip(conv_a, conv_b):
        gram = gram + matmul_t(ga, gb)
    for (xa, da), (xb, db) in zip(dense_a, dense_b):
        gram = gram + matmul_t(xa, xb) * matmul_t(da, db)
    return gram
