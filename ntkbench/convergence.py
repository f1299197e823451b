"""Did every network of an experiment train? The gate between training records and verdicts.

A run that did not learn (its lowest train loss is at least ``LEARNED_FRACTION`` of the
trivial predictor's) or that the step cap cut while its validation loss was still improving
cannot support a verdict: its case becomes an error row naming the run.
"""

from __future__ import annotations

import pandas as pd

LEARNED_FRACTION = 0.9


class NotConvergedError(RuntimeError):
    """A network of the case did not learn, or was cut while still improving."""


def training_failures(records: pd.DataFrame) -> list[str]:
    """One phrase per failed run of a network experiment's records (seed, n, what happened)."""
    failures = []
    for row in records.sort_values(["n", "seed"]).itertuples():
        if row.min_train_mse >= LEARNED_FRACTION * row.trivial_train_mse:
            failures.append(f"n={row.n} seed {row.seed} did not learn (train MSE {row.min_train_mse:.3g} "
                            f"vs trivial {row.trivial_train_mse:.3g})")
        elif row.cut:
            failures.append(f"n={row.n} seed {row.seed} was cut at step {row.last_step} while still "
                            f"improving (best step {row.best_step})")
    return failures


def check_trained(result) -> None:
    """Raise :class:`NotConvergedError` (one line) when any run of a network experiment failed."""
    failures = training_failures(result.records)
    if failures:
        more = f" (and {len(failures) - 1} more runs)" if len(failures) > 1 else ""
        raise NotConvergedError(f"{result.spec.label}: {failures[0]}{more}")
