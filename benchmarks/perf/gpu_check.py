"""The measurements of a GPU check, one step per call (``gpu_check.sh`` runs them all).

    python benchmarks/perf/gpu_check.py {env,gram,train,cholesky} [--cpu-smoke] [--repeats 3]

* ``env`` — jax, its devices and their free memory, the eNTK budget and block sizes.
* ``gram`` — the logit-summed eNTK Gram of Myrtle-5 (width 128, 10 outputs) at n = 2048 on
  32×32×3 inputs, float32 and tf32: this project's default engine (also split into its
  Jacobian blocks and one product, and at other block sizes) and neural-tangents' Jacobian
  contraction; best of ``--repeats`` after a compile run.
* ``train`` — networks·steps per second of five networks trained together (one vmapped
  step) and one after the other: the paper tier's MLP and 1-D CNN (MNIST-1D shapes, n = 4096)
  and Myrtle-5 (CIFAR shapes).
* ``cholesky`` — float64 Cholesky of K + λI at n = 4096 and 16384 on the host (LAPACK) and
  on the device (with and without the copies), a failed device factorisation falling back
  to the host, and the triangular solves of a ridge path on each.

Every number is printed on a line starting ``RESULT``. ``--cpu-smoke``: tiny sizes, to
check the steps run anywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import numpy as np

from ntkbench.gram_engines import PRECISIONS, make_engine, summed_logits
from ntkbench.kernels import MEMORY_FRACTION, block_size_for, device_memory_budget, entk_gram, free_memory
from ntkbench.models import build_model
from timing import best_time  # (this folder's helper)

GOALS = {"float32": 0.10, "tf32": 0.05}  # seconds, Myrtle-5 at n = 2048 on one H200
NT_H200_SECONDS = 0.215  # neural-tangents' Jacobian contraction measured on an H200


def result(label: str, value, unit: str = "s", note: str = "") -> None:
    shown = f"{value:.4g}" if isinstance(value, float) else value
    print(f"RESULT {label}: {shown} {unit}{'  ' + note if note else ''}", flush=True)


def attempt(label: str, fn):
    """fn(), or None with the failure printed (a step goes on past one failing measurement)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001  (reported, not raised)
        result(label, "FAILED", "", f"{type(exc).__name__}: {str(exc)[:300]}")
        return None


def check_env(args) -> None:
    from ntkbench.regression import DEVICE_CHOLESKY_MIN_SIZE, factorises_on_device

    result("jax", jax.__version__, "")
    result("backend", jax.default_backend(), "", f"devices: {jax.devices()}")
    for device in jax.local_devices():
        result(f"memory_stats[{device.id}]", str(device.memory_stats()), "")
    result("free memory (fullest device)", free_memory() / 1e9, "GB")
    result(f"eNTK budget ({MEMORY_FRACTION:g} of free)", device_memory_budget() / 1e9, "GB")
    result("block rows for Myrtle-5 width 128 (446,475 floats a row)", block_size_for(446_475), "rows")
    result(f"ridge Cholesky on the device from n = {DEVICE_CHOLESKY_MIN_SIZE}", factorises_on_device(16384), "",
           "(at n = 16384)")
    result("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""), "")


def myrtle(smoke: bool):
    """(model, params, inputs) of the Gram step."""
    n, width, side = (32, 8, 8) if smoke else (2048, 128, 32)
    model = build_model("myrtle5", 10, width=width)
    x = np.random.default_rng(0).normal(size=(n, side, side, 3)).astype(np.float32)
    return model, model.init(jax.random.PRNGKey(0), x[:1]), x


def nt_gram_fn(model):
    """neural-tangents' Jacobian contraction for the logit-summed eNTK, jit-compiled."""
    from ntkbench.nt_compat import nt

    f = lambda p, xx: summed_logits(model)(p, xx)[:, None]  # noqa: E731
    return jax.jit(nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0,
                                       implementation=nt.NtkImplementation.JACOBIAN_CONTRACTION))


