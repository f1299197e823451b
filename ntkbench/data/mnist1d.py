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
from ntkbench.storage import atomic_write_bytes, cache_root, locked

NUM_CLASSES = 10


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
    """The generated pool, from the cache when present (keyed by the generation args)."""
    args = generation_args(num_samples, seed)
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_root() / "datasets" / f"mnist1d-{digest}.npz"
    with locked(path):
        if path.exists():
            with np.load(path) as stored:
                return stored["x"], stored["y"]
        x, y = generate(args)
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y, args=json.dumps(args))
        atomic_write_bytes(path, buffer.getvalue())
        return x, y


@register_dataset("mnist1d")
def load_mnist1d(n_train: int, n_val: int, n_test: int, seed: int = 0) -> Splits:
    """Train/validation/test splits drawn without overlap from one generated pool."""
    total = n_train + n_val + n_test
    num_samples = NUM_CLASSES * math.ceil(total / NUM_CLASSES)
    x, y = cached_pool(num_samples, seed)
    return Splits.from_pool(x, centred_one_hot(y, NUM_CLASSES), y, n_train, n_val, n_test)
