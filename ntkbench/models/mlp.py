"""Fully connected ReLU network."""

from __future__ import annotations

import flax.linen as nn
import jax

from ntkbench.models.layers import ScaledDense, check_parameterization
from ntkbench.registry import register_architecture


class MLP(nn.Module):
    num_outputs: int
    depth: int = 2
    width: int = 128
    parameterization: str = "standard"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for _ in range(self.depth):
            x = nn.relu(ScaledDense(self.width, self.parameterization)(x))
        return ScaledDense(self.num_outputs, self.parameterization, w_std=1.0)(x)


@register_architecture("mlp")
def mlp(num_outputs: int, depth: int = 2, width: int = 128, parameterization: str = "standard") -> MLP:
    """``depth`` hidden ReLU layers of ``width`` units and a linear readout."""
    check_parameterization(parameterization)
    return MLP(num_outputs, depth, width, parameterization)