def check_gram(args) -> None:
    model, params, x = myrtle(args.cpu_smoke)
    n = len(x)
    engine = make_engine(model, params, "auto", "float32", None, x[:1])
    result("gram: inputs", f"n = {n}, {x.shape[1:]}, {engine.row_floats:,} floats a row, engine {engine.name}", "")
    reference = None
    for precision, goal in GOALS.items():
        timed = attempt(f"gram.ntkbench.{precision}",
                        lambda: best_time(lambda: entk_gram(model, params, x, precision=precision), args.repeats))
        if timed is None:
            continue
        seconds, gram = timed
        reference = gram if reference is None else reference
        note = f"goal ≤ {goal} s: {'met' if seconds <= goal else 'missed'}; nt on an H200 took {NT_H200_SECONDS} s"
        result(f"gram.ntkbench.{precision} (default engine, default blocks)", seconds, "s", note)
        if gram is not reference:
            result(f"gram.ntkbench.{precision} max rel diff to float32",
                   float(np.abs(gram - reference).max() / np.abs(reference).max()), "")
        parts = make_engine(model, params, "auto", precision, None, x[:1])
        t_jacobian, blocks = best_time(lambda: parts.jacobian(x), args.repeats)
        t_product, _ = best_time(lambda: parts.block(blocks, blocks), args.repeats)
        result(f"gram.ntkbench.{precision} part: Jacobian (layer factors) of all {n} rows", t_jacobian)
        result(f"gram.ntkbench.{precision} part: one {n}×{n} product incl. copy to host", t_product)
    for size in (n, n // 2, n // 4, n // 8):  # the default: n // 4 (SYMMETRIC_TILES) if the budget allows
        timed = attempt(f"gram.ntkbench.float32 blocks of {size}", lambda: best_time(
            lambda: entk_gram(model, params, x, block_size=size), args.repeats))
        if timed:
            result(f"gram.ntkbench.float32 blocks of {size} rows", timed[0])
    fn = nt_gram_fn(model)
    for precision in GOALS:
        with jax.default_matmul_precision(PRECISIONS[precision]):
            timed = attempt(f"gram.neural_tangents.{precision}", lambda: best_time(lambda: fn(x, None, params),
                                                                                    args.repeats))
        if timed:
            seconds, gram = timed
            diff = np.abs(np.asarray(gram, np.float64) - reference).max() / np.abs(reference).max()
            result(f"gram.neural_tangents.{precision} (Jacobian contraction)", seconds, "s",
                   f"max rel diff to ntkbench float32 {diff:.1e}")


def check_train(args) -> None:
    from ntkbench.tiers import get_tier
    from ntkbench.train import batches_networks, init_params, scans_steps, train_many

    tier, seeds = get_tier("paper"), 5
    cases = [("mlp", {}, (40,), 4096, 2000), ("cnn1d", {}, (40,), 4096, 500),
             ("myrtle5", {}, (32, 32, 3), 4096, 200)]
    if args.cpu_smoke:
        cases = [("mlp", {"width": 16}, (40,), 128, 20), ("cnn1d", {"width": 4}, (40,), 128, 10),
                 ("myrtle5", {"width": 8}, (8, 8, 3), 64, 4)]
    rng = np.random.default_rng(0)
    result("train: the suite vmaps the runs of a curve", batches_networks(), "")
    for arch, kwargs, shape, n, steps in cases:
        config = dataclasses.replace(tier.train, max_steps=steps, patience=10 * steps, patience_epochs=0.0)
        model = build_model(arch, 10, **{**tier.arch_kwargs.get(arch, {}), **kwargs})
        x = rng.normal(size=(n, *shape)).astype(np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)] - 0.1
        x_val, y_val = x[:min(n, 1024)], y[:min(n, 1024)]
        inits = [init_params(model, s, x) for s in range(seeds)]
        scanned = scans_steps(model, x[:1], config)
        for batched in (True, False):
            def run():
                return [r.params for r in train_many(model, inits, list(range(seeds)), [x] * seeds, [y] * seeds,
                                                     x_val, y_val, config, batched=batched, scanned=scanned)]
            label = f"train.{arch}.n{n}.{'vmapped' if batched else 'one after another'}"
            timed = attempt(label, lambda: best_time(run, 1))
            if timed:
                result(f"{label} ({seeds} networks × {steps} steps, scanned {scanned})",
                       seeds * steps / timed[0], "net·steps/s", f"{timed[0]:.2f} s")


