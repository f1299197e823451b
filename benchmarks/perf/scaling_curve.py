"""The kernel side of one scaling curve against independent fits, on this device.

    python benchmarks/perf/scaling_curve.py [--arch mlp] [--dataset mnist1d]
        [--sizes 32 64 128 256 512 1024 2048 4096] [--n-val 512] [--n-test 1024]

For the eNTK at initialisation, times (wall clock, after a compile run):

* the curve as the suite computes it: one Gram over [largest training set | val | test],
  then kernel regression at every size with one Cholesky factorisation per ridge value;
* the single largest fit: the same Gram, regression at the largest size only;
* k independent fits: per size, its own Gram and its own regression;
* the per-size solves alone, for nested factorisations against one eigendecomposition per
  size (serving every ridge value) and one set of factorisations per size.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import scipy.linalg
from tabulate import tabulate

from ntkbench.data import load_dataset
from ntkbench.kernels import entk_gram
from ntkbench.models import build_model
from ntkbench.regression import DEFAULT_RIDGE_GRID, fit_ridge, fit_ridge_path, mse


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def regression_args(gram, d, n_max, n):
    """fit_ridge arguments for the first n of n_max training points, zero offsets."""
    val, test = slice(n_max, n_max + len(d.x_val)), slice(n_max + len(d.x_val), None)
    zeros = np.zeros((len(gram), d.num_outputs))
    return (gram[:n, :n], gram[val, :n], gram[test, :n], d.targets_train[:n], d.targets_val,
            zeros[:n], zeros[val], zeros[test])


def eigh_fit(k_train, k_val, k_test, y_train, y_val, f0_train, f0_val, f0_test):
    """One eigendecomposition of the n×n system serving every ridge value."""
    eigvals, eigvecs = scipy.linalg.eigh(k_train, driver="evd")
    projected = eigvecs.T @ (y_train - f0_train)
    val_basis, test_basis = k_val @ eigvecs, k_test @ eigvecs
    scale, eigvals = float(np.mean(np.diag(k_train))), np.clip(eigvals, 0.0, None)
    fits = [(mse(f0_val + val_basis @ (projected / (eigvals + r * scale)[:, None]), y_val), r)
            for r in DEFAULT_RIDGE_GRID]
    _, ridge = min(fits)
    return f0_test + test_basis @ (projected / (eigvals + ridge * scale)[:, None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--n-val", type=int, default=512)
    parser.add_argument("--n-test", type=int, default=1024)
    args = parser.parse_args()
    sizes, n_max = sorted(args.sizes), max(args.sizes)
    d = load_dataset(args.dataset, n_max, args.n_val, args.n_test)
    model = build_model(args.arch, d.num_outputs)
    params = model.init(jax.random.PRNGKey(0), d.x_train[:1])
    others = np.concatenate([d.x_val, d.x_test])

    def gram_for(n):
        return entk_gram(model, params, np.concatenate([d.x_train[:n], others]))

    gram_for(sizes[0])  # compile
    gram_seconds, gram = timed(lambda: gram_for(n_max))
    nested, _ = timed(lambda: fit_ridge_path(*regression_args(gram, d, n_max, n_max), sizes))
    largest, _ = timed(lambda: fit_ridge(*regression_args(gram, d, n_max, n_max)))
    independent = 0.0
    for n in sizes:
        seconds, small = timed(lambda n=n: gram_for(n))
        solve, _ = timed(lambda n=n, small=small: fit_ridge(*regression_args(small, d, n, n)))
        independent += seconds + solve
    per_size_cholesky, _ = timed(lambda: [fit_ridge(*regression_args(gram, d, n_max, n)) for n in sizes])
    per_size_eigh, _ = timed(lambda: [eigh_fit(*regression_args(gram, d, n_max, n)) for n in sizes])

    curve = gram_seconds + nested
    single = gram_seconds + largest
    print(f"{args.arch} on {args.dataset}: {len(sizes)} sizes up to {n_max}, {args.n_val} val, {args.n_test} test, "
          f"{len(DEFAULT_RIDGE_GRID)} ridge values; device {jax.devices()[0].device_kind}")
    rows = [("curve: one Gram + nested solves", curve, gram_seconds, nested),
            ("single largest fit", single, gram_seconds, largest),
            (f"{len(sizes)} independent fits", independent, None, None),
            ("solves: nested factorisations", None, None, nested),
            ("solves: factorisations per size", None, None, per_size_cholesky),
            ("solves: eigendecomposition per size", None, None, per_size_eigh)]
    print(tabulate([(name, *(f"{v:.2f}" if v is not None else "" for v in values)) for name, *values in rows],
                   headers=["", "total (s)", "Gram (s)", "solves (s)"], tablefmt="github"))
    print(f"curve / single largest fit: {curve / single:.2f}; independent fits / curve: {independent / curve:.2f}")


if __name__ == "__main__":
    main()
