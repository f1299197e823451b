"""Dense and convolution layers (1-D or 2-D) in standard or NTK parameterization.

Both follow neural-tangents' ``stax`` conventions, so that a ``stax`` twin with the same
``W_std``/``b_std`` has the same finite-width distribution:

* ``"standard"``: W ~ N(0, W_std² / fan_in), b ~ N(0, b_std²), output W·x + b;
* ``"ntk"``:      W ~ N(0, 1), b ~ N(0, 1), output (W_std / √fan_in)·W·x + b_std·b.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
from ntkbench import _env  # noqa: F401  (XLA flags before jax starts)
import jax
import jax.numpy as jnp

PARAMETERIZATIONS = ("standard", "ntk")


def check_sizes(arch: str, minimum: int = 1, **sizes) -> None:
    """One line naming the first size of ``arch`` that is not an integer ≥ ``minimum``."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{arch}: {name} must be an integer ≥ {minimum}, got {value!r}")


def check_parameterization(parameterization: str) -> None:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {parameterization!r}; "
                         f"known: {', '.join(PARAMETERIZATIONS)}")


def _scales(parameterization: str, fan_in: int, w_std: float, b_std: float):
    """(init std of W, init std of b, multiplier of W, multiplier of b)."""
    check_parameterization(parameterization)
    if parameterization == "ntk":
        return 1.0, 1.0, w_std / math.sqrt(fan_in), b_std
    return w_std / math.sqrt(fan_in), b_std, 1.0, 1.0


def multipliers(layer: nn.Module, fan_in: int) -> tuple[float, float]:
    """(multiplier of W, multiplier of b) in a ScaledDense/ScaledConv layer's output."""
    return _scales(layer.parameterization, fan_in, layer.w_std, layer.b_std)[2:]


class ScaledDense(nn.Module):
    features: int
    parameterization: str = "standard"
    w_std: float = math.sqrt(2.0)
    b_std: float = 0.05

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        w_init, b_init, w_mul, b_mul = _scales(self.parameterization, fan_in, self.w_std, self.b_std)
        kernel = self.param("kernel", nn.initializers.normal(w_init), (fan_in, self.features))
        bias = self.param("bias", nn.initializers.normal(b_init), (self.features,))
        return w_mul * (x @ kernel) + b_mul * bias


#: lax/stax dimension numbers of a 'SAME' convolution over (batch, *spatial, channels) inputs
DIMENSION_NUMBERS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


class ScaledConv(nn.Module):
    """'SAME'-padded convolution over inputs of shape (batch, *spatial, channels); the
    number of spatial axes is ``len(kernel_size)`` (1 or 2)."""

    features: int
    kernel_size: tuple[int, ...] = (5,)
    parameterization: str = "standard"
    w_std: float = math.sqrt(2.0)
    b_std: float = 0.05

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1] * math.prod(self.kernel_size)
        w_init, b_init, w_mul, b_mul = _scales(self.parameterization, fan_in, self.w_std, self.b_std)
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.normal(w_init), shape)
        bias = self.param("bias", nn.initializers.normal(b_init), (self.features,))
        y = jax.lax.conv_general_dilated(x, kernel, window_strides=(1,) * len(self.kernel_size), padding="SAME",
                                         dimension_numbers=DIMENSION_NUMBERS[len(self.kernel_size)])
        return w_mul * y + b_mul * jnp.asarray(bias)


class StaxTwin(NamedTuple):
    """A neural-tangents stax network mirroring a flax module; ``prepare`` maps the module's
    inputs to the twin's layout (e.g. adds a channel axis)."""

    init_fn: Callable
    apply_fn: Callable
    kernel_fn: Callable
    prepare: Callable[[Any], Any] = lambda x: x


def stax_dense(features: int, parameterization: str, w_std: float = math.sqrt(2.0), b_std: float = 0.05):
    """The stax twin of :class:`ScaledDense`."""
    from ntkbench.nt_compat import stax

    return stax.Dense(features, W_std=w_std, b_std=b_std, parameterization=parameterization)


def stax_conv(features: int, kernel_size: tuple[int, ...], parameterization: str,
              w_std: float = math.sqrt(2.0), b_std: float = 0.05):
    """The stax twin of :class:`ScaledConv`."""
    from ntkbench.nt_compat import stax

    return stax.Conv(features, tuple(kernel_size), padding="SAME", W_std=w_std, b_std=b_std,
                     dimension_numbers=DIMENSION_NUMBERS[len(kernel_size)], parameterization=parameterization)
