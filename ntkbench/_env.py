"""Process settings that must be in place before jax initialises its backend.

Imported by the modules that run jax computations (training, kernels, models), so that the
settings are made only when ntkbench is about to use jax, never by ``import ntkbench`` or by
the pytest plugin loading in a session that runs no case. jax reads ``XLA_FLAGS`` when its
backend starts, so a program that started jax before ntkbench keeps its own settings.
"""

import os

# jax >= 0.9 runs CPU convolutions ~6x slower through its YNN fusion; opt out unless
# the user has chosen XLA flags of their own for this option.
_CPU_CONV_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def configure() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_CPU_CONV_FLAG}".strip()


configure()
