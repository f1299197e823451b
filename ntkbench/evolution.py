"""The experiment kind "entk_evolution": the eNTK along the training of one network.

The network trained on n0 points is read back at its checkpoints (log-spaced early ones,
and eight evenly spaced in learning-rate time up to its best validation step: its useful
training). At each checkpoint a record holds the angles between its eNTK on the probe set
(the first test points) and every other checkpoint's, plain and centred (CKA). At the
checkpoints nearest to k/8 of the training time (those the statistics of
:mod:`ntkbench.travel` read) the eNTK is also computed on the seed's n0 training points, the
validation and the test points, and the record holds the test loss of kernel regression
with that kernel alone (no offset); elsewhere those losses are NaN.
"""

from __future__ import annotations

import numpy as np

from ntkbench.experiments import Context, ExperimentKind, register_kind
from ntkbench.kernels import entk_gram, kernel_angle, kernel_distance
from ntkbench.regression import fit_ridge
from ntkbench.runners import evaluate, trained_params
from ntkbench.train_config import learning_rate_time
from ntkbench.travel import TooShortError, even_checkpoints

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
    steps = np.array([step for step, _ in checkpoints])
    times = learning_rate_time(spec.train, steps)
    try:
        regressed = set(even_checkpoints(steps, times).tolist())
    except TooShortError:  # the statistics will say so; every checkpoint is regressed for the record
        regressed = set(range(len(checkpoints)))
    records, probes = [], []
    for i, ((step, params), time) in enumerate(zip(checkpoints, times)):
        record = {"seed": seed, "n": n, "step": int(step), "time": float(time),
                  "epoch": step * min(spec.train.batch_size, n) / n}
        description = f"eNTK {spec.arch} seed {seed} step {step}"
        # the probe kernels are all computed alike, so that their angles compare like with like
        probes.append(entk_gram(ctx.model, params, x_all[probe], precision=spec.entk_precision,
                                description=f"{description} (probe)"))
        losses = dict.fromkeys(evaluate(zero[test], d), float("nan"))
        if i in regressed:
            gram = entk_gram(ctx.model, params, x_all, precision=spec.entk_precision, description=description)
            fit = fit_ridge(gram[:n, :n], gram[val, :n], gram[test, :n], ctx.targets(seed)[:n], d.targets_val,
                            zero[:n], zero[val], zero[test], spec.ridge_grid)
            losses = evaluate(fit.test_predictions, d)
        records.append({**record, **{f"kernel_{k}": v for k, v in losses.items()}})
    for record, kernel in zip(records, probes):
        record["distance_from_init"] = kernel_distance(probes[0], kernel)
        record["angle_to"] = [kernel_angle(kernel, other) for other in probes]
        record["cka_angle_to"] = [kernel_angle(kernel, other, centred=True) for other in probes]
    return records


register_kind(ExperimentKind("entk_evolution", run_entk_evolution_seed, "eNTK along training", trains=True,
                             needs_n0=True, n0_from="evolution_n", entk=True, figure="evolution"))