def rbf_kernel(n: int, seed: int = 0) -> np.ndarray:
    """A positive definite float64 Gram: Gaussian kernel of n points in 20 dimensions."""
    z = np.random.default_rng(seed).normal(size=(n, 20))
    squared = np.sum(z**2, axis=1)
    return np.exp(-(squared[:, None] + squared[None, :] - 2 * z @ z.T) / 40.0)


def check_cholesky(args) -> None:
    import jax.scipy.linalg

    from ntkbench import regression

    outputs, sizes_per_path = 10, 8
    for n in (256, 512) if args.cpu_smoke else (4096, 16384):
        kernel, lam = rbf_kernel(n), 1e-4
        repeats = 1 if n > 8192 else args.repeats
        t_host, host = best_time(lambda: regression._leading_cholesky(kernel, lam, on_device=False)[0], repeats)
        result(f"cholesky.n{n}.host (LAPACK dpotrf, incl. the Fortran-order copy)", t_host)
        timed = attempt(f"cholesky.n{n}.device", lambda: best_time(
            lambda: regression._leading_cholesky(kernel, lam, on_device=True)[0], args.repeats))
        if timed:
            result(f"cholesky.n{n}.device (float64, incl. copies both ways)", timed[0], "s",
                   f"max rel diff to host {np.abs(timed[1] - host).max() / np.abs(host).max():.1e}")
        with jax.enable_x64(True):
            resident = jax.device_put(kernel)
            factor_fn = regression._device_factor_fn()
            t_device, (factor, _) = best_time(lambda: factor_fn(resident, np.float64(lam)), args.repeats)
            result(f"cholesky.n{n}.device compute only (K already on the device)", t_device)
            residual = np.random.default_rng(1).normal(size=(n, outputs))
            sizes = [n * (i + 1) // sizes_per_path for i in range(sizes_per_path)]
            t_solve, _ = best_time(lambda: regression._leading_solves(host, residual, sizes), args.repeats)
            result(f"cholesky.n{n}.host solves ({sizes_per_path} sizes × {outputs} outputs)", t_solve)
            solve = jax.jit(lambda f, b: jax.scipy.linalg.solve_triangular(
                f, jax.scipy.linalg.solve_triangular(f, b, lower=True), lower=True, trans="T"))
            rhs = jax.device_put(np.tile(residual, sizes_per_path))
            t_dsolve, _ = best_time(lambda: solve(factor, rhs), args.repeats)
            result(f"cholesky.n{n}.device solves (factor resident, all {outputs * sizes_per_path} columns both ways)",
                   t_dsolve)
        broken = kernel.copy()
        broken[n // 2, :] = broken[:, n // 2] = 0.0
        broken[n // 2, n // 2] = -1.0
        start = time.perf_counter()
        _, valid = regression._leading_cholesky(broken, lam, on_device=True)
        result(f"cholesky.n{n}.indefinite: device try + host fallback", time.perf_counter() - start, "s",
               f"valid size {valid} (expected {n // 2})")


STEPS = {"env": check_env, "gram": check_gram, "train": check_train, "cholesky": check_cholesky}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes (runs on a CPU in seconds)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    STEPS[args.step](args)
    result(f"{args.step} step wall time", time.perf_counter() - start)


if __name__ == "__main__":
    main()
