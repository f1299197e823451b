"""eNTK Gram blocks sized from the device's free memory against a fixed memory budget.

    python benchmarks/perf/gram_blocks.py [--arch myrtle5] [--width 128] [--side 4] [--n N]
        [--fixed-gib 2]

One network at initialisation (Myrtle-5 at width 128 by default, on side × side × 3 random
images: Myrtle pools globally, so its parameter count, 446k weights in the layer factors,
does not depend on the image size, only the cost of a sample's gradient does) and n random
inputs (default: the largest n whose Jacobian fits in the device budget). The symmetric Gram
is computed with this project's default engine twice: with the default budget
(:func:`ntkbench.kernels.device_memory_budget`) and with a fixed budget (2 GiB by
default). Printed for each: the budget, the block rows, whether the Jacobian is resident,
the Jacobian blocks computed (and the sample rows they cover), the seconds spent computing
Jacobian blocks and their products, the wall time (compilations included, a few seconds),
and the largest difference between the two Grams. At a fixed budget the width and image
size hardly change the cost (the resident rows scale as 1/parameters, the products as
rows² · parameters): on 2 CPU cores the largest n (6,891 rows in a 12.3 GB budget) took
13.5 minutes for both runs (274 s and 528 s), ``--n 5632`` (10 GB) about 11.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import jax
import numpy as np
from tabulate import tabulate

from ntkbench.gram_engines import JacobianEngine, make_engine
from ntkbench.kernels import device_memory_budget, entk_gram, free_memory
from ntkbench.models import build_model

GiB = 1024**3


@contextlib.contextmanager
def counted():
    """Counts and times (synchronously) the Jacobian blocks and products of the Jacobian and
    layerwise engines while the context is open."""
    stats = {"jacobian s": 0.0, "product s": 0.0, "rows": [], "products": 0}
    jacobian, block = JacobianEngine.jacobian, JacobianEngine.block

    def timed(fn, seconds):
        def wrapper(self, *args):
            start = time.perf_counter()
            result = jax.block_until_ready(fn(self, *args))
            stats[seconds] += time.perf_counter() - start
            if fn is jacobian:
                stats["rows"].append(len(args[0]))
            else:
                stats["products"] += 1
            return result
        return wrapper

    JacobianEngine.jacobian, JacobianEngine.block = timed(jacobian, "jacobian s"), timed(block, "product s")
    try:
        yield stats
    finally:
        JacobianEngine.jacobian, JacobianEngine.block = jacobian, block


def run(model, params, x, row_floats: int, memory_bytes: int, label: str):
    """(a table row, the Gram) of one budget."""
    with counted() as stats:
        start = time.perf_counter()
        gram = entk_gram(model, params, x, memory_bytes=memory_bytes)
        wall = time.perf_counter() - start
    rows = stats["rows"]
    return {"budget": label, "GB": f"{memory_bytes / 1e9:.2f}", "block rows": max(rows),
            "resident": len(x) * row_floats * 4 <= memory_bytes, "jacobian blocks": len(rows),
            "jacobian rows": sum(rows), "jacobian s": f"{stats['jacobian s']:.1f}", "products": stats["products"],
            "product s": f"{stats['product s']:.1f}", "wall s": f"{wall:.1f}"}, gram


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="myrtle5")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--side", type=int, default=4, help="image side (images are side × side × 3)")
    parser.add_argument("--n", type=int, help="inputs (default: the largest whose Jacobian fits the device budget)")
    parser.add_argument("--fixed-gib", type=float, default=2.0)
    args = parser.parse_args()
    model = build_model(args.arch, 10, width=args.width)
    rng = np.random.default_rng(0)
    example = rng.normal(size=(1, args.side, args.side, 3)).astype(np.float32)
    params = model.init(jax.random.PRNGKey(0), example)
    engine = make_engine(model, params, "auto", "float32", None, example)
    budget = device_memory_budget()
    n = args.n or budget // (engine.row_floats * 4)
    x = rng.normal(size=(n, args.side, args.side, 3)).astype(np.float32)
    print(f"device: {jax.devices()[0].device_kind}; free {free_memory() / 1e9:.1f} GB, budget {budget / 1e9:.1f} GB; "
          f"{args.arch} width {args.width} on {args.side}×{args.side}×3, {engine.name} engine, "
          f"{engine.row_floats:,} floats per row; n = {n}: Jacobian {n * engine.row_floats * 4 / 1e9:.2f} GB", flush=True)
    rows, grams = [], []
    for memory_bytes, label in ((budget, "device"), (int(args.fixed_gib * GiB), f"fixed {args.fixed_gib:g} GiB")):
        row, gram = run(model, params, x, engine.row_floats, memory_bytes, label)
        print(row, flush=True)
        rows.append(row)
        grams.append(gram)
    print(tabulate(rows, headers="keys", tablefmt="github"))
    print(f"max |difference| / max |K|: {np.abs(grams[0] - grams[1]).max() / np.abs(grams[0]).max():.1e}")


if __name__ == "__main__":
    main()
