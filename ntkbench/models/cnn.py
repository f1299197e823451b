"""1-D convolutional network for sequence inputs such as MNIST-1D."""

from __future__ import annotations

import flax.linen as nn
import jax

from ntkbench.models.layers import (ScaledConv, ScaledDense, StaxTwin, check_parameterization, check_sizes, stax_conv,
                                     stax_dense)
from ntkbench.registry import register_architecture


class CNN1D(nn.Module):
    """``depth`` 'SAME' ReLU convolutions with ``width`` channels, then a dense readout."""

    num_outputs: int
    depth: int = 3
    width: int = 32
    kernel_size: int = 5
    parameterization: str = "standard"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], x.shape[1], -1)  # (batch, length, channels)
        for i in range(self.depth):  # named as before ScaledConv took 2-D kernels: the same initialisation
            x = nn.relu(ScaledConv(self.width, (self.kernel_size,), self.parameterization, name=f"ScaledConv1D_{i}")(x))
        x = x.reshape(x.shape[0], -1)
        return ScaledDense(self.num_outputs, self.parameterization, w_std=1.0)(x)


def cnn1d_twin(num_outputs: int, depth: int = 3, width: int = 32, kernel_size: int = 5,
               parameterization: str = "standard"):
    """stax twin of :class:`CNN1D` (inputs get a channel axis, as in the module)."""
    from ntkbench.nt_compat import stax

    check_parameterization(parameterization)
    convs = [layer for _ in range(depth)
             for layer in (stax_conv(width, (kernel_size,), parameterization), stax.Relu())]
    layers = stax.serial(*convs, stax.Flatten(), stax_dense(num_outputs, parameterization, w_std=1.0))
    return StaxTwin(*layers, prepare=lambda x: x.reshape(x.shape[0], x.shape[1], -1))


@register_architecture("cnn1d", twin=cnn1d_twin)
def cnn1d(num_outputs: int, depth: int = 3, width: int = 32, kernel_size: int = 5,
          parameterization: str = "standard") -> CNN1D:
    check_sizes("cnn1d", depth=depth, width=width, kernel_size=kernel_size)
    check_parameterization(parameterization)
    return CNN1D(num_outputs, depth, width, kernel_size, parameterization)
