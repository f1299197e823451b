"""Timing helpers shared by the scripts of this folder."""

from __future__ import annotations

import time

import jax


def best_time(fn, repeats: int):
    """(best wall time of ``repeats`` calls of ``fn`` after one call that compiles, its result)."""
    result = jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times), result
