"""The run store: one JSON record (metadata + every result) per saved pytest run."""

from __future__ import annotations

import itertools
import re
import warnings
from pathlib import Path

from ntkbench.outputs import dumps, load_results
from ntkbench.storage import atomic_write_bytes, locked

DEFAULT_DIR = ".ntkbench/runs"


def save_run(directory: Path, document: dict) -> Path:
    """Store a run record as ``<date>-<tier>-<commit>.json`` (a second run of the same second
    as ``<date>.02-…``, which sorts after it); its path."""
    metadata = document["metadata"]
    stamp = re.sub(r"[^0-9T]", "", metadata.get("date", ""))[:15]
    rest = f"{metadata.get('tier', 'run')}-{str(metadata.get('commit', 'unknown'))[:8]}"
    directory = Path(directory)
    with locked(directory / ".store"):
        for k in itertools.count(1):
            path = directory / f"{stamp}{f'.{k:02d}' if k > 1 else ''}-{rest}.json"
            if not path.exists():
                break
        atomic_write_bytes(path, dumps(document))
    return path


RECORD_COLUMNS = ("claim", "case", "metric", "verdict")


def list_runs(directory: Path) -> list[Path]:
    """Stored runs, oldest first (names start with the UTC date)."""
    return sorted(Path(directory).glob("*.json"))


def load_run(path: Path):
    """A stored run's results (``ntkbench.outputs.load_results``), checked: a record that is
    not JSON, lacks results or lacks the columns every result has is a one-line ValueError
    naming the file."""
    frame = load_results(path)
    missing = [column for column in RECORD_COLUMNS if column not in frame] if not frame.empty else []
    if missing or not isinstance(frame.attrs["metadata"], dict) or "tier" not in frame.attrs["metadata"]:
        what = f"results without {', '.join(missing)}" if missing else "no tier in its metadata"
        raise ValueError(f"{path}: not an ntkbench run record ({what})")
    return frame


def readable_runs(directory: Path) -> list[tuple[Path, object]]:
    """(path, results) of every stored run that can be read, oldest first; each one that
    cannot is skipped with a warning naming it."""
    readable = []
    for path in list_runs(directory):
        try:
            readable.append((path, load_run(path)))
        except ValueError as exc:
            warnings.warn(f"skipping {exc}", stacklevel=2)
    return readable


def find_run(directory: Path, ref: str) -> Path:
    """A run by id (file stem), unique id prefix, position (``latest``, ``-1``, ``-2``…) or
    path to a record file."""
    runs, ref = list_runs(directory), str(ref)
    if ref == "latest":
        ref = "-1"
    if re.fullmatch(r"-\d+", ref):
        if not 1 <= int(ref[1:]) <= len(runs):
            raise ValueError(f"{directory}: {len(runs)} stored runs, no run {ref}")
        return runs[int(ref)]
    exact = [p for p in runs if p.stem == ref]
    if exact:
        return exact[0]
    if Path(ref).is_file():
        return Path(ref)
    matches = [p for p in runs if p.stem.startswith(ref)]
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise ValueError(f"{directory}: {found} matching {ref!r}; see `ntkbench runs`")
    return matches[0]


def run_summary(path: Path, frame) -> dict:
    """One line of ``ntkbench runs``: the run at ``path``, its results ``frame``."""
    meta = frame.attrs["metadata"]
    counts = frame["verdict"].value_counts().to_dict() if not frame.empty else {}
    return {"run": path.stem, "date": meta.get("date"), "tier": meta.get("tier"),
            "device": f"{meta.get('device_kind')} ×{meta.get('device_count')}",
            "commit": str(meta.get("commit"))[:12] + ("+dirty" if meta.get("dirty") else ""),
            "cases": len(frame), **{verdict: counts[verdict] for verdict in sorted(counts)}}
