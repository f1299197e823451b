"""ntkbench: benchmark claims about neural networks versus their neural tangent kernels."""

from ntkbench import _env  # noqa: F401  (XLA flags before jax initialises)

__version__ = "0.1.0"
