"""On-disk experiment cache: results stored by spec hash, written atomically, computed once.

Each experiment is computed seed by seed; after every seed the records so far are saved
(``<key>.partial.json``), so an interrupted run resumes where it stopped. A file lock per
key makes concurrent pytest-xdist workers wait for each other instead of computing the same
experiment twice; within a process, results are also kept in memory. Every file is checked
against the schema of a stored experiment when it is read: a damaged or ill-formed one is
named in a warning and recomputed. A cache in a read-only directory is read without locks.

An experiment's files (its records, and the parameters and predictions it stored) can also
be read and written as a whole (:meth:`ExperimentCache.files`, :meth:`ExperimentCache.store`):
that is how a scheduler's workers hand their results to the one process that writes the
cache. A cache that only ``collects`` computes nothing: a missing experiment raises
:class:`NotInCacheError`.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ntkbench import progress
from ntkbench.experiments import Context, ExperimentSpec, package_versions, run_seeds, seed_groups
from ntkbench.storage import atomic_write_bytes, cache_root, locked, read_valid, require_writable


@dataclasses.dataclass(frozen=True)
class ExperimentResult:
    spec: ExperimentSpec
    records: pd.DataFrame  # one row per (seed, n)
    path: Path
    elapsed_s: float  # compute time when it was computed
    from_cache: bool  # loaded rather than computed in this process

    def curve(self, metric: str):
        """(n_grid, losses of shape (seeds, len(n_grid))) for one metric column."""
        table = self.records.pivot(index="seed", columns="n", values=metric)
        table = table.loc[list(self.spec.seeds), list(self.spec.n_grid)]
        return list(self.spec.n_grid), table.to_numpy(dtype=float)


class NotInCacheError(LookupError):
    """An experiment that a collecting cache does not hold (complete)."""


class ExperimentCache:
    def __init__(self, root: Path | None = None, collect: bool = False):
        self.root = Path(root) if root is not None else cache_root() / "experiments"
        self.collect = collect
        self._memory: dict[str, ExperimentResult] = {}
        self.computed: list[str] = []  # keys computed (not loaded) by this instance
        self.failures: dict[str, BaseException] = {}  # key → why it failed elsewhere (a scheduler's worker)

    def path(self, spec: ExperimentSpec) -> Path:
        return self.root / f"{spec.kind}-{spec.key[:20]}.json"

    def get(self, spec: ExperimentSpec) -> ExperimentResult:
        """The experiment's result: from memory, from disk, or computed now (and stored)."""
        if spec.key in self._memory:
            return self._memory[spec.key]
        if spec.key in self.failures:
            raise self.failures[spec.key]
        path = self.path(spec)
        if self.collect:
            return self._collected(spec, path)
        with locked(path) as writable:
            stored = _read(path, spec, complete=True)
            if stored is not None:
                result = ExperimentResult(spec, pd.DataFrame(stored["records"]), path,
                                          stored["elapsed_s"], True)
                progress.report(progress.experiment_line(spec.label, spec.n_grid, spec.seeds, result.elapsed_s,
                                                         computed=False))
            else:
                require_writable(writable, path)
                result = self._compute(spec, path)
        self._memory[spec.key] = result
        return result

    def _collected(self, spec: ExperimentSpec, path: Path) -> ExperimentResult:
        """The stored experiment, read without waiting for a lock (a running session may hold
        it); NotInCacheError when it is not complete."""
        stored = _read(path, spec, complete=True)
        if stored is None:
            partial = path.with_suffix(".partial.json").exists()
            raise NotInCacheError(f"{spec.label} is not in the cache{' (partly computed)' if partial else ''}")
        result = ExperimentResult(spec, pd.DataFrame(stored["records"]), path, stored["elapsed_s"], True)
        self._memory[spec.key] = result
        return result

    def stored(self, spec: ExperimentSpec) -> bool:
        """Whether the experiment is stored complete (and valid)."""
        return spec.key in self._memory or _read(self.path(spec), spec, complete=True) is not None

    def _folders(self, spec: ExperimentSpec) -> list[Path]:
        name = self.path(spec).stem
        return [self.root / "params" / name, self.root / "predictions" / name]

    def files(self, spec: ExperimentSpec) -> dict[str, bytes]:
        """Every file the experiment stored (records, parameters, predictions), by path
        relative to the cache's root."""
        paths = [self.path(spec), *(p for folder in self._folders(spec) for p in sorted(folder.rglob("*"))
                                    if p.is_file() and not p.name.endswith(".lock"))]
        return {str(p.relative_to(self.root)): p.read_bytes() for p in paths if p.exists()}

    def store(self, spec: ExperimentSpec, files: dict[str, bytes]) -> None:
        """Write an experiment's files computed elsewhere (atomically, under its lock): the
        parameters and predictions first, its records last, so that a complete record file
        always has its parameters."""
        path = self.path(spec)
        records = str(path.relative_to(self.root))
        if records not in files:
            raise ValueError(f"no records of {spec.label} among the files to store")
        _checked(json.loads(files[records]), spec, complete=True)  # ValueError unless complete
        with locked(path) as writable:
            require_writable(writable, path)
            for name in sorted(files, key=lambda name: name == records):
                atomic_write_bytes(self.root / name, files[name])

    def _compute(self, spec: ExperimentSpec, path: Path) -> ExperimentResult:
        partial_path = path.with_suffix(".partial.json")
        partial = _read(partial_path, spec, complete=False) or {"key": spec.key, "records": [], "elapsed_s": 0.0}
        done = {r["seed"] for r in partial["records"]}
        if done:
            progress.report(f"ntkbench: resuming {spec.label}: seeds {', '.join(map(str, sorted(done)))} "
                            f"from {partial_path}")
        context = Context(spec, self)
        for seeds in seed_groups(context, [seed for seed in spec.seeds if seed not in done]):
            start = time.perf_counter()
            partial["records"] += run_seeds(context, seeds)
            partial["elapsed_s"] += time.perf_counter() - start
            _write(partial_path, partial)
            progress.report(progress.experiment_line(spec.label, spec.n_grid, seeds, time.perf_counter() - start,
                                                     computed=True))
        stored = {**partial, "spec": spec.to_dict(), "versions": package_versions(),
                  "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        _write(path, stored)
        partial_path.unlink(missing_ok=True)
        self.computed.append(spec.key)
        return ExperimentResult(spec, pd.DataFrame(stored["records"]), path, stored["elapsed_s"], False)

    def _params_path(self, spec: ExperimentSpec, name: str) -> Path:
        return self.root / "params" / f"{spec.kind}-{spec.key[:20]}" / f"{name}.msgpack"

    def save_params(self, spec: ExperimentSpec, name: str, params) -> None:
        """Store parameters produced by an experiment (atomically, as flax msgpack)."""
        from flax import serialization

        atomic_write_bytes(self._params_path(spec, name), serialization.to_bytes(params))

    def _predictions_path(self, spec: ExperimentSpec, seed: int, n: int) -> Path:
        return self.root / "predictions" / f"{spec.kind}-{spec.key[:20]}" / f"seed{seed}-n{n}.npy"

    def save_predictions(self, spec: ExperimentSpec, seed: int, n: int, predictions: np.ndarray) -> None:
        """Store a run's test predictions (atomically, float32 .npy)."""
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(predictions, dtype=np.float32))
        atomic_write_bytes(self._predictions_path(spec, seed, n), buffer.getvalue())

    def load_predictions(self, spec: ExperimentSpec, seed: int, n: int) -> np.ndarray | None:
        """A run's stored test predictions, or None when absent or unreadable."""
        try:
            return np.load(self._predictions_path(spec, seed, n))
        except (OSError, ValueError):
            return None

    def load_checkpoints(self, spec: ExperimentSpec, prefix: str, template) -> dict:
        """step → stored parameters named ``<prefix><step>``; empty when any is unreadable."""
        folder = self._params_path(spec, prefix).parent
        steps = sorted(int(p.name[len(prefix):-len(".msgpack")]) for p in folder.glob(f"{prefix}*.msgpack")
                       if p.name[len(prefix):-len(".msgpack")].isdigit())
        stored = {step: self.load_params(spec, f"{prefix}{step}", template) for step in steps}
        return stored if stored and all(p is not None for p in stored.values()) else {}

    def load_params(self, spec: ExperimentSpec, name: str, template):
        """Stored parameters shaped like ``template``, or None when absent or unreadable."""
        from flax import serialization

        path = self._params_path(spec, name)
        try:
            params = serialization.from_bytes(template, path.read_bytes())
            if _layout(params) != _layout(template):
                raise ValueError("shapes or dtypes differ from the model's")
            return params
        except FileNotFoundError:
            return None
        except Exception as exc:  # any unreadable file is recomputed, never trusted
            warnings.warn(f"ignoring unreadable parameter file {path}: {exc}", stacklevel=2)
            return None


