"""Training throughput of one scaling curve's networks, in networks·steps per second.

    python benchmarks/perf/training.py [--archs mlp cnn1d] [--seeds 5] [--sizes 128 ... 4096]
        [--steps mlp=1000 cnn1d=200]

For each architecture (the small tier's MLP and 1-D CNN on MNIST-1D) and each size of the
small tier's curve, the curve's networks (one per seed) train a fixed number of steps
(patience longer than the run) five ways, after a compile run of each:

* ``per-step permutation``: the former loop, one network at a time, one jitted call per
  step, each minibatch drawn by ``jax.random.choice(..., replace=False)`` (a permutation of
  all n points per step);
* ``epoch permutation``: :func:`ntkbench.train.train`, one network at a time, one host
  permutation per epoch cut into batches, one call per step;
* ``scanned``: the same, with the steps between two evaluations in one ``lax.scan``;
* ``vmapped``: :func:`ntkbench.train.train_many`, every seed in one vmapped step (scanned
  where :func:`ntkbench.train.scans_steps` says so at the small tier's cap);
* ``side by side``: :func:`ntkbench.train.train_many` without vmapping: the networks train
  on :func:`ntkbench.train.host_threads` threads (scanned where ``scans_steps`` says so).

Evaluations run at the same cadence in all five. The ``curve`` row of each architecture adds
the sizes up (the same steps at each size). The last column is the path the suite takes on
this device (:func:`ntkbench.train.batches_networks`, :func:`ntkbench.train.scans_steps`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tabulate import tabulate

from ntkbench.data import load_dataset
from ntkbench.models import build_model
from ntkbench.tiers import get_tier
from ntkbench.train import batches_networks, host_threads, init_params, make_optimizer, mse, scans_steps, train, train_many


@functools.lru_cache(maxsize=None)
def former_loop(model, config):
    """The former loop's jitted step (it permutes all n points to draw each minibatch) and
    evaluation. It compiled them anew for every network; here they compile once per shape,
    so that the comparison counts steps only and errs in the former loop's favour."""
    optimizer = make_optimizer(config)

    def loss_fn(p, xb, yb):
        return mse(model.apply(p, xb), yb)

    @jax.jit
    def step(p, opt_state, key, x, y):
        idx = jax.random.choice(key, x.shape[0], (min(config.batch_size, x.shape[0]),), replace=False)
        grads = jax.grad(loss_fn)(p, x[idx], y[idx])
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    evaluate = jax.jit(lambda p, x, y, x_val, y_val: (loss_fn(p, x, y), loss_fn(p, x_val, y_val)))
    return optimizer, step, evaluate


def per_step_permutation(model, params, seed, x, y, x_val, y_val, config):
    """The former loop: one network, one call per step, evaluated on all n points."""
    x, y, x_val, y_val = map(jnp.asarray, (x, y, x_val, y_val))
    optimizer, step, evaluate = former_loop(model, config)
    opt_state = optimizer.init(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1_000_003), config.max_steps)
    for i in range(config.max_steps):
        params, opt_state = step(params, opt_state, keys[i], x, y)
        if (i + 1) % config.eval_every == 0:
            [float(v) for v in evaluate(params, x, y, x_val, y_val)]
    return params


def timed(run, networks: int, warm_up: int) -> float:
    """Seconds ``run(networks)`` takes, after ``run(warm_up)`` has compiled what it needs."""
    run(warm_up)
    start = time.perf_counter()
    jax.block_until_ready(jax.tree.leaves(run(networks)))
    return time.perf_counter() - start


PATHS = ("per-step permutation", "epoch permutation", "scanned", "vmapped", "side by side")


def measure(arch: str, n: int, seeds: int, steps: int) -> dict:
    """Seconds each path takes to train the networks of one size ``steps`` steps."""
    tier = get_tier("small")
    config = dataclasses.replace(tier.train, max_steps=steps, patience=10 * steps)
    d = load_dataset("mnist1d", n, tier.n_val, tier.n_test)
    model = build_model(arch, d.num_outputs, **tier.arch_kwargs.get(arch, {}))
    inits = [init_params(model, s, d.x_train) for s in range(seeds)]
    x, y = d.x_train[:n], d.targets_train[:n]

    def former(k):
        return [per_step_permutation(model, inits[s], s, x, y, d.x_val, d.targets_val, config) for s in range(k)]

    def alone(k, scanned):
        return [train(model, inits[s], s, x, y, d.x_val, d.targets_val, config, scanned=scanned).params
                for s in range(k)]

    scans = scans_steps(model, d.x_train[:1], tier.train)  # as in the suite, whose cap is larger

    def together(k, batched):
        return [r.params for r in train_many(model, inits[:k], list(range(k)), [x] * k, [y] * k, d.x_val,
                                             d.targets_val, config, batched=batched, scanned=scans)]

    runs = {  # path → (run, networks of its compile run: a vmapped step compiles for its count)
        "per-step permutation": (former, 1),
        "epoch permutation": (functools.partial(alone, scanned=False), 1),
        "scanned": (functools.partial(alone, scanned=True), 1),
        "vmapped": (functools.partial(together, batched=True), seeds),
        "side by side": (functools.partial(together, batched=False), 1),
    }
    suite = "vmapped" if batches_networks() else "side by side"
    suite += f" ({'scanned' if scans else 'one call per step'}, {host_threads()} threads)"
    return {"arch": arch, "n": n, "net·steps": seeds * steps, "suite uses": suite,
            **{name: timed(run, seeds, warm_up) for name, (run, warm_up) in runs.items()}}


def row(arch: str, n, measured: list[dict]) -> dict:
    """Networks·steps per second of each path over ``measured``, and each against the former loop."""
    work = sum(m["net·steps"] for m in measured)
    rates = {name: work / sum(m[name] for m in measured) for name in PATHS}
    base = rates["per-step permutation"]
    return {"arch": arch, "n": n, **{f"{name} (net·steps/s)": f"{rate:,.0f}" for name, rate in rates.items()},
            **{f"{name} / per-step": f"{rates[name] / base:.2f}×" for name in PATHS[1:]},
            "suite uses": measured[0]["suite uses"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["mlp", "cnn1d"])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(get_tier("small").n_grid))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", nargs="+", default=["mlp=1000", "cnn1d=200"])
    args = parser.parse_args()
    steps = {k: int(v) for k, v in (item.split("=") for item in args.steps)}
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}), jax {jax.__version__}", flush=True)
    rows = []
    for arch in args.archs:
        measured = [measure(arch, n, args.seeds, steps.get(arch, 100)) for n in args.sizes]
        rows += [row(arch, m["n"], [m]) for m in measured] + [row(arch, "curve", measured)]
    print(tabulate(rows, headers="keys", tablefmt="github"))


if __name__ == "__main__":
    main()
