"""The experiment kind "entk_evolution": the eNTK along the training of one network.

The network trained on n0 points is read back at its checkpoints (log-spaced early ones,
and eight evenly spaced in learning-rate time up to its best validation step: its useful
training). At each checkpoint the eNTK is computed on the seed's n0 training points, the
validation and the test points; a record holds the angles between its kernel on the probe
set (the first test points) and every other checkpoint's, plain and centred (CKA), and the
test loss of kernel regression with that kernel alone (no offset).
"""

from __future__ import annotations

import numpy as np

from ntkbench.experiments import Context, ExperimentKind, register_kind
from ntkbench.kernels import entk_gram, kernel_angle, kernel_distance
from ntkbench.regression import fit_ridge
from ntkbench.runners import evaluate, trained_params
from ntkbench.train_config import learning_rate_time

PROBE_SIZE = 256  # held-out inputs (the first test points) on which kernels are compared


def run_entk_evolution_seed(ctx: Context, seed: int) -> list[dict]:
    """One record per checkpoint of the seed's network trained on n0 points."""
    spec, d = ctx.spec, ctx.splits
    n, n_max = spec.n0, spec.n_max
    rows = np.r_[0:n, n_max:n_max + spec.n_val + spec.n_test]  # the seed's first n points, val, test
    x_all = ctx.inputs(seed)[rows]
    val, test = slice(n, n + spec.n_val), slice(n + spec.n_val, None)
    probe = slice(n + spec.n_val, n + spec.n_val + min(PROBE_SIZE, spec.n_test))
    zero = np.zeros((len(rows), d.num_outputs))
    checkpoints = sorted(trained_params(ctx, seed, n, checkpoints=True).items())
    times = learning_rate_time(spec.train, [step for step, _ in checkpoints])
    records, probes = [], []
    for (step, params), time in zip(checkpoints, times):
        gram = entk_gram(ctx.model, params, x_all, precision=spec.entk_precision,
                         description=f"eNTK {spec.arch} seed {seed} step {step}")
        fit = fit_ridge(gram[:n, :n], gram[val, :n], gram[test, :n], ctx.targets(seed)[:n], d.targets_val,
                        zero[:n], zero[val], zero[test], spec.ridge_grid)
        probes.append(gram[probe, probe])
        records.append({"seed": seed, "n": n, "step": step, "time": float(time),
                        "epoch": step * min(spec.train.batch_size, n) / n,
                        **{f"kernel_{k}": v for k, v in evaluate(fit.test_predictions, d).items()}})
    for record, kernel in zip(records, probes):
        record["distance_from_init"] = kernel_distance(probes[0], kernel)
        record["angle_to"] = [kernel_angle(kernel, other) for other in probes]
        record["cka_angle_to"] = [kernel_angle(kernel, other, centred=True) for other in probes]
    return records


register_kind(ExperimentKind("entk_evolution", run_entk_evolution_seed, "eNTK along training", trains=True,
                             needs_n0=True, n0_from="evolution_n", entk=True, figure="evolution"))
