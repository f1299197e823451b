"""Hand-built leaderboard rows, run metadata and stored runs for the reference, report, run
store, CLI and history tests (no network is trained, no kernel computed)."""

from __future__ import annotations

import math
from pathlib import Path

from ntkbench.cases import Case, base_row, error_row
from ntkbench.claims import get_claim
from ntkbench.scaling_claims import evaluate_scaling
from ntkbench.fit import PairedFit
from ntkbench.outputs import results_document
from ntkbench.references import ReferenceTable, reference_row
from ntkbench.report import leaderboard_frame
from ntkbench.runs import save_run
from ntkbench.tiers import get_tier

TIER = get_tier("smoke")
SOURCE = "nn:mlp/mnist1d@0123456789 (computed, 3s) /cache/nn-0123456789.json"  # as the table cites it
SOURCES = [{"label": "nn:mlp/mnist1d@0123456789", "path": "/cache/nn-0123456789.json", "elapsed_s": 3.2,
            "computed": True}]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
NAN = math.nan


def metadata(**changes) -> dict:
    """Run metadata shaped like ``ntkbench.metadata.environment()`` plus the tier."""
    return {"date": "2025-01-02T03:04:05+00:00", "tier": "smoke", "device_kind": "cpu",
            "device_name": "cpu", "device_count": 1, "jax_backend": "cpu", "cpu": "Test CPU",
            "versions": {"jax": "0.10.2", "neural-tangents": "0.6.5"}, "commit": COMMIT,
            "dirty": False, **changes}


def result_row(arch: str = "mlp", metric: str = "test_mse", *, gap: float = 0.21, gap_ci=(0.1, 0.3),
               alpha_a: float = 0.61, alpha_b: float = 0.4, claim: str = "C1") -> dict:
    """A measured row; the verdict follows ``gap_ci`` (C1's δ is 0.05), not ``gap``."""
    fit = PairedFit(alpha_a=alpha_a, alpha_a_ci=(alpha_a - 0.1, alpha_a + 0.1), alpha_b=alpha_b,
                    alpha_b_ci=(alpha_b - 0.05, alpha_b + 0.05), gap=gap, gap_ci=gap_ci,
                    window=(128, 2048), method="loglog", points=5)
    return {**base_row(Case(claim, arch, "mnist1d", metric), TIER), **evaluate_scaling(get_claim(claim), fit),
            "sources": SOURCES, "error": ""}


def failed_row(arch: str = "zzz", metric: str = "test_mse") -> dict:
    return error_row(Case("C1", arch, "mnist1d", metric), TIER,
                     f"UnknownNameError: unknown architecture '{arch}'; known: cnn1d, mlp")


def key(row: dict) -> tuple[str, str, str]:
    return row["claim"], row["case"], row["metric"]


def standard_rows(**mlp_mse_changes) -> list[dict]:
    """Three measured cases (one per verdict) and a failed one; ``mlp_mse_changes`` go to
    the mlp/test_mse row."""
    return [result_row("mlp", "test_mse", **mlp_mse_changes),
            result_row("mlp", "test_error", gap_ci=(-0.3, -0.1)),
            result_row("cnn1d", "test_mse", gap_ci=(-0.1, 0.2)), failed_row()]


def reference_table(path, rows: list[dict], meta: dict | None = None) -> ReferenceTable:
    """A table holding ``rows`` (the measured ones) as references."""
    return ReferenceTable(path, {key(r): reference_row(r, meta or metadata()) for r in rows
                                 if isinstance(r.get("gap"), float)})


def save(directory, rows: list[dict], day: int = 2, **meta) -> Path:
    """Store ``rows`` as a run dated 2025-01-<day>; its path."""
    document = results_document(leaderboard_frame(rows), metadata(date=f"2025-01-{day:02d}T03:04:05+00:00", **meta))
    return save_run(directory, document)
