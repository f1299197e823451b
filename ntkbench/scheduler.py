"""The session's experiments as a dask task graph (``--ntkbench-scheduler``).

After collection the session knows every experiment its cases read. What the cache lacks
is submitted to dask.distributed — an existing scheduler (``ADDRESS``) or ``local:N``
worker processes on this machine — as one task per experiment; a kernel that loads a
network's trained parameters depends on that network's task. A worker computes in a
scratch cache of its own and returns the files it wrote (records, parameters, predictions);
the client alone writes them into the session's cache, as each task finishes. No shared
filesystem is needed and workers take no locks. dask retries a task whose worker is lost;
what finished is cached, so a rerun resumes. The cases then read everything from the cache.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import sys
from collections.abc import Callable, Iterator

LOCAL = "local:"
INSTALL_HINT = "pip install 'ntkbench[distributed]'"


def parse(value: str) -> int | str:
    """``local:N`` → N (worker processes on this machine); else the scheduler's address."""
    if value.startswith(LOCAL):
        workers = value[len(LOCAL):]
        if not workers.isdigit() or int(workers) < 1:
            raise ValueError(f"--ntkbench-scheduler {value}: local:N needs a whole number N ≥ 1 of workers")
        return int(workers)
    if not value or ":" not in value or any(c.isspace() for c in value):
        raise ValueError(f"--ntkbench-scheduler {value!r}: give a scheduler address (tcp://HOST:PORT) or local:N")
    return value


def check(value: str) -> None:
    """Before anything runs: dask.distributed is installed, and a TCP scheduler address
    answers (within 10 s)."""
    target = parse(value)
    if importlib.util.find_spec("distributed") is None:
        raise ValueError(f"--ntkbench-scheduler needs dask.distributed: {INSTALL_HINT}")
    if isinstance(target, str) and "://" not in target.removeprefix("tcp://"):
        host, _, port = target.removeprefix("tcp://").rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except (OSError, ValueError) as exc:
            raise ValueError(f"--ntkbench-scheduler {value}: no scheduler answers there ({exc})") from None


def experiment_graph(cases, tier) -> dict[str, tuple]:
    """key → (spec, keys of the experiments it depends on) for every experiment the cases
    read, networks first. A kernel that reads a trained network depends on it; a case that
    does not apply or names something unknown adds nothing (its own run reports it)."""
    from ntkbench.cases import case_experiments
    from ntkbench.experiments import get_kind

    specs = {}
    for case in cases:
        try:
            specs.update((spec.key, spec) for spec in case_experiments(case, tier))
        except Exception:  # noqa: BLE001,S112  (the case's own run reports it)
            continue
    networks = {spec.network().key: spec.network() for spec in specs.values() if get_kind(spec.kind).trains}
    graph = {key: (spec, ()) for key, spec in networks.items()}
    for key, spec in specs.items():
        if key not in graph:
            graph[key] = (spec, (spec.network().key,) if get_kind(spec.kind).trains else ())
    return graph


@contextlib.contextmanager
def connect(value: str) -> Iterator:
    """A dask client of the scheduler at ``value``'s address, or of :func:`local_cluster`'s
    N workers, each given one GPU of those visible (if any)."""
    from distributed import Client

    from ntkbench.scheduler_worker import OneGpuPerWorker

    target = parse(value)
    if isinstance(target, str):
        with Client(target, timeout="30s") as client:
            yield client
        return
    with local_cluster(target) as cluster, Client(cluster) as client:
        client.register_plugin(OneGpuPerWorker())
        yield client


@contextlib.contextmanager
def local_cluster(workers: int, **kwargs) -> Iterator:
    """A LocalCluster of single-threaded worker processes that keep this process's BLAS
    thread counts, where dask would set them to 1: LAPACK rounds differently with another
    thread count, and the numbers must be those of a run without dask."""
    import dask
    from distributed import LocalCluster

    unset = {f"distributed.nanny.pre-spawn-environ.{name}": None  # None: not set (dask's own convention)
             for name in dask.config.get("distributed.nanny.pre-spawn-environ") if name.endswith("_NUM_THREADS")}
    with dask.config.set(unset), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         **{"dashboard_address": ":0", **kwargs}) as cluster:
        yield cluster


