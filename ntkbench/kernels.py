"""Kernel Gram matrices: the empirical NTK in memory-bounded blocks, the analytic
infinite-width NTK of a stax twin, and the distance between two kernels.

The eNTK is logit-summed: K(x, x') = ⟨∇θ Σ_k f_k(x), ∇θ Σ_k f_k(x')⟩, the NTK of the
scalar function Σ_k f_k, used for every output. How a block is computed is up to an
engine of :mod:`ntkbench.gram_engines` (Jacobian products, structured derivatives, or
neural-tangents' Jacobian contraction as the oracle); all give the same Gram.
"""

from __future__ import annotations

import warnings

import numpy as np
from tqdm.auto import tqdm

from ntkbench.gram_engines import make_engine

DEFAULT_MEMORY_BYTES = 2 * 1024**3


def block_size_for(row_floats: int, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> int:
    """Rows per block so that two float32 blocks of ``row_floats`` per row stay within
    ``memory_bytes``/4."""
    return int(max(16, min(4096, memory_bytes // (4 * 4 * 2 * max(row_floats, 1)))))


def entk_gram(model, params, x1: np.ndarray, x2: np.ndarray | None = None, *,
              implementation: str = "auto", precision: str = "float32", block_size: int | None = None,
              memory_bytes: int = DEFAULT_MEMORY_BYTES, devices=None, description: str = "eNTK") -> np.ndarray:
    """Logit-summed eNTK between the rows of ``x1`` and ``x2`` (default: x1), as float64.

    ``implementation``: an engine of :mod:`ntkbench.gram_engines` (``auto`` by default);
    ``precision``: float32, tf32 or bf16 matrix products. Blocks have ``block_size`` rows,
    by default as many as a ``memory_bytes`` budget allows; a block that runs out of memory
    is retried at half the size. Jacobian blocks (or layer factors) are kept when all of them
    fit in the budget (then each is computed once); otherwise they are recomputed per block
    pair. If the engine ``auto`` picked fails other than by running out of memory (the
    structured engine relies on jax internals), the Jacobian engine is used.
    """
    columns = len(x1) if x2 is None else len(x2)
    example = np.asarray(x1[:1])
    engine = make_engine(model, params, implementation, precision, devices, example)
    size = block_size or _default_block(engine, memory_bytes, columns)
    while True:
        try:
            return _blocked_gram(engine, x1, x2, size, memory_bytes, description)
        except Exception as exc:  # noqa: BLE001  (re-raised unless out of memory or a failing engine)
            if out_of_memory(exc) and size > 1:
                warnings.warn(f"eNTK block of {size} rows ran out of memory; retrying with {size // 2}")
                size //= 2
            elif implementation == "auto" and engine.name != "jacobian":
                warnings.warn(f"{engine.name} eNTK failed ({type(exc).__name__}: {exc}); using the Jacobian engine")
                engine = make_engine(model, params, "jacobian", precision, devices, example)
                size = block_size or _default_block(engine, memory_bytes, columns)
            else:
                raise


def _default_block(engine, memory_bytes: int, columns: int) -> int:
    """Rows per block: two Jacobian blocks in a quarter of the budget (times the devices), or,
    for an engine without Jacobians, room for 16 block-sized kernel temporaries."""
    if engine.keeps_jacobians:
        return block_size_for(engine.row_floats, memory_bytes) * engine.devices
    return int(max(16, memory_bytes // (4 * 16 * max(columns, 1))))


def out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is a host or device allocation failure."""
    return isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in str(exc) or "Out of memory" in str(exc)


def _blocked_gram(engine, x1, x2, size: int, memory_bytes: int, description: str) -> np.ndarray:
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    rows = [slice(i, min(i + size, len(x1))) for i in range(0, len(x1), size)]
    cols = rows if symmetric else [slice(i, min(i + size, len(x2))) for i in range(0, len(x2), size)]
    keep = engine.keeps_jacobians and (len(x1) + len(x2)) * engine.row_floats * 4 <= memory_bytes
    kept: dict = {}

    def side(x, s, name):
        if not engine.keeps_jacobians:
            return engine.jacobian(x[s])
        key = ("x1" if symmetric else name, s.start)
        if key not in kept:
            block = engine.jacobian(x[s])
            if not keep:
                return block
            kept[key] = block
        return kept[key]

    pairs = [(r, c) for i, r in enumerate(rows) for j, c in enumerate(cols) if not symmetric or j >= i]
    if len(pairs) == 1:  # one block: no copy into a second n×n array
        a = side(x1, rows[0], "x1")
        return engine.block(a, a if symmetric else side(x2, cols[0], "x2"))
    gram = np.empty((len(x1), len(x2)), dtype=np.float64)
    for r, c in tqdm(pairs, desc=description, leave=False, disable=None):
        a = side(x1, r, "x1")
        value = engine.block(a, a if symmetric and r == c else side(x2, c, "x2"))  # same block: symmetric kernel
        gram[r, c] = value
        if symmetric:
            gram[c, r] = value.T
    return gram


def infinite_ntk_gram(twin, x1: np.ndarray, x2: np.ndarray | None = None, *,
                      batch_size: int = 128, chunk: int = 1024) -> np.ndarray:
    """Analytic infinite-width NTK of a stax twin (one output), in blocks via ``nt.batch``.

    nt.batch needs blocks that divide both sizes, so each side is padded with copies of its
    first row up to a multiple of the block size and the padding is cut off afterwards. A
    symmetric Gram (``x2`` None) is computed in ``chunk``-row tiles on and above the
    diagonal only, and mirrored: about half the pairs of inputs."""
    from ntkbench.nt_compat import nt

    x1 = twin.prepare(np.asarray(x1))
    if x2 is None and len(x1) > chunk:
        tiles = _pad_rows(x1, chunk)
        count = len(tiles) // chunk
        kernel_fn = nt.batch(twin.kernel_fn, batch_size=min(batch_size, chunk), store_on_device=False)
        gram = np.empty((len(tiles), len(tiles)))
        for i in range(count):
            for j in range(i, count):
                rows, cols = slice(i * chunk, (i + 1) * chunk), slice(j * chunk, (j + 1) * chunk)
                gram[rows, cols] = np.asarray(kernel_fn(tiles[rows], tiles[cols], "ntk"), dtype=np.float64)
                gram[cols, rows] = gram[rows, cols].T
        return gram[:len(x1), :len(x1)]
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


def kernel_angle(k1: np.ndarray, k2: np.ndarray, centred: bool = False) -> float:
    """The angle arccos(1 − S(K1, K2)) between two kernels as vectors of the Frobenius inner
    product (radians), computed as 2·arcsin(‖u1 − u2‖/2) of the unit-norm kernels u, exact
    for small angles where S is quadratic. ``centred``: of the centred kernels HKH (the angle
    whose cosine is the kernels' CKA, Cortes et al. 2012)."""
    units = []
    for k in (k1, k2):
        k = np.asarray(k, dtype=np.float64)
        if centred:
            k = k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()
        units.append(k / np.linalg.norm(k))
    return float(2.0 * np.arcsin(min(1.0, np.linalg.norm(units[0] - units[1]) / 2)))
