"""Import neural-tangents 0.6.5 on current jax.

neural-tangents 0.6.5 (its last release) imports jax symbols that jax has since moved or
removed, and its ``experimental`` subpackage imports tensorflow, which ntkbench never uses
and does not install. This module restores the moved symbols under their old names, stands
in a stub for ``neural_tangents.experimental`` when tensorflow is absent, and then imports
neural-tangents. Always import neural-tangents through here: ``from ntkbench.nt_compat import nt``.

It also adapts neural-tangents' structured-derivatives implementation to the
``ad.linearize`` contract of jax ≥ 0.10.1 (a flat tree in, out-zeros instead of partial
values out). That adapter uses jax internals: ``STRUCTURED_DERIVATIVES`` says whether it
could be installed, tests/test_nt_compat.py checks its kernels against the Jacobian
contraction, and ntkbench.kernels falls back to its own Jacobian path when it fails.
"""

import functools
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
    (jax.core, "DShapedArray", type("DShapedArray", (), {})),  # removed with dynamic shapes: never matches
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


def _adapt_structured_derivatives() -> bool:
    """Give neural-tangents' structured derivatives the current ``ad.linearize`` contract;
    False when the jax internals it needs are gone (then that implementation fails)."""
    try:
        from jax._src import core as _core
        from jax._src.tree_util import FlatTree
        from neural_tangents._src import empirical
    except ImportError:
        return False
    if not hasattr(_core.Primitive, "map_primitive"):
        _core.Primitive.map_primitive = False

    def primals_out_and_pullback(fn, mode, _j_rules, _s_rules, _fwd, *primals_in):
        in_tree = jax.tree_util.tree_structure(primals_in)
        with jax.disable_jit():
            out_ft, out_zeros, jaxpr, consts = _ad_internal.linearize(fn, FlatTree.flatten(primals_in))

        def pullback_fn(*cts_in):
            cts_in = [ct for ct, zero in zip(jax.tree_util.tree_leaves(cts_in), out_zeros) if not zero]
            dummy_args = [_ad_internal.UndefinedPrimal(v.aval) for v in jaxpr.invars]
            cts_out = empirical._backward_pass(jaxpr, mode=mode, consts=consts, primals_in=dummy_args,
                                               cotangents_in=tuple(cts_in), _j_rules=_j_rules,
                                               _s_rules=_s_rules, _fwd=_fwd)
            return jax.tree_util.tree_unflatten(in_tree, cts_out)

        return out_ft.unflatten(), pullback_fn

    empirical._get_primals_out_and_pullback = primals_out_and_pullback

    def fx_axis_and_dtype(fx, fx_axis, params):
        """As neural-tangents', without jax's deprecated ``jnp.dtype(array)``."""
        fx_axis = jax.tree.map(lambda x: None, fx) if fx_axis is None else fx_axis
        dtypes = [getattr(leaf, "dtype", leaf) for leaf in jax.tree.leaves(params)]
        return fx_axis, (functools.reduce(jax.numpy.promote_types, dtypes) if dtypes else None)

    empirical._get_fx_axis_and_dtype = fx_axis_and_dtype
    return True


_restore_symbols()
_stub_experimental_without_tensorflow()

import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

STRUCTURED_DERIVATIVES = _adapt_structured_derivatives()

__all__ = ["nt", "stax", "RESTORED_SYMBOLS", "STRUCTURED_DERIVATIVES"]
