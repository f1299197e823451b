"""Report files from the one leaderboard DataFrame: Markdown, a self-contained HTML page
(tables and the claims' figures, viewable offline) and JSON with every number. The figures
are also copied into the report's ``figures/`` directory, which the page's rows link to (so
the links hold wherever the figures were drawn and wherever the report is moved)."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

import pandas as pd
from tabulate import tabulate

from ntkbench.report import claim_summaries, format_leaderboard, leaderboard_table, verdict_counts
from ntkbench.storage import atomic_write_bytes

RESULTS_FILE, MARKDOWN_FILE, HTML_FILE = "results.json", "leaderboard.md", "index.html"
FIGURES_DIR = "figures"  # the report's copies of the figures, which its rows link to
VOLATILE = ("sources",)  # says "cached"/"computed" and compute times: differs between runs
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f0f0f0}.holds{background:#d7f5d7}.does-not-hold{background:#f9d6d5}
.inconclusive{background:#fff3c4}.error{background:#f2b8b5}.drift{background:#f9d6d5}
.match{background:#d7f5d7}.new,.missing{background:#fff3c4}
figure{display:inline-block;margin:0 1em 1em 0}img{max-width:640px}"""


class Link(NamedTuple):
    """A link in an HTML table cell (text and address are escaped when written)."""

    text: str
    href: str


class ReportError(OSError):
    """The report directory cannot be written."""


def check_writable(directory: Path, what: str = "the report") -> None:
    """Fail early, with one line, when ``what`` cannot be written to ``directory``."""
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        probe = Path(directory) / ".ntkbench-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ReportError(f"cannot write {what} to {directory}: {exc.strerror or exc}") from None


