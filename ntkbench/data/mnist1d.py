"""MNIST-1D (Greydanus 2020), generated procedurally and cached on disk; never downloaded."""

from __future__ import annotations

import hashlib
import io
import json
import math
import random

import numpy as np

from ntkbench.data.splits import Splits, centred_one_hot
from ntkbench.registry import register_dataset
from ntkbench.storage import atomic_write_bytes, cache_root, locked, read_valid, require_writable

NUM_CLASSES = 10
# generation runs at ~2,500 samples per second on one core: a million takes ~7 minutes
MAX_SAMPLES = 1_000_000


def generation_args(num_samples: int, seed: int) -> dict:
    """mnist1d's default generation arguments, for ``num_samples`` and ``seed``, unsplit."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url")  # never used: generation is procedural
    args.update(num_samples=int(num_samples), seed=int(seed), train_split=1.0)
    return args


def generate(args: dict) -> tuple[np.ndarray, np.ndarray]:
    """Run ``mnist1d.data.make_dataset``; restores the global RNG state it reseeds."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return data["x"].astype(np.float32), data["y"].astype(np.int32)


def cached_pool(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The generated pool, from the cache when present (keyed by the generation args); a
    damaged cache file is named in a warning and generated again."""
    args = generation_args(num_samples, seed)
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_root() / "datasets" / f"mnist1d-{digest}.npz"
    with locked(path) as writable:
        stored = read_valid(path, lambda p: read_pool(p, args), "dataset cache file")
        if stored is not None:
            return stored
        require_writable(writable, path)
        x, y = generate(args)
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y, args=json.dumps(args))
        atomic_write_bytes(path, buffer.getvalue())
        return x, y


def read_pool(path, args: dict) -> tuple[np.ndarray, np.ndarray]:
    """A stored pool, checked against ``args``; ValueError when it is not the pool they make."""
    with np.load(path) as stored:
        x, y, stored_args = stored["x"], stored["y"], stored["args"]
    size = args["num_samples"]
    if stored_args.shape != () or json.loads(str(stored_args)) != json.loads(json.dumps(args)):
        raise ValueError("generated with other arguments")
    if x.dtype != np.float32 or x.ndim != 2 or len(x) != size or not np.isfinite(x).all():
        raise ValueError(f"x is not {size} rows of finite float32 signals")
    if y.dtype != np.int32 or y.shape != (size,) or not np.isin(y, np.arange(NUM_CLASSES)).all():
        raise ValueError(f"y is not {size} int32 labels in 0…{NUM_CLASSES - 1}")
    return x, y


@register_dataset("mnist1d")
def load_mnist1d(n_train: int, n_val: int, n_test: int, seed: int = 0) -> Splits:
    """Train/validation/test splits drawn without overlap from one generated pool."""
    total = n_train + n_val + n_test
    if total > MAX_SAMPLES:
        raise ValueError(f"mnist1d: {total:,} samples asked for (training pool {n_train:,}, validation {n_val:,}, "
                         f"test {n_test:,}); generating more than {MAX_SAMPLES:,} would take over 7 minutes "
                         "(~2,500 per second): lower n_grid, pool_factor, n_val or n_test")
    num_samples = NUM_CLASSES * math.ceil(total / NUM_CLASSES)
    x, y = cached_pool(num_samples, seed)
    return Splits.from_pool(x, centred_one_hot(y, NUM_CLASSES), y, n_train, n_val, n_test)
