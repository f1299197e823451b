"""Empirical NTK Gram matrices, computed in blocks so that memory stays bounded.

The kernel is logit-summed: K(x, x') = ⟨∇θ Σ_k f_k(x), ∇θ Σ_k f_k(x')⟩, the NTK of the
scalar function Σ_k f_k, used for every output. Two implementations give the same Gram:

* ``"jacobian"`` (default): per-sample gradients of the summed logits, flattened into a
  Jacobian block (rows × parameters), then one matrix product per block pair. Faster on
  CPU for the registered networks (``ntkbench bench``-style measurement in the README).
* ``"neural_tangents"``: neural-tangents' Jacobian-contraction ``empirical_ntk_fn``, kept as
  the oracle for tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

IMPLEMENTATIONS = ("jacobian", "neural_tangents")
DEFAULT_MEMORY_BYTES = 2 * 1024**3


def summed_logits(model):
    """f(params, x) → Σ_k f_k(x), one scalar per input row."""
    return lambda params, x: jnp.sum(model.apply(params, x), axis=-1)


def jacobian_fn(model):
    """jit-compiled (params, x_block) → (rows, num_params) Jacobian of the summed logits."""
    f = summed_logits(model)

    def one_row(params, xi):
        grads = jax.grad(lambda p: f(p, xi[None])[0])(params)
        return ravel_pytree(grads)[0]

    return jax.jit(jax.vmap(one_row, in_axes=(None, 0)))


def block_size_for(num_params: int, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> int:
    """Rows per Jacobian block so that two float32 blocks stay within ``memory_bytes``/4."""
    return int(max(16, min(4096, memory_bytes // (4 * 4 * 2 * max(num_params, 1)))))


def entk_gram(model, params, x1: np.ndarray, x2: np.ndarray | None = None, *,
              implementation: str = "jacobian", block_size: int | None = None,
              memory_bytes: int = DEFAULT_MEMORY_BYTES, description: str = "eNTK") -> np.ndarray:
    """Logit-summed eNTK between the rows of ``x1`` and ``x2`` (default: x1), as float64.

    Jacobian blocks are kept when all of them fit in ``memory_bytes`` (then each block is
    computed once); otherwise they are recomputed per block pair.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown eNTK implementation {implementation!r}; "
                         f"known: {', '.join(IMPLEMENTATIONS)}")
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    num_params = ravel_pytree(params)[0].size
    bs = block_size or block_size_for(num_params, memory_bytes)
    rows = [slice(i, min(i + bs, len(x1))) for i in range(0, len(x1), bs)]
    cols = rows if symmetric else [slice(i, min(i + bs, len(x2))) for i in range(0, len(x2), bs)]
    block = _GramBlocks(model, params, implementation)
    keep = implementation == "jacobian" and (len(x1) + len(x2)) * num_params * 4 <= memory_bytes
    cache: dict = {}

    def jac(x, s, side):
        if not keep:
            return jnp.asarray(x[s])
        key = ("x1" if symmetric else side, s.start)
        if key not in cache:
            cache[key] = block.jacobian(jnp.asarray(x[s]))
        return cache[key]

    gram = np.empty((len(x1), len(x2)), dtype=np.float64)
    pairs = [(r, c) for i, r in enumerate(rows) for j, c in enumerate(cols) if not symmetric or j >= i]
    for r, c in tqdm(pairs, desc=description, leave=False, disable=None):
        value = np.asarray(block.contract(jac(x1, r, "x1"), jac(x2, c, "x2"), keep), dtype=np.float64)
        gram[r, c] = value
        if symmetric:
            gram[c, r] = value.T
    return gram


class _GramBlocks:
    """One block of the Gram, from inputs (or from Jacobian blocks already computed)."""

    def __init__(self, model, params, implementation: str):
        self.params = params
        if implementation == "jacobian":
            jac = jacobian_fn(model)
            self.jacobian = lambda xb: jac(params, xb)
            self._contract = jax.jit(lambda a, b: a @ b.T)
        else:
            from ntkbench.nt_compat import nt

            f = lambda p, x: summed_logits(model)(p, x)[:, None]  # noqa: E731
            ntk = nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0,
                                      implementation=nt.NtkImplementation.JACOBIAN_CONTRACTION)
            self._ntk = jax.jit(lambda a, b: ntk(a, b, params))
            self.jacobian = None

    def contract(self, a, b, from_jacobians: bool):
        if self.jacobian is None:
            return self._ntk(a, b)
        if not from_jacobians:
            a, b = self.jacobian(a), self.jacobian(b)
        return self._contract(a, b)


def infinite_ntk_gram(twin, x1: np.ndarray, x2: np.ndarray | None = None, *,
                      batch_size: int = 128) -> np.ndarray:
    """Analytic infinite-width NTK of a stax twin (one output), in blocks via ``nt.batch``.

    nt.batch needs blocks that divide both sizes, so each side is padded with copies of its
    first row up to a multiple of the block size and the padding is cut off afterwards."""
    from ntkbench.nt_compat import nt

    x1 = twin.prepare(np.asarray(x1))
    x2 = x1 if x2 is None else twin.prepare(np.asarray(x2))
    size = min(batch_size, max(len(x1), len(x2)))
    kernel_fn = nt.batch(twin.kernel_fn, batch_size=size, store_on_device=False)
    gram = kernel_fn(_pad_rows(x1, size), _pad_rows(x2, size), "ntk")
    return np.asarray(gram, dtype=np.float64)[:len(x1), :len(x2)]


def _pad_rows(x: np.ndarray, multiple: int) -> np.ndarray:
    """x with copies of its first row appended up to a multiple of ``multiple`` rows."""
    extra = -len(x) % multiple
    return np.concatenate([x, np.repeat(x[:1], extra, axis=0)]) if extra else x


def kernel_distance(k1: np.ndarray, k2: np.ndarray) -> float:
    """S(K1, K2) = 1 − ⟨K1, K2⟩_F / (‖K1‖_F ‖K2‖_F) (Fort et al. 2020): 0 for proportional kernels."""
    k1, k2 = np.asarray(k1, dtype=np.float64), np.asarray(k2, dtype=np.float64)
    return float(1.0 - np.sum(k1 * k2) / (np.linalg.norm(k1) * np.linalg.norm(k2)))
