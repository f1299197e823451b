"""Import neural-tangents 0.6.5 on current jax.

neural-tangents 0.6.5 (its last release) imports jax symbols that jax has since moved or
removed, and its ``experimental`` subpackage imports tensorflow, which ntkbench never uses
and does not install. This module restores the moved symbols under their old names, stands
in a stub for ``neural_tangents.experimental`` when tensorflow is absent, and then imports
neural-tangents. Always import neural-tangents through here: ``from ntkbench.nt_compat import nt``.
"""

import importlib.util
import sys
import types

from ntkbench import _env  # noqa: F401  (XLA flags before jax initialises)

import jax
import jax.extend.core as _extend_core
import jax.interpreters.ad as _ad
from jax._src import ad_util as _ad_util
from jax._src import config as _config
from jax._src import source_info_util as _source_info_util
from jax._src import util as _util
from jax._src.interpreters import ad as _ad_internal

#: (module, attribute name, value) restored before neural-tangents is imported.
RESTORED_SYMBOLS = (
    (jax.core, "Jaxpr", _extend_core.Jaxpr),
    (jax.core, "JaxprEqn", _extend_core.JaxprEqn),
    (jax.core, "Literal", _extend_core.Literal),
    (jax.core, "Primitive", _extend_core.Primitive),
    (jax.core, "Var", _extend_core.Var),
    (jax.core, "ClosedJaxpr", _extend_core.ClosedJaxpr),
    (_ad, "source_info_util", _source_info_util),
    (_ad, "config", _config.config),
    (_ad, "reducing_transposes", _ad_internal.reducing_transposes),
    (_ad, "zeros_like_p", _ad_util.zeros_like_p),
    (_ad, "backward_pass", _ad_internal.backward_pass),
)


def _restore_symbols() -> None:
    for module, name, value in RESTORED_SYMBOLS:
        if not hasattr(module, name):
            setattr(module, name, value)
    if "jax.util" not in sys.modules:
        try:
            importlib.import_module("jax.util")
        except ImportError:
            shim = types.ModuleType("jax.util")
            shim.safe_map, shim.safe_zip = _util.safe_map, _util.safe_zip
            sys.modules["jax.util"] = shim
            jax.util = shim


def _stub_experimental_without_tensorflow() -> None:
    """neural_tangents.experimental only wraps TF models; stand in an empty module."""
    if importlib.util.find_spec("tensorflow") is not None:
        return
    name = "neural_tangents.experimental"
    if name not in sys.modules:
        stub = types.ModuleType(name)
        stub.__doc__ = "Stand-in: neural_tangents.experimental needs tensorflow."
        sys.modules[name] = stub


_restore_symbols()
_stub_experimental_without_tensorflow()

import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

__all__ = ["nt", "stax", "RESTORED_SYMBOLS"]