def _layout(tree):
    import jax

    return jax.tree.structure(tree), [(np.shape(a), np.asarray(a).dtype) for a in jax.tree.leaves(tree)]


def _read(path: Path, spec: ExperimentSpec, complete: bool) -> dict | None:
    """The stored records of ``spec`` (every seed's when ``complete``, else a
    ``.partial.json``'s), or None when absent, damaged or ill-formed (then recomputed)."""
    return read_valid(path, lambda p: _checked(json.loads(p.read_bytes()), spec, complete), "cache file")


def _checked(document, spec: ExperimentSpec, complete: bool) -> dict:
    """``document`` if it has the schema of a stored experiment of ``spec``; else ValueError."""
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    if document.get("key") != spec.key:
        raise ValueError("its key is not the experiment's")
    records, elapsed = document.get("records"), document.get("elapsed_s")
    if not isinstance(records, list) or not all(
            isinstance(r, dict) and all(type(r.get(field)) is int for field in ("seed", "n")) for r in records):
        raise ValueError("records is not a list of objects with integer seed and n")
    if type(elapsed) not in (int, float) or not elapsed >= 0:
        raise ValueError("elapsed_s is not a non-negative number")
    seeds = {r["seed"] for r in records}
    if not seeds <= set(spec.seeds) or not {r["n"] for r in records} <= set(spec.n_grid):
        raise ValueError("records of seeds or sizes that the experiment does not have")
    if complete and seeds != set(spec.seeds):
        raise ValueError(f"no records of seeds {sorted(set(spec.seeds) - seeds)}")
    return document


def _write(path: Path, document: dict) -> None:
    atomic_write_bytes(path, json.dumps(document, indent=1, sort_keys=True).encode())
