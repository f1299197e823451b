"""``ntkbench``: the stored runs, their comparison (exit status for CI) and their history.

    ntkbench runs                       list stored runs (saved with --ntkbench-save-run)
    ntkbench compare RUN [BASELINE]     RUN against BASELINE (default: the latest earlier run
                                        of the same tier and device kind)
    ntkbench compare RUN --references   RUN against the reference table of its tier
    ntkbench compare … --json           the comparison as JSON lines
    ntkbench history [-o FILE]          HTML view of every statistic across runs

``compare`` exits 1 when a case drifted or lost its numbers, 0 otherwise, 2 on bad input
(a run record that cannot be read included). ``runs`` and ``history`` skip such records
with a warning.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from ntkbench.runs import DEFAULT_DIR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ntkbench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", default=DEFAULT_DIR, type=Path, help=f"run store (default {DEFAULT_DIR})")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("runs", help="list stored runs")
    compare = commands.add_parser("compare", help="compare a run with another run or with the references")
    compare.add_argument("run", help="run id, unique id prefix, path, or latest / -1 / -2 …")
    compare.add_argument("baseline", nargs="?",
                         help="run to compare with (default: the latest earlier run of the same tier and device kind)")
    compare.add_argument("--references", nargs="?", const="reference_results", type=Path, metavar="DIR",
                         help="compare with DIR/<tier>-<device kind>.csv instead (default DIR: reference_results)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON lines, one per case")
    history = commands.add_parser("history", help="write the HTML history of every statistic")
    history.add_argument("-o", "--output", type=Path, default=Path(".ntkbench/history.html"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status = {"runs": _runs, "compare": _compare, "history": _history}[args.command](args)
        for warning in caught:
            print(f"ntkbench: {warning.message}", file=sys.stderr)
        return status
    except (ValueError, OSError) as exc:
        print(f"ntkbench: {exc}", file=sys.stderr)
        return 2


def _runs(args) -> int:
    from ntkbench.outputs import markdown_table
    from ntkbench.runs import readable_runs, run_summary

    runs = readable_runs(args.runs_dir)
    print(markdown_table([run_summary(*run) for run in runs]) if runs else f"no runs in {args.runs_dir}")
    return 0


def _baseline(runs_dir: Path, path: Path, meta: dict) -> Path:
    """The latest run stored before ``path`` with the same tier and device kind."""
    from ntkbench.runs import readable_runs

    same = [p for p, frame in readable_runs(runs_dir) if p.name < path.name
            and (frame.attrs["metadata"].get("tier"), frame.attrs["metadata"].get("device_kind"))
            == (meta.get("tier"), meta.get("device_kind"))]
    if not same:
        raise ValueError(f"{path.stem}: no earlier run of tier {meta.get('tier')!r} on {meta.get('device_kind')!r}; "
                         "name a baseline")
    return same[-1]


def _compare(args) -> int:
    from ntkbench.outputs import markdown_table, references_note
    from ntkbench.references import DRIFT, MISSING, ReferenceTable, compare_rows, find_table, table_from_results
    from ntkbench.runs import find_run, load_run

    path = find_run(args.runs_dir, args.run)
    frame = load_run(path)
    meta = frame.attrs["metadata"]
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    if args.references is not None:
        found = find_table(args.references, meta.get("tier"), meta.get("device_kind"))
        if not found.exists():
            raise ValueError(f"{args.references}: no reference table for tier {meta.get('tier')!r}")
        table = ReferenceTable.load(found)
        kinds = sorted(table.device_kinds)
    else:
        if args.baseline:
            base_path = find_run(args.runs_dir, args.baseline)
        else:
            base_path = _baseline(args.runs_dir, path, meta)
            say(f"baseline: {base_path.stem}, the latest earlier run of tier {meta.get('tier')!r} "
                f"on {meta.get('device_kind')!r}")
        base = load_run(base_path)
        if base.attrs["metadata"].get("tier") != meta.get("tier"):
            raise ValueError(f"{path.stem} is of tier {meta.get('tier')!r}, {base_path.stem} of tier "
                             f"{base.attrs['metadata'].get('tier')!r}: runs of different tiers do not compare")
        table = table_from_results(base, base.attrs["metadata"], base_path)
        kinds = [base.attrs["metadata"].get("device_kind")]
    rows = compare_rows(table, frame.to_dict("records"))
    say(f"{path.stem} vs {table.path}")
    note = references_note({"path": str(table.path), "device_kind": meta.get("device_kind"), "device_kinds": kinds})
    if meta.get("device_kind") not in kinds and kinds:
        say(note)
    bad = [r for r in rows if r["status"] in (DRIFT, MISSING)]
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
    else:
        print(markdown_table(rows))
    say(f"{len(bad)} of {len(frame)} cases drifted or lost their numbers" if bad else "no drift")
    return 1 if bad else 0


def _history(args) -> int:
    from ntkbench.history import history_html
    from ntkbench.runs import readable_runs
    from ntkbench.storage import atomic_write_bytes

    atomic_write_bytes(args.output, history_html(readable_runs(args.runs_dir)).encode("utf-8"))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
