"""The run store: one JSON record (metadata + every result) per saved pytest run."""

from __future__ import annotations

import itertools
import re
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


def list_runs(directory: Path) -> list[Path]:
    """Stored runs, oldest first (names start with the UTC date)."""
    return sorted(Path(directory).glob("*.json"))


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


def run_summary(path: Path) -> dict:
    """One line of ``ntkbench runs``."""
    frame = load_results(path)
    meta = frame.attrs["metadata"]
    counts = frame["verdict"].value_counts().to_dict() if not frame.empty else {}
    return {"run": path.stem, "date": meta.get("date"), "tier": meta.get("tier"),
            "device": f"{meta.get('device_kind')} ×{meta.get('device_count')}",
            "commit": str(meta.get("commit"))[:12] + ("+dirty" if meta.get("dirty") else ""),
            "cases": len(frame), **{verdict: counts[verdict] for verdict in sorted(counts)}}
