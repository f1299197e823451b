"""Time the two eNTK Gram implementations on the registered architectures.

    python benchmarks/perf/gram_engines.py [--n 512 2048] [--repeats 3]

Prints, per architecture and n, the best wall time of each implementation (after one
compile run at that n) and their largest relative difference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tabulate import tabulate

from ntkbench.data import load_dataset
from ntkbench.kernels import IMPLEMENTATIONS, entk_gram
from ntkbench.models import build_model
from ntkbench.registry import ARCHITECTURES
from ntkbench.train import init_params


def best_time(fn, repeats: int) -> tuple[float, np.ndarray]:
    result = fn()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = load_dataset("mnist1d", max(args.n), 0, 0)
    rows = []
    for arch in ARCHITECTURES.names():
        model = build_model(arch, data.num_outputs)
        params = init_params(model, 0, data.x_train)
        for n in args.n:
            x = data.x_train[:n]
            timed = {impl: best_time(lambda impl=impl: entk_gram(model, params, x, implementation=impl),
                                     args.repeats) for impl in IMPLEMENTATIONS}
            grams = [g for _, g in timed.values()]
            rel = float(np.abs(grams[0] - grams[1]).max() / np.abs(grams[1]).max())
            rows.append({"arch": arch, "n": n, **{f"{k} (s)": f"{t:.3f}" for k, (t, _) in timed.items()},
                         "max rel diff": f"{rel:.1e}"})
    print(tabulate(rows, headers="keys", tablefmt="github"))


if __name__ == "__main__":
    main()
