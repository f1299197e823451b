"""Kernel Gram matrices: the empirical NTK in memory-bounded blocks, the analytic
infinite-width NTK of a stax twin, and the distance between two kernels.

The eNTK is logit-summed: K(x, x') = ⟨∇θ Σ_k f_k(x), ∇θ Σ_k f_k(x')⟩, the NTK of the
scalar function Σ_k f_k, used for every output. How a block is computed is up to an
engine of :mod:`ntkbench.gram_engines` (Jacobian products, structured derivatives, or
neural-tangents' Jacobian contraction as the oracle); all give the same Gram.
"""

from __future__ import annotations

import math
import os
import warnings

import jax
import numpy as np
from tqdm.auto import tqdm

from ntkbench.gram_engines import make_engine  # (sets XLA flags before jax starts)

#: the share of a device's free memory an eNTK Gram budgets for its Jacobian blocks (kept
#: ones included). The rest is headroom for what the budget does not count: the per-sample
#: gradients' temporaries while a block is computed (a CNN's activations: a few times its
#: Jacobian rows), the kernel blocks, and on a CPU the float64 Gram itself.
MEMORY_FRACTION = 0.5
MIN_BLOCK_ROWS = 16
#: a symmetric Gram whose Jacobian is resident is cut into at least this many blocks a side
#: (of at least MIN_TILE_ROWS rows): the products on and above the diagonal then cost 5/8 of
#: a whole n×n product (XLA has no symmetric rank-k product), at no recomputation
SYMMETRIC_TILES = 4
MIN_TILE_ROWS = 256


def free_memory(devices=None) -> int:
    """Free bytes on the fullest of ``devices`` (default: the local devices): an
    accelerator's allocator limit less what it holds (``memory_stats()``); for CPU devices,
    which have no such statistics, the host's available memory, shared among the CPU
    devices used and among the pytest-xdist workers of the run."""
    free = [_allocator_free(device) for device in devices or jax.local_devices()]
    if None in free:
        workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
        free.append(host_available_memory() // (free.count(None) * workers))
    return max(0, min(f for f in free if f is not None))


def _allocator_free(device) -> int | None:
    """bytes_limit − bytes_in_use of a device's allocator; None for one without statistics."""
    stats = device.memory_stats()
    return stats["bytes_limit"] - stats.get("bytes_in_use", 0) if stats and "bytes_limit" in stats else None


def host_available_memory() -> int:
    """Bytes the host can give without swapping (psutil's ``available``; free pages without it)."""
    try:
        import psutil
    except ImportError:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.virtual_memory().available)


def device_memory_budget(devices=None, fraction: float = MEMORY_FRACTION) -> int:
    """Bytes per device an eNTK Gram may fill with Jacobian blocks: ``fraction`` of
    :func:`free_memory` (the fullest device's)."""
    return int(fraction * free_memory(devices))


