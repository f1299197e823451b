"""More than one machine: jax's multi-process runtime, experiments split between processes.

Every process runs the same ``pytest benchmarks --ntkbench-distributed=…`` with the same
``NTKBENCH_CACHE_DIR`` on a shared filesystem. Before the first case, the session's
experiments are split between the processes — networks first (kernels after training load
their parameters), then kernels — each process computes its share on its own devices, and
all meet at a barrier after each round. The cases then load every experiment from the
shared cache, so each process prints the same leaderboard; only process 0 writes files.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def parse(value: str) -> dict:
    """``auto`` (cluster auto-detection: SLURM, Open MPI, Kubernetes, …) or
    ``HOST:PORT,NUM_PROCESSES,PROCESS_ID`` → keyword arguments of ``jax.distributed.initialize``."""
    if value == "auto":
        return {}
    try:
        address, processes, process = value.split(",")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(process) < int(processes):
            raise ValueError
    except ValueError:
        raise ValueError(f"--ntkbench-distributed must be 'auto' or HOST:PORT,NUM_PROCESSES,PROCESS_ID "
                         f"with 0 <= PROCESS_ID < NUM_PROCESSES, got {value!r}") from None
    return {"coordinator_address": address, "num_processes": int(processes), "process_id": int(process)}


def initialize(value: str) -> tuple[int, int]:
    """Join the multi-process runtime; (this process's index, number of processes)."""
    import jax

    try:
        jax.distributed.initialize(**parse(value))
    except (RuntimeError, ValueError) as exc:  # no cluster found, coordinator unreachable, …
        where = "found no cluster (SLURM, Open MPI, Kubernetes)" if value == "auto" else f"could not join {value}"
        raise ValueError(f"--ntkbench-distributed {where}: {' '.join(str(exc).split())[:300]}") from None
    return jax.process_index(), jax.process_count()


def share(items: Sequence[T], index: int, count: int) -> list[T]:
    """This process's items: every ``count``-th, from position ``index``."""
    return list(items[index::count])


def barrier(name: str) -> None:
    """Wait until every process gets here."""
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def compute_share(rounds: Iterable[Sequence], cache, index: int, count: int) -> int:
    """Compute this process's share of each round of experiment specs (sorted by key, so that
    every process splits them alike, dealt round robin across rounds), with a barrier after
    each round. An experiment that
    fails is left to its cases, which report the error. Returns how many were computed."""
    computed = dealt = 0
    for number, specs in enumerate(rounds):
        # the deal goes on where the last round stopped, so that small rounds spread too
        for spec in share(sorted(specs, key=lambda s: s.key), (index - dealt) % count, count):
            try:
                cache.get(spec)
                computed += 1
            except Exception as exc:  # noqa: BLE001  (reported by the cases that need it)
                print(f"ntkbench: process {index}: {spec.label} failed ({type(exc).__name__}); "
                      "its cases will report it", file=sys.stderr)
        dealt += len(specs)
        barrier(f"ntkbench-round-{number}")
    return computed


def experiment_rounds(cases, tier) -> list[list]:
    """The experiments of a session's cases in two rounds: the networks (those the cases read
    and those whose trained parameters a kernel needs), then everything else. A case that
    does not apply, or names something unknown, adds nothing (it reports itself)."""
    from ntkbench.cases import case_experiments
    from ntkbench.experiments import get_kind

    specs = {}
    for case in cases:
        try:
            specs.update((spec.key, spec) for spec in case_experiments(case, tier))
        except Exception:  # noqa: BLE001,S112  (the case's own run reports it)
            continue
    networks = {spec.network().key: spec.network() for spec in specs.values() if get_kind(spec.kind).trains}
    return [list(networks.values()), [spec for key, spec in specs.items() if key not in networks]]
