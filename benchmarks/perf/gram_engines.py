"""eNTK Gram engines on this device: this project's against every neural-tangents one.

    python benchmarks/perf/gram_engines.py [--cases mlp:1024,4096 myrtle5:32,128] [--repeats 2]

Measures the device's float32 matrix-product rate first, then for each architecture and n
(random inputs of the architecture's kind, one network at initialisation) the best wall
time, after a compile run, of: this project's ``auto`` engine (what the suite uses), its
``layerwise`` and ``jacobian`` engines, and neural-tangents' Jacobian contraction, NTK-vector products and
structured derivatives. Prints time, the largest relative difference to ``auto``, the ratio
of the fastest neural-tangents time to each, and, for the Jacobian engine, the rate its
contraction (2·n²·parameters flops) reaches as a fraction of the measured matmul rate.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from tabulate import tabulate

from ntkbench.gram_engines import _product, jacobian_fn, summed_logits
from ntkbench.kernels import entk_gram
from ntkbench.models import build_model
from ntkbench.registry import ARCHITECTURES
from timing import best_time  # (this folder's helper)

SHAPES = {"vector": (40,), "image": (32, 32, 3)}
NT_ENGINES = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES")
DEFAULT_CASES = ("mlp:1024,4096", "cnn1d:512,2048", "myrtle5:32,128")


def matmul_rate(size: int = 2048, repeats: int = 3) -> float:
    """float32 flop/s of one size×size product on the default device."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)), jnp.float32)
    seconds, _ = best_time(lambda: _product("float32")(a, a), repeats)
    return 2 * size**3 / seconds


def engines(model, params, x):
    """name → a function computing the Gram."""
    from ntkbench.nt_compat import nt

    f = lambda p, xx: summed_logits(model)(p, xx)[:, None]  # noqa: E731
    found = {f"ntkbench {e}": (lambda e=e: entk_gram(model, params, x, implementation=e))
             for e in ("auto", "layerwise", "jacobian")}
    for name in NT_ENGINES:
        fn = jax.jit(nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0,
                                         implementation=getattr(nt.NtkImplementation, name)))
        found[f"nt {name.lower()}"] = lambda fn=fn: fn(x, None, params)
    return found


def contraction_fraction(model, params, x, rate: float, repeats: int) -> float:
    """The Jacobian engine's product J Jᵀ as a fraction of the device's matmul rate."""
    jac = jax.block_until_ready(jacobian_fn(model)(params, jnp.asarray(x)))
    seconds, _ = best_time(lambda: _product("float32")(jac, jac), repeats)
    return 2 * jac.shape[0] ** 2 * jac.shape[1] / seconds / rate


def run_case(arch: str, n: int, rate: float, repeats: int, skip: set[str]) -> list[dict]:
    model = build_model(arch, 10)
    x = np.random.default_rng(0).normal(size=(n, *SHAPES[ARCHITECTURES.get(arch).input_kind])).astype(np.float32)
    params = model.init(jax.random.PRNGKey(0), x[:1])
    timed = {}
    for name, fn in engines(model, params, x).items():
        if name in skip:
            continue
        try:
            seconds, gram = best_time(fn, repeats)
            timed[name] = (seconds, np.asarray(gram, dtype=np.float64))
        except Exception as exc:  # noqa: BLE001  (an engine that does not run is reported)
            timed[name] = (float("nan"), None)
            print(f"{arch} n={n}: {name} failed: {type(exc).__name__}: {str(exc)[:120]}")
    reference = timed["ntkbench auto"][1]
    fastest_nt = min((t for k, (t, _) in timed.items() if k.startswith("nt ") and np.isfinite(t)), default=np.nan)
    fraction = contraction_fraction(model, params, x, rate, repeats)
    rows = []
    for name, (seconds, gram) in timed.items():
        rows.append({"arch": arch, "n": n, "params": ravel_pytree(params)[0].size, "engine": name,
                     "time (s)": f"{seconds:.3f}", "fastest nt / this": f"{fastest_nt / seconds:.2f}",
                     "max rel diff to auto": "—" if gram is None else
                     f"{np.abs(gram - reference).max() / np.abs(reference).max():.1e}",
                     "contraction / matmul rate": f"{fraction:.2f}" if name == "ntkbench jacobian" else ""})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), metavar="ARCH:N,N")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], help="engine names to leave out, e.g. 'nt ntk_vector_products'")
    args = parser.parse_args()
    rate = matmul_rate()
    print(f"device: {jax.devices()[0].device_kind} ×{jax.device_count()}; float32 matmul rate "
          f"{rate / 1e9:.0f} GFLOP/s (2048×2048)")
    rows = []
    for case in args.cases:
        arch, _, sizes = case.partition(":")
        for n in map(int, sizes.split(",")):
            rows += run_case(arch, n, rate, args.repeats, set(args.skip))
    print(tabulate(rows, headers="keys", tablefmt="github"))


if __name__ == "__main__":
    main()