def _json_value(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


FORMAT_VERSION = 2  # of results.json and run records (2: format_version, experiments)


def results_document(frame: pd.DataFrame, metadata: dict, references: dict | None = None) -> dict:
    """Everything a run measured, with where and how: the content of ``results.json`` and
    of a stored run record. ``experiments``: every experiment the rows read, with the
    compute time stored with it (whether this run computed or loaded it is left out, as it
    differs between runs of the same numbers)."""
    rows = frame.drop(columns=[c for c in VOLATILE if c in frame]).to_dict("records")
    experiments = {source["path"]: {"label": source["label"], "path": source["path"], "elapsed_s": source["elapsed_s"]}
                   for sources in (frame["sources"] if "sources" in frame else [])
                   if isinstance(sources, list) for source in sources}
    return {"format_version": FORMAT_VERSION, "metadata": metadata, "references": references or {},
            "experiments": sorted(experiments.values(), key=lambda e: e["label"]),
            "results": [{k: _json_value(v) for k, v in row.items()} for row in rows]}


def dumps(document: dict) -> bytes:
    return json.dumps(document, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")


def load_results(path: str | Path) -> pd.DataFrame:
    """The results of a report (its directory or ``results.json``) or of a stored run
    record, as a DataFrame; the run's metadata is in ``frame.attrs["metadata"]``."""
    path = Path(path)
    path = path / RESULTS_FILE if path.is_dir() else path
    try:
        document = json.loads(path.read_text())
        frame = pd.DataFrame(document["results"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an ntkbench results file ({type(exc).__name__}: {exc})") from None
    frame.attrs["metadata"] = document.get("metadata", {})
    frame.attrs["references"] = document.get("references", {})
    return frame


def describe(metadata: dict) -> str:
    """One line: device, stack and commit."""
    if not metadata:
        return ""
    versions = metadata.get("versions", {})
    dirty = " (uncommitted changes)" if metadata.get("dirty") else ""
    return (f"{metadata.get('device_kind')} ×{metadata.get('device_count')} ({metadata.get('device_name')}), "
            f"{metadata.get('cpu')}; jax {versions.get('jax')}, neural-tangents {versions.get('neural-tangents')}; "
            f"commit {str(metadata.get('commit'))[:12]}{dirty}; {metadata.get('date')}")


def write_report(directory: Path, frame: pd.DataFrame, metadata: dict, references: dict | None = None,
                 figures: list[Path] = (), paper: dict | None = None) -> list[Path]:
    """Write ``results.json``, ``leaderboard.md``, ``index.html`` and copies of ``figures``
    in ``figures/``; their paths."""
    directory = Path(directory)
    check_writable(directory)
    copies = copy_figures(figures, directory / FIGURES_DIR)
    title = f"ntkbench leaderboard (tier: {metadata.get('tier', '?')})"
    note = references_note(references)
    markdown = "\n\n".join(part for part in [f"# {title}", describe(metadata), note, format_leaderboard(frame)] if part)
    files = {RESULTS_FILE: dumps(results_document(frame, metadata, references)),
             MARKDOWN_FILE: (markdown + "\n").encode("utf-8"),
             HTML_FILE: _html(title, frame, metadata, note, figures, paper or {}).encode("utf-8")}
    for name, data in files.items():
        atomic_write_bytes(directory / name, data)
    return [directory / name for name in files] + copies


def copy_figures(figures, target: Path) -> list[Path]:
    """Copy ``figures`` into ``target``, dropping the PNGs an earlier report left there; the copies."""
    names = {Path(figure).name for figure in figures}
    for stale in target.glob("*.png"):
        if stale.name not in names:
            stale.unlink()
    copies = []
    for figure in map(Path, figures):
        copy = target / figure.name
        if not (copy.exists() and copy.samefile(figure)):
            atomic_write_bytes(copy, figure.read_bytes())
        copies.append(copy)
    return copies


def figure_links(frame: pd.DataFrame, figures) -> list[list[Link]]:
    """Per row of ``frame``: links (relative to the report) to the copies of its figures."""
    from ntkbench.plots import figures_of_row

    return [[Link(figure.stem.split("-")[0], f"{FIGURES_DIR}/{quote(figure.name)}")
             for figure in figures_of_row(row, figures)] for row in frame.to_dict("records")]


def references_note(references: dict | None) -> str:
    """Which reference table the run was compared with, and whether across device kinds."""
    if not references or not references.get("path"):
        return ""
    text = f"Compared with {references['path']}"
    kinds = references.get("device_kinds") or []
    if kinds and references.get("device_kind") not in kinds:
        text += (f" — across device kinds: this run on {references['device_kind']}, "
                 f"references from {', '.join(kinds)}")
    return text + "."


def _cell_html(value) -> str:
    """A cell's escaped text, or its links (a list of :class:`Link`)."""
    if isinstance(value, list) and all(isinstance(link, Link) for link in value):
        return " ".join(f'<a href="{html.escape(link.href)}">{html.escape(link.text)}</a>' for link in value)
    return html.escape(str(value))


def html_table(rows: list[dict], classed=("verdict", "reference")) -> str:
    """An HTML table of ``rows`` (escaped; a list of links becomes anchors); the columns in
    ``classed`` get their text's first word as CSS class."""
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = []
    for row in rows:
        cells = []
        for key, value in row.items():
            css = str(value).split(":")[0].replace(" ", "-") if key in classed else ""
            cells.append(f'<td class="{css}">{_cell_html(value)}</td>' if css else f"<td>{_cell_html(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html(title: str, frame: pd.DataFrame, metadata: dict, note: str, figures, paper: dict) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(describe(metadata))}</p>"]
    if note:
        parts.append(f"<p>{html.escape(note)}</p>")
    if not frame.empty:
        table, notes = leaderboard_table(frame)
        links = figure_links(frame, figures)
        if any(links):
            table = [{**cells, "figure": row_links} for cells, row_links in zip(table, links)]
        parts += ["<h2>Verdicts per claim</h2>", html_table(verdict_counts(frame)),
                  "<h2>Leaderboard</h2>", html_table(table), "<h2>Sources</h2><ol>"]
        parts += [f"<li>{html.escape(source)}</li>" for source in notes]
        parts.append("</ol>")
        for summary_title, summary in claim_summaries(frame):
            parts += [f"<h2>{html.escape(summary_title)}</h2>", html_table(summary.to_dict("records"))]
    else:
        parts.append("<p>no ntkbench results</p>")
    if paper:
        parts += ["<h2>The paper's expectations</h2>", html_table(list(paper.values()))]
    if figures:
        parts.append("<h2>Figures</h2>")
        for figure in figures:
            data = base64.b64encode(Path(figure).read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(Path(figure).name)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(Path(figure).name)}</figcaption></figure>")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")


def markdown_table(rows: list[dict]) -> str:
    return tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True)
