"""Myrtle CNNs (Shankar et al. 2020) for images of shape (height, width, channels).

3×3 'SAME' ReLU convolutions of one width in three stages, a 2×2 average pooling after the
first two stages, then global average pooling and a dense readout. Myrtle-5, -7 and -10
have (2, 1, 1), (2, 2, 2) and (3, 3, 3) convolutions per stage. On 32×32 inputs the global
pooling equals the three further 2×2 poolings of the original (8 → 4 → 2 → 1); it also
accepts smaller images. Myrtle-5 at width 128 on CIFAR has 447,626 parameters.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from ntkbench.models.layers import ScaledConv, ScaledDense, StaxTwin, check_parameterization, check_sizes, stax_conv, stax_dense
from ntkbench.registry import register_architecture

STAGES = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}
KERNEL = (3, 3)


class Myrtle(nn.Module):
    num_outputs: int
    depth: int = 5
    width: int = 128
    parameterization: str = "standard"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for stage, convs in enumerate(STAGES[self.depth]):
            for _ in range(convs):
                x = nn.relu(ScaledConv(self.width, KERNEL, self.parameterization)(x))
            if stage < 2:
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = x.mean(axis=(1, 2))
        return ScaledDense(self.num_outputs, self.parameterization, w_std=1.0)(x)


def myrtle_twin(depth: int):
    """The stax twin factory of Myrtle-``depth``."""

    def twin(num_outputs: int, width: int = 128, parameterization: str = "standard") -> StaxTwin:
        from ntkbench.nt_compat import stax

        check_parameterization(parameterization)
        layers = []
        for stage, convs in enumerate(STAGES[depth]):
            layers += [layer for _ in range(convs) for layer in (stax_conv(width, KERNEL, parameterization), stax.Relu())]
            if stage < 2:
                layers.append(stax.AvgPool((2, 2), strides=(2, 2)))
        layers += [stax.GlobalAvgPool(), stax_dense(num_outputs, parameterization, w_std=1.0)]
        return StaxTwin(*stax.serial(*layers))

    return twin


def _register(depth: int) -> None:
    @register_architecture(f"myrtle{depth}", input_kind="image", twin=myrtle_twin(depth))
    def build(num_outputs: int, width: int = 128, parameterization: str = "standard") -> Myrtle:
        check_sizes(f"myrtle{depth}", width=width)
        check_parameterization(parameterization)
        return Myrtle(num_outputs, depth, width, parameterization)


for _depth in STAGES:
    _register(_depth)
