"""Leaderboard: rows of case results → one DataFrame → a terminal table."""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

from ntkbench.claims import CLAIMS, with_ci

ORDER = ["claim", "case", "metric"]
SUMMARY_TITLE = "Verdicts per claim, on its primary metric (the other metrics are secondary: see their rows)"
COLUMNS = ORDER + ["primary", "tier", "arch", "dataset", "variant", "family", "verdict", "expected", "margin",
                   "curve_a", "alpha_a", "alpha_a_lo", "alpha_a_hi", "curve_b", "alpha_b", "alpha_b_lo", "alpha_b_hi", "gap", "gap_lo",
                   "gap_hi", "window_lo", "window_hi", "method", "points", "seeds", "gap_alt1_window", "gap_alt1",
                   "gap_alt2_window", "gap_alt2", "slopes_a", "slopes_b", "trivial", "beats_trivial_a",
                   "beats_trivial_b", "ridge_at_edge", "function_distance", "agreement_distance", "control_checks",
                   "tolerance", "reference",
                   "reference_detail", "reference_value", "reference_device", "sources", "error"]


def leaderboard_frame(rows: list[dict]) -> pd.DataFrame:
    """All rows, sorted by claim, case and metric (the order is independent of run order)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    columns = [c for c in COLUMNS if c in frame] + sorted(set(frame) - set(COLUMNS))
    return frame[columns].sort_values(ORDER, kind="stable").reset_index(drop=True)


def _present(value) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def _alpha(row: dict, curve: str) -> str:
    if not _present(row.get(f"alpha_{curve}")):
        return "—"
    value, low, high = (row[f"alpha_{curve}{s}"] for s in ("", "_lo", "_hi"))
    return f"{row[f'curve_{curve}']} {with_ci(value, low, high)}"


def _window(row: dict) -> str:
    if row["method"] == "of training":  # a statistic along training: fractions of it, over seeds
        return f"{row['window_lo']:.0%}–{row['window_hi']:.0%} of training ({row['points']:.0f} seeds)"
    return f"{row['window_lo']:.0f}–{row['window_hi']:.0f} {row['method']} ({row['points']:.0f} pts)"


def _other_windows(row: dict) -> str:
    """The gap on the alternative windows (how far the verdict depends on the window)."""
    gaps = [(row.get(f"gap_alt{i}_window"), row.get(f"gap_alt{i}")) for i in (1, 2)]
    return "; ".join(f"{window}: {gap:+.3f}" for window, gap in gaps if _present(gap)) or "—"


def _sanity(row: dict) -> str:
    """The trivial predictor's loss, the first n at which each curve beats it, and how many
    kernel fits chose a ridge at an edge of the grid."""
    if not _present(row.get("trivial")):
        return "—"
    first = [f"{row[k]:.0f}" if _present(row.get(k)) else "never" for k in ("beats_trivial_a", "beats_trivial_b")]
    edge = row.get("ridge_at_edge")
    return f"{row['trivial']:.3f} ({'/'.join(first)})" + (f", ridge at grid edge ×{edge:.0f}" if _present(edge) and edge else "")


def leaderboard_table(frame: pd.DataFrame) -> tuple[list[dict], dict[str, str]]:
    """The displayed table (one dict of cell texts per row: exponents and gap with 95% CIs,
    window, verdict, reference status) and the experiments it cites, {description: mark}.
    An experiment is cited by its file, so the marks do not depend on which xdist worker
    computed it and which loaded it ("computed" if any row's process computed it)."""
    table, cited = [], {}

    def cite(sources: list[dict]) -> str:
        marks = []
        for source in sources:
            note = cited.setdefault(source["path"], {**source, "mark": f"[{len(cited) + 1}]"})
            note["computed"] = note["computed"] or source["computed"]
            marks.append(note["mark"])
        return " ".join(marks)

    for row in frame.to_dict("records"):
        measured = _present(row.get("gap"))
        cells = {
            "claim": row["claim"], "case": row["case"], "metric": row["metric"],
            "α_a [CI]": _alpha(row, "a"), "α_b [CI]": _alpha(row, "b"),
            "gap or statistic [CI]": with_ci(row["gap"], row["gap_lo"], row["gap_hi"]) if measured else "—",
            "δ": f"{row['margin']:g}" if measured else "—",
            "window": _window(row) if measured else "—",
            "gap on other windows": _other_windows(row),
            "trivial (first n beating it: a/b)": _sanity(row),
            "verdict": row["verdict"] + (f" ({row['control_checks']})" if isinstance(row.get("control_checks"), str) else ""),
        }
        if "function_distance" in frame:  # how far the two curves' predictors are apart
            distance = row.get("function_distance")
            cells["‖f_a−f_b‖²/‖f_b‖²"] = f"{distance:.3f}" if _present(distance) else "—"
        if "reference" in frame:
            detail = row.get("reference_detail")
            cells["reference"] = f"{row['reference']}: {detail}" if isinstance(detail, str) and detail \
                else row["reference"] if isinstance(row["reference"], str) else ""
        cells["source"] = cite(row["sources"]) if measured else row["error"]
        table.append(cells)
    notes = {f"{n['label']} ({'computed' if n['computed'] else 'cached'}, {n['elapsed_s']:.0f}s) {path}": n["mark"]
             for path, n in cited.items()}
    return table, notes


def format_leaderboard(frame: pd.DataFrame) -> str:
    """The terminal (and Markdown) table, the experiments its ``source`` column points to,
    the verdict counts per claim and the claims' own summaries."""
    if frame.empty:
        return "no ntkbench results"
    table, notes = leaderboard_table(frame)
    lines = [tabulate(table, headers="keys", tablefmt="github", disable_numparse=True)]
    lines += [f"{mark} {source}" for source, mark in notes.items()]
    lines += ["", verdict_summary(frame)]
    for title, table in claim_summaries(frame):
        lines += ["", title, tabulate(table, headers="keys", tablefmt="github", showindex=False)]
    return "\n".join(lines)


def verdict_counts(frame: pd.DataFrame) -> list[dict]:
    """One row per claim (and per control family): how many of its cases got each verdict on
    the claim's primary metric, so that a sweep such as C1b can be read at a glance (rows
    without a ``primary`` flag all count)."""
    primary = frame[frame["primary"].fillna(True).astype(bool)] if "primary" in frame else frame
    counts = primary.groupby(["claim", "verdict"]).size().unstack(fill_value=0)
    return [{"claim": claim, "primary metric": ", ".join(sorted(set(primary[primary["claim"] == claim]["metric"]))),
             "cases": int(row.sum()), **{verdict: int(row[verdict]) for verdict in counts.columns}}
            for claim, row in counts.iterrows()]


def verdict_summary(frame: pd.DataFrame) -> str:
    return f"{SUMMARY_TITLE}\n" + tabulate(verdict_counts(frame), headers="keys", tablefmt="github")


def claim_summaries(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Each registered claim's own summaries of its rows (:meth:`ntkbench.claims.Claim.summaries`)."""
    return [summary for claim_id, rows in frame.groupby("claim", sort=True) if claim_id in CLAIMS
            for summary in CLAIMS[claim_id].summaries(rows)]
