"""Where and with what a run happened: devices, CPU, stack versions, commit and date.

Recorded in every report and run record; the device kind also names the reference table a
run is compared with, so that numbers from different kinds of device are never mixed up
silently.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path


def device_kind() -> str:
    """jax's backend for this process: "cpu", "gpu" or "tpu"."""
    from ntkbench import _env  # noqa: F401  (XLA flags before jax starts)
    import jax

    return jax.default_backend()


def environment(root: Path | None = None) -> dict:
    """Machine and environment metadata (a flat, JSON-ready dict)."""
    from ntkbench import _env  # noqa: F401  (XLA flags before jax starts)
    import jax

    from ntkbench.experiments import KEYED_PACKAGES, package_versions

    devices = jax.devices()
    commit, dirty = git_state(root or Path.cwd())
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device_kind": device_kind(),
        "device_name": devices[0].device_kind,
        "device_count": len(devices),  # over every process of a multi-process run
        "process_count": jax.process_count(),
        "jax_backend": jax.default_backend(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(KEYED_PACKAGES + ("pandas", "pytest", "pytest-xdist")),
        "commit": commit,
        "dirty": dirty,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(root: Path) -> tuple[str, bool | None]:
    """(commit, whether tracked files differ from it) of the repository at ``root``;
    ("unknown", None) outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def versions_text(versions: dict) -> str:
    """Package versions as one compact cell: ``jax=0.10.2;flax=0.12.8;…``."""
    return ";".join(f"{name}={version}" for name, version in versions.items())
