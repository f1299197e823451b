"""History across stored runs: each claim's statistic and exponents run after run, with
the runs where a case drifted from the run before it marked, as one offline HTML page."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from ntkbench.outputs import STYLE, html_table
from ntkbench.references import DRIFT, ReferenceTable, table_from_results

KEY = ["claim", "case", "metric"]


def history_frame(runs: list[tuple[Path, pd.DataFrame]]) -> pd.DataFrame:
    """One row per (run, claim, case, metric), runs (path, results) in store order, with
    ``drift``: whether the case drifted from the latest earlier run of the same tier that had it."""
    frames, known = [], {}  # known: tier → {case key: its latest reference row}
    for index, (path, frame) in enumerate(runs):
        meta = frame.attrs["metadata"]
        if frame.empty:
            continue
        earlier = known.setdefault(meta.get("tier"), {})
        table = ReferenceTable(path, dict(earlier))
        drift = [table.compare(row)["reference"] == DRIFT for row in frame.to_dict("records")]
        frames.append(frame.assign(run=path.stem, run_index=index, tier_run=meta.get("tier"), drift=drift))
        earlier.update(table_from_results(frame, meta, path).rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _figure(group: pd.DataFrame, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    x = group["run_index"].to_numpy()
    for column, label in (("gap", "gap / statistic"), ("alpha_a", "α_a"), ("alpha_b", "α_b")):
        if column not in group or group[column].isna().all():
            continue
        y = group[column].to_numpy(float)
        if column == "gap":
            err = np.vstack([y - group["gap_lo"].to_numpy(float), group["gap_hi"].to_numpy(float) - y])
            ax.errorbar(x, y, yerr=np.abs(err), fmt="o-", capsize=3, label=label)
            flagged = group["drift"].to_numpy(bool)
            if flagged.any():
                ax.plot(x[flagged], y[flagged], "s", mfc="none", mec="red", ms=12, label="drift")
        else:
            ax.plot(x, y, ".--", label=label)
    ax.set(title=title, xlabel="run", xticks=x)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def history_html(runs: list[tuple[Path, pd.DataFrame]]) -> str:
    """The page: the list of runs, a value table (a column per run) and one figure per case."""
    frame = history_frame(runs)
    parts = ["<h1>ntkbench history</h1>"]
    if frame.empty:
        parts.append("<p>no stored runs with results</p>")
    else:
        listing = frame.drop_duplicates("run")[["run_index", "run", "tier_run"]]
        parts += ["<h2>Runs</h2>", html_table(listing.rename(columns={"tier_run": "tier"}).to_dict("records"))]
        cell = frame.apply(lambda r: (f"{r['gap']:.3g} {r['verdict']}" + (" DRIFT" if r["drift"] else ""))
                           if pd.notna(r.get("gap")) else r["verdict"], axis=1)
        table = frame.assign(cell=cell).pivot_table(index=KEY, columns="run_index", values="cell", aggfunc="first")
        parts += ["<h2>Statistic per run</h2>", html_table(table.reset_index().fillna("").to_dict("records"))]
        parts.append("<h2>Figures</h2>")
        measured = frame.dropna(subset=["gap"]) if "gap" in frame else frame.iloc[:0]
        for (claim, case, metric), group in measured.groupby(KEY, sort=True):
            title = f"{claim} {case} {metric}"
            parts.append(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
                         f'{_figure(group.sort_values("run_index"), title)}"></figure>')
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>ntkbench history</title>'
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")