def max_block_rows(memory_bytes: int) -> int:
    """The largest block: 16 float32 b×b kernel temporaries within ``memory_bytes`` (1/16 of
    the budget each; 5,792 rows in 2 GiB, 28,000 in 50 GB). It scales with the device: past a
    few thousand rows a product runs at the device's full rate either way, but larger blocks
    mean fewer Jacobian recomputations when the Jacobian is not resident."""
    return max(MIN_BLOCK_ROWS, math.isqrt(max(memory_bytes, 0) // (4 * 16)))


def block_size_for(row_floats: int, memory_bytes: int | None = None) -> int:
    """Rows per block so that two float32 blocks of ``row_floats`` per row stay within a
    quarter of ``memory_bytes`` (default: :func:`device_memory_budget`), at most
    :func:`max_block_rows` and at least ``MIN_BLOCK_ROWS``."""
    memory = device_memory_budget() if memory_bytes is None else memory_bytes
    rows = min(max_block_rows(memory), memory // (4 * 4 * 2 * max(row_floats, 1)))
    return int(max(MIN_BLOCK_ROWS, rows))


def entk_gram(model, params, x1: np.ndarray, x2: np.ndarray | None = None, *,
              implementation: str = "auto", precision: str = "float32", block_size: int | None = None,
              memory_bytes: int | None = None, devices=None, description: str = "eNTK") -> np.ndarray:
    """Logit-summed eNTK between the rows of ``x1`` and ``x2`` (default: x1), as float64.

    ``implementation``: an engine of :mod:`ntkbench.gram_engines` (``auto`` by default);
    ``precision``: float32, tf32 or bf16 matrix products. Blocks have ``block_size`` rows,
    by default as many as a per-device budget of ``memory_bytes`` allows (default: sized
    from the devices' free memory, :func:`device_memory_budget`); a block that runs out of
    memory is retried at half the size. Jacobian blocks (or layer factors) stay resident
    while they fit in the budget (each is then computed once); the others are recomputed
    when needed. If the engine ``auto`` picked fails other than by running out of memory
    (the structured engine relies on jax internals), the Jacobian engine is used.
    """
    example = np.asarray(x1[:1])
    engine = make_engine(model, params, implementation, precision, devices, example)
    if memory_bytes is None:
        memory_bytes = device_memory_budget(getattr(engine, "placement", devices))
    size = block_size or _default_block(engine, memory_bytes, x1, x2)
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
                size = block_size or _default_block(engine, memory_bytes, x1, x2)
            else:
                raise


def _default_block(engine, memory_bytes: int, x1, x2) -> int:
    """Rows per block: two Jacobian blocks in a quarter of the budget (times the devices), and
    ``SYMMETRIC_TILES`` a side of a symmetric Gram whose Jacobian is resident; or, for an
    engine without Jacobians, room for 16 block-sized kernel temporaries."""
    columns = len(x1 if x2 is None else x2)
    if not engine.keeps_jacobians:
        return int(max(MIN_BLOCK_ROWS, memory_bytes // (4 * 16 * max(columns, 1))))
    size = block_size_for(engine.row_floats, memory_bytes) * engine.devices
    if x2 is None and columns * engine.row_floats * 4 <= memory_bytes * engine.devices:
        size = min(size, max(MIN_TILE_ROWS, -(-columns // SYMMETRIC_TILES)))
    return size


def out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is a host or device allocation failure."""
    return isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in str(exc) or "Out of memory" in str(exc)


def _slices(length: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, length)) for i in range(0, length, size)]


def resident_blocks(blocks: list[slice], row_bytes: int, budget: int, transient: int) -> set[int]:
    """Which of the column ``blocks`` stay resident, the most reused (the last) first: all
    of them if they fit in ``budget`` bytes, else as many as fit beside ``transient`` bytes
    of blocks computed on the fly."""
    sizes = [(s.stop - s.start) * row_bytes for s in blocks]
    room = budget if sum(sizes) <= budget else budget - transient
    kept = set()
    for j in reversed(range(len(blocks))):
        if sizes[j] <= room:
            kept.add(j)
            room -= sizes[j]
    return kept


def _blocked_gram(engine, x1, x2, size: int, memory_bytes: int, description: str) -> np.ndarray:
    """The Gram in row-major block pairs (on and above the diagonal when symmetric). A row
    block is computed once and held through its row; a column block once if it is resident
    (:func:`resident_blocks`), else each time a row needs it. A symmetric Gram's row blocks
    are its column blocks: its inputs count once against the budget."""
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    rows, cols = _slices(len(x1), size), _slices(len(x2), size)
    kept, cache = set(), {}
    if engine.keeps_jacobians:
        block_bytes = size * engine.row_floats * 4
        held = 0 if symmetric else block_bytes  # x1's row block, beside the columns
        kept = resident_blocks(cols, engine.row_floats * 4, memory_bytes * engine.devices - held,
                               transient=2 * block_bytes - held)  # and blocks computed on the fly

    def column(j):
        if j not in cache:
            block = engine.jacobian(x2[cols[j]])
            if j not in kept:
                return block
            cache[j] = block
        return cache[j]

    if len(rows) == len(cols) == 1:  # one block: no copy into a second n×n array
        a = column(0) if symmetric else engine.jacobian(x1)
        return engine.block(a, a if symmetric else column(0))
    gram = np.empty((len(x1), len(x2)), dtype=np.float64)
    with tqdm(total=len(rows) * (len(rows) + 1) // 2 if symmetric else len(rows) * len(cols),
              desc=description, leave=False, disable=None) as progress:
        for i, r in enumerate(rows):
            a = column(i) if symmetric else engine.jacobian(x1[r])
            for j in range(i if symmetric else 0, len(cols)):
                value = engine.block(a, a if symmetric and i == j else column(j))  # same block: symmetric kernel
                gram[r, cols[j]] = value
                if symmetric:
                    gram[cols[j], r] = value.T
                progress.update()
            if symmetric:
                cache.pop(i, None)  # a symmetric Gram's block i is not needed past its row
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