def compute_missing(cases, tier, cache, value: str, report: Callable[[str], None]) -> int:
    """Compute on the scheduler every experiment of the cases that ``cache`` lacks; each
    result is stored as its task finishes, a failure is kept for the cases that read it.
    Returns how many experiments were computed."""
    graph = experiment_graph(cases, tier)
    missing = {key: entry for key, entry in graph.items() if not cache.stored(entry[0])}
    if not missing:
        report(f"ntkbench scheduler: all {len(graph)} experiments are cached")
        return 0
    from distributed import as_completed

    with connect(value) as client:
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        report(f"ntkbench scheduler: {client.scheduler.address}, {workers} workers, dashboard "
               f"{client.dashboard_link}: {len(missing)} experiment{'s' * (len(missing) > 1)} to compute, "
               f"{len(graph) - len(missing)} cached")
        futures = _submit(client, missing, cache)
        labels = {future.key: missing[key][0].label for key, future in futures.items()}
        specs = {future.key: missing[key][0] for key, future in futures.items()}
        done = computed = 0
        for future in as_completed(list(futures.values())):
            done += 1
            retried = _lost_workers(client, future.key)
            again = f", retried after {retried} lost worker{'s' * (retried > 1)}" if retried else ""
            try:
                result = future.result()
                cache.store(specs[future.key], result["files"])
            except Exception as exc:  # noqa: BLE001  (kept for the cases that read it)
                cache.failures[specs[future.key].key] = exc
                report(f"ntkbench: {labels[future.key]} failed ({type(exc).__name__}{again}) [{done}/{len(futures)}]")
                continue
            computed += 1
            report(f"ntkbench: computed {labels[future.key]} on {result['worker']}: {result['seconds']:.1f} s{again} "
                   f"[{done}/{len(futures)}]")
    return computed


def _submit(client, missing: dict, cache) -> dict:
    """One task per missing experiment, after the tasks (or with the cached files) of the
    networks it reads."""
    from ntkbench.experiments import _context_digest, package_versions
    from ntkbench.scheduler_worker import compute

    futures = {}
    session = {"data_dir": os.environ.get("NTKBENCH_DATA_DIR"), "versions": package_versions(),
               "code": _context_digest()}  # what the worker checks its own environment against
    for key, (spec, needs) in missing.items():  # needs: () or (the key of spec.network(),)
        spec.network().key  # computed here: the worker may not have the sources to key it
        for need in needs:  # a cached network's files: read once, however many tasks read them
            if need not in futures:
                futures[need] = client.scatter([{"files": cache.files(spec.network())}])[0]
        inputs = [futures[need] for need in needs]
        futures[key] = client.submit(compute, spec, _entries(spec), inputs, session, pure=False,
                                     key=f"{spec.kind}-{spec.arch}-{key[:12]}")
    return {key: futures[key] for key in missing}


def _lost_workers(client, key: str) -> int:
    """How many times the task's worker was lost while it ran (dask retried it each time)."""
    def suspicious(dask_scheduler, key):
        task = dask_scheduler.tasks.get(key)
        return task.suspicious if task is not None else 0

    return client.run_on_scheduler(suspicious, key=key)


def _entries(spec) -> list[tuple[str, str, object]]:
    """The registry entries the experiment runs on (architecture, dataset, its kind and its
    network's): shipped with the task, so that a worker computes with the session's code,
    a conftest.py's included (pickled by value when it is not an installed module)."""
    import cloudpickle

    from ntkbench.experiments import get_kind
    from ntkbench.registry import ARCHITECTURES, DATASETS

    entries = [("architecture", spec.arch, ARCHITECTURES.get(spec.arch)),
               ("dataset", spec.dataset, DATASETS.get(spec.dataset)),
               *(("kind", name, get_kind(name)) for name in {spec.kind, get_kind(spec.kind).network})]
    for _, _, entry in entries:
        for value in vars(entry).values():
            module = sys.modules.get(getattr(value, "__module__", None) or "")
            if module is not None and not module.__name__.startswith("ntkbench") and _local(module):
                cloudpickle.register_pickle_by_value(module)
    return entries


def _local(module) -> bool:
    """A module a worker may not be able to import: not from an installed distribution."""
    path = getattr(module, "__file__", None) or ""
    return "site-packages" not in path and "dist-packages" not in path
