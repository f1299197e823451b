"""Architectures: flax modules registered by name."""

from ntkbench.models import cnn, mlp, myrtle  # noqa: F401  (registers the architectures)
from ntkbench.registry import ARCHITECTURES


def build_model(name: str, num_outputs: int, **kwargs):
    """Build a registered architecture (unknown name → :class:`UnknownNameError`)."""
    return ARCHITECTURES.get(name).build(num_outputs, **kwargs)


__all__ = ["build_model"]
