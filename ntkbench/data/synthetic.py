"""Synthetic teacher–student regression: Gaussian inputs, a fixed random teacher."""

from __future__ import annotations

import numpy as np

from ntkbench.data.splits import Splits, centred_one_hot
from ntkbench.registry import register_dataset


def _random_network(x: np.ndarray, rng: np.random.Generator, outputs: int, width: int) -> np.ndarray:
    w1 = rng.normal(size=(x.shape[1], width)) / np.sqrt(x.shape[1])
    w2 = rng.normal(size=(width, outputs)) / np.sqrt(width)
    return np.tanh(x @ w1) @ w2


def _low_dimensional(x: np.ndarray, rng: np.random.Generator, outputs: int, rank: int) -> np.ndarray:
    """Each output a smooth function of a ``rank``-dimensional projection of the input."""
    directions = np.linalg.qr(rng.normal(size=(x.shape[1], rank)))[0]
    z = x @ directions
    mix = rng.normal(size=(rank, outputs))
    return np.sin(z @ mix) + 0.5 * np.cos(z[:, :1] * z[:, -1:]) * np.sign(mix[:1])


def _in_ntk_span(x: np.ndarray, rng: np.random.Generator, outputs: int, arch: str, anchors: int) -> np.ndarray:
    """Σ_j Θ(x, z_j) c_j: a function in the span of ``arch``'s infinite-width NTK Θ (its
    stax twin, default kwargs), with Gaussian anchors z_j and coefficients c_j."""
    from ntkbench.kernels import infinite_ntk_gram
    from ntkbench.registry import ARCHITECTURES

    twin = ARCHITECTURES.get(arch).twin
    if twin is None:
        raise ValueError(f"teacher 'ntk' needs an architecture with a stax twin; {arch!r} has none")
    z = rng.normal(size=(anchors, x.shape[1]))
    return infinite_ntk_gram(twin(outputs), x, z) @ rng.normal(size=(anchors, outputs))


@register_dataset("teacher", task="regression")
def load_teacher(n_train: int, n_val: int, n_test: int, seed: int = 0, *, dim: int = 40,
                 outputs: int = 10, teacher: str = "network", width: int = 64, rank: int = 2,
                 arch: str = "mlp", anchors: int = 64, noise: float = 0.0) -> Splits:
    """Inputs ~ N(0, I_dim); targets from a fixed random teacher, scaled so that the mean
    squared target norm is 1; optional Gaussian label noise of standard deviation ``noise``.
    Teachers: a random tanh ``network``, a ``low_dimensional`` function of a rank-``rank``
    projection, or ``ntk``: a function in the span of ``arch``'s infinite-width NTK."""
    teachers = {"network": lambda x, r: _random_network(x, r, outputs, width),
                "low_dimensional": lambda x, r: _low_dimensional(x, r, outputs, rank),
                "ntk": lambda x, r: _in_ntk_span(x, r, outputs, arch, anchors)}
    if teacher not in teachers:
        raise ValueError(f"unknown teacher {teacher!r}; known: {', '.join(sorted(teachers))}")
    total = n_train + n_val + n_test
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(total, dim))
    y = teachers[teacher](x, np.random.default_rng(seed + 1))
    y = (y - y.mean(0)) / np.sqrt(np.mean(np.sum((y - y.mean(0)) ** 2, axis=1)))
    y = y + noise * rng.normal(size=y.shape) / np.sqrt(outputs)
    labels = np.argmax(y, axis=1).astype(np.int32)
    return Splits.from_pool(x.astype(np.float32), y.astype(np.float32), labels, n_train, n_val, n_test)


@register_dataset("image_teacher", input_kind="image")
def load_image_teacher(n_train: int, n_val: int, n_test: int, seed: int = 0, *, size: int = 32,
                       classes: int = 10, width: int = 64) -> Splits:
    """A CIFAR-shaped stand-in (size×size×3 images, ``classes`` classes) generated on the
    spot: smooth Gaussian images (a coarse 4×4-pixel pattern plus fine noise), labelled by
    the argmax of a random tanh network on the coarse pattern. For running the image
    networks end to end where no CIFAR files are at hand; not a substitute for them."""
    total = n_train + n_val + n_test
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(total, size // 4, size // 4, 3))
    x = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2) + 0.5 * rng.normal(size=(total, size, size, 3))
    scores = _random_network(coarse.reshape(total, -1), np.random.default_rng(seed + 1), classes, width)
    labels = np.argmax(scores, axis=1).astype(np.int32)
    return Splits.from_pool(x.astype(np.float32), centred_one_hot(labels, classes), labels, n_train, n_val, n_test)
