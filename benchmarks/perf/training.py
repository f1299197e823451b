"""Training throughput of one scaling curve's networks, in networks·steps per second.

    python benchmarks/perf/training.py [--archs mlp cnn1d] [--seeds 5] [--sizes 512 4096]
        [--steps mlp=1000 cnn1d=200]

For each architecture (the small tier's MLP and 1-D CNN on MNIST-1D) and each size, the
curve's networks (one per seed) train a fixed number of steps (patience longer than the run)
three ways, after a compile run of each:

* ``per-step permutation``: the former loop, one network at a time, each minibatch drawn
  by ``jax.random.choice(..., replace=False)`` (a permutation of all n points per step);
* ``epoch permutation``: :func:`ntkbench.train.train`, one network at a time, one host
  permutation per epoch cut into batches;
* ``vmapped``: :func:`ntkbench.train.train_many`, every seed in one vmapped step.

Evaluations run at the same cadence in all three. The last column says which of the two new
paths :func:`ntkbench.train.batches_networks` picks on this device.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tabulate import tabulate

from ntkbench.data import load_dataset
from ntkbench.models import build_model
from ntkbench.tiers import get_tier
from ntkbench.train import batches_networks, init_params, make_optimizer, mse, train, train_many


def per_step_permutation(model, params, seed, x, y, x_val, y_val, config):
    """The former loop: a jitted step that permutes all n points to draw each minibatch."""
    x, y, x_val, y_val = map(jnp.asarray, (x, y, x_val, y_val))
    n, batch = x.shape[0], min(config.batch_size, x.shape[0])
    optimizer = make_optimizer(config)

    def loss_fn(p, xb, yb):
        return mse(model.apply(p, xb), yb)

    @jax.jit
    def step(p, opt_state, key):
        idx = jax.random.choice(key, n, (batch,), replace=False)
        grads = jax.grad(loss_fn)(p, x[idx], y[idx])
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    evaluate = jax.jit(lambda p: (loss_fn(p, x, y), loss_fn(p, x_val, y_val)))
    opt_state = optimizer.init(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1_000_003), config.max_steps)
    for i in range(config.max_steps):
        params, opt_state = step(params, opt_state, keys[i])
        if (i + 1) % config.eval_every == 0:
            [float(v) for v in evaluate(params)]
    return params


def timed(fn) -> float:
    fn()  # compile
    start = time.perf_counter()
    jax.block_until_ready(jax.tree.leaves(fn()))
    return time.perf_counter() - start


def measure(arch: str, n: int, seeds: int, steps: int) -> dict:
    tier = get_tier("small")
    config = dataclasses.replace(tier.train, max_steps=steps, patience=10 * steps)
    d = load_dataset("mnist1d", n, tier.n_val, tier.n_test)
    model = build_model(arch, d.num_outputs, **tier.arch_kwargs.get(arch, {}))
    seed_list = list(range(seeds))
    inits = [init_params(model, s, d.x_train) for s in seed_list]
    x, y = d.x_train[:n], d.targets_train[:n]
    runs = {
        "per-step permutation": lambda: [per_step_permutation(model, p, s, x, y, d.x_val, d.targets_val, config)
                                         for p, s in zip(inits, seed_list)],
        "epoch permutation": lambda: [train(model, p, s, x, y, d.x_val, d.targets_val, config).params
                                      for p, s in zip(inits, seed_list)],
        "vmapped": lambda: [r.params for r in train_many(model, inits, seed_list, [x] * seeds, [y] * seeds,
                                                          d.x_val, d.targets_val, config)],
    }
    rates = {name: seeds * steps / timed(run) for name, run in runs.items()}
    base = rates["per-step permutation"]
    return {"arch": arch, "n": n, "networks": seeds, "steps": steps,
            **{f"{name} (net·steps/s)": f"{rate:,.0f}" for name, rate in rates.items()},
            "epoch / per-step": f"{rates['epoch permutation'] / base:.2f}×",
            "vmapped / per-step": f"{rates['vmapped'] / base:.2f}×",
            "suite uses": "vmapped" if batches_networks() else "epoch permutation"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["mlp", "cnn1d"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[512, 4096])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", nargs="+", default=["mlp=1000", "cnn1d=200"])
    args = parser.parse_args()
    steps = {k: int(v) for k, v in (item.split("=") for item in args.steps)}
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}), jax {jax.__version__}")
    rows = [measure(arch, n, args.seeds, steps.get(arch, 200)) for arch in args.archs for n in args.sizes]
    print(tabulate(rows, headers="keys", tablefmt="github"))


if __name__ == "__main__":
    main()
