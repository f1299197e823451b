"""What a dask worker runs for ``--ntkbench-scheduler`` (see :mod:`ntkbench.scheduler`):
one experiment computed in a scratch cache, its files returned to the client; and the
plugin that gives each local worker one GPU."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from distributed import WorkerPlugin, get_worker


class OneGpuPerWorker(WorkerPlugin):
    """Worker plugin: before jax starts in a local worker, restrict it to one visible GPU,
    worker i → the i-th, round robin (nothing on a machine without GPUs)."""

    name = "ntkbench-one-gpu-per-worker"

    def setup(self, worker) -> None:
        from ntkbench.session import pin_gpu

        if str(worker.name).isdigit():
            pin_gpu(int(worker.name))


def compute(spec, entries, inputs: list[dict], session: dict) -> dict:
    """On a worker: compute one experiment in a scratch cache holding the files of the
    experiments it reads (``inputs``: their tasks' results); the files it wrote, the
    worker's address and the seconds it took."""
    from ntkbench.cache import ExperimentCache
    from ntkbench.experiments import _context_digest, package_versions
    from ntkbench.storage import atomic_write_bytes, use_cache_root

    start = time.perf_counter()
    _register(entries)
    differ = {name: f"{version} here, {session['versions'][name]} in the session"
              for name, version in package_versions().items() if session["versions"].get(name) != version}
    if differ:  # its results would be stored under keys that do not describe them
        raise RuntimeError(f"worker {_worker_address()} has other package versions: {differ}")
    if _context_digest() != session["code"]:
        raise RuntimeError(f"worker {_worker_address()} runs other ntkbench code than the session")
    if session["data_dir"] and not os.environ.get("NTKBENCH_DATA_DIR"):
        os.environ["NTKBENCH_DATA_DIR"] = session["data_dir"]
    with tempfile.TemporaryDirectory(prefix="ntkbench-task-") as scratch:
        cache = ExperimentCache(Path(scratch))
        given = {name for result in inputs for name in result["files"]}
        for result in inputs:
            for name, data in result["files"].items():
                atomic_write_bytes(cache.root / name, data)
        with use_cache_root(_worker_root()):  # generated datasets: once per worker
            cache.get(spec)
        written = {name: data for name, data in cache.files(spec).items() if name not in given}
    return {"files": written, "worker": _worker_address(), "seconds": time.perf_counter() - start}


def _register(entries) -> None:
    from ntkbench.experiments import KINDS
    from ntkbench.registry import ARCHITECTURES, DATASETS

    registries = {"architecture": ARCHITECTURES, "dataset": DATASETS}
    for registry, name, entry in entries:
        if registry == "kind":
            KINDS[name] = entry
        else:
            registries[registry].put(name, entry)


def _worker_root() -> Path:
    try:
        return Path(get_worker().local_directory) / "ntkbench"
    except ValueError:  # not on a dask worker
        return Path(tempfile.gettempdir()) / f"ntkbench-worker-{os.getpid()}"


def _worker_address() -> str:
    try:
        return get_worker().address
    except ValueError:
        return f"pid {os.getpid()}"
