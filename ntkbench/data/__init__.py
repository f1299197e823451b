"""Datasets: a registry of loaders that return train/validation/test :class:`Splits`."""

from ntkbench.data.splits import Splits, centred_one_hot
from ntkbench.data import cifar, mnist1d, synthetic  # noqa: F401  (registers the datasets)
from ntkbench.registry import DATASETS


def load_dataset(name: str, n_train: int, n_val: int, n_test: int, seed: int = 0, **kwargs) -> Splits:
    """Load a registered dataset by name (unknown name → :class:`UnknownNameError`)."""
    return DATASETS.get(name).load(n_train, n_val, n_test, seed, **kwargs)


__all__ = ["Splits", "centred_one_hot", "load_dataset"]
