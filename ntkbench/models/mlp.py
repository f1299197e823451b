"""Fully connected ReLU network."""

from __future__ import annotations

import flax.linen as nn
import jax

from ntkbench.models.layers import ScaledDense, StaxTwin, check_parameterization, check_sizes, stax_dense
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


def mlp_twin(num_outputs: int, depth: int = 2, width: int = 128, parameterization: str = "standard"):
    """stax twin of :class:`MLP`."""
    from ntkbench.nt_compat import stax

    check_parameterization(parameterization)
    hidden = [layer for _ in range(depth) for layer in (stax_dense(width, parameterization), stax.Relu())]
    return StaxTwin(*stax.serial(stax.Flatten(), *hidden, stax_dense(num_outputs, parameterization, w_std=1.0)))


@register_architecture("mlp", twin=mlp_twin)
def mlp(num_outputs: int, depth: int = 2, width: int = 128, parameterization: str = "standard") -> MLP:
    """``depth`` hidden ReLU layers of ``width`` units and a linear readout."""
    check_sizes("mlp", width=width)
    check_sizes("mlp", 0, depth=depth)
    check_parameterization(parameterization)
    return MLP(num_outputs, depth, width, parameterization)
