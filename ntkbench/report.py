"""Leaderboard: rows of case results → one DataFrame → a terminal table."""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

ORDER = ["claim", "case", "metric"]
COLUMNS = ORDER + ["tier", "verdict", "expected", "margin", "curve_a", "alpha_a", "alpha_a_lo",
                   "alpha_a_hi", "curve_b", "alpha_b", "alpha_b_lo", "alpha_b_hi", "gap", "gap_lo",
                   "gap_hi", "window_lo", "window_hi", "method", "points", "sources", "error"]


def leaderboard_frame(rows: list[dict]) -> pd.DataFrame:
    """All rows, sorted by claim, case and metric (the order is independent of run order)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    columns = [c for c in COLUMNS if c in frame] + sorted(set(frame) - set(COLUMNS))
    return frame[columns].sort_values(ORDER, kind="stable").reset_index(drop=True)


def _with_ci(value, low, high) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def format_leaderboard(frame: pd.DataFrame) -> str:
    """The terminal table (exponents and gap with 95% CIs, window, verdict), then the list
    of experiments the numbers came from, which the ``source`` column points into."""
    if frame.empty:
        return "no ntkbench results"
    table, notes = [], {}

    def cite(sources: str) -> str:
        marks = [notes.setdefault(s, f"[{len(notes) + 1}]") for s in sources.split("; ") if s]
        return " ".join(marks)

    for row in frame.to_dict("records"):
        failed = not isinstance(row.get("alpha_a"), float) or math.isnan(row["alpha_a"])
        table.append({
            "claim": row["claim"], "case": row["case"], "metric": row["metric"],
            "α_a [CI]": "—" if failed else f"{row['curve_a']} {_with_ci(row['alpha_a'], row['alpha_a_lo'], row['alpha_a_hi'])}",
            "α_b [CI]": "—" if failed else f"{row['curve_b']} {_with_ci(row['alpha_b'], row['alpha_b_lo'], row['alpha_b_hi'])}",
            "gap [CI]": "—" if failed else _with_ci(row["gap"], row["gap_lo"], row["gap_hi"]),
            "δ": "—" if failed else f"{row['margin']:g}",
            "window": "—" if failed else f"{row['window_lo']:.0f}–{row['window_hi']:.0f} {row['method']} ({row['points']:.0f} pts)",
            "verdict": row["verdict"],
            "source": row["error"] if failed else cite(row["sources"]),
        })
    lines = [tabulate(table, headers="keys", tablefmt="github", disable_numparse=True)]
    lines += [f"{mark} {source}" for source, mark in notes.items()]
    return "\n".join(lines)
