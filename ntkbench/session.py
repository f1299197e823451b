"""What a pytest session does with its rows: settings read once, which outcomes fail a case,
and, on the controller only, the leaderboard, figures, reference tables, report and run
record. Rows reach the controller in each test report's ``user_properties``, which
pytest-xdist forwards, so ``-n 2`` prints one leaderboard and writes one set of files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ntkbench.storage import DATA_ENV

ROW_PROPERTY = "ntkbench_row"
SETTINGS_KEY = pytest.StashKey[dict]()
FAIL_ON = ("control", "drift", "new", "unexpected")
DEFAULT_REFERENCES = "reference_results"
DEFAULT_PLOTS = ".ntkbench/plots"


def settings(config: pytest.Config) -> dict:
    """Options resolved and checked before anything runs; bad input raises ValueError/OSError
    with one line (a malformed reference table names its file and line)."""
    from ntkbench.tiers import get_tier

    option = config.getoption
    tier = get_tier(option("ntkbench_tier")).with_overrides(option("ntkbench_set"))
    if option("ntkbench_data_dir"):  # read by the loaders, here and in xdist workers (inherited)
        data = Path(option("ntkbench_data_dir")).expanduser().resolve()
        if not data.is_dir():
            raise ValueError(f"--ntkbench-data-dir {option('ntkbench_data_dir')}: no such directory ({data})")
        os.environ[DATA_ENV] = str(data)
    cache = option("ntkbench_cache_dir")
    if cache and (config.invocation_params.dir / Path(cache).expanduser()).is_file():
        raise ValueError(f"--ntkbench-cache-dir {cache}: not a directory")
    fail_on = {name.strip() for name in option("ntkbench_fail_on").split(",") if name.strip()} - {"none"}
    if fail_on - set(FAIL_ON):
        raise ValueError(f"--ntkbench-fail-on: unknown {', '.join(sorted(fail_on - set(FAIL_ON)))}; "
                         f"choose from {', '.join(FAIL_ON)} or none")
    if option("ntkbench_update_references") and option("ntkbench_regen_references"):
        raise ValueError("--ntkbench-update-references and --ntkbench-regen-references exclude each other")
    references = config.rootpath / option("ntkbench_references")
    writes = option("ntkbench_update_references") or option("ntkbench_regen_references")
    if not references.is_dir() and option("ntkbench_references") != DEFAULT_REFERENCES and not writes:
        raise ValueError(f"--ntkbench-references {option('ntkbench_references')}: no such directory ({references})")
    paper = _check_references(references, tier.name)
    report = option("ntkbench_report")
    if not hasattr(config, "workerinput"):
        _check_outputs(config, tier.name)
    _check_architectures(tier, option("ntkbench_set"))
    _check_scheduler(config)
    return {"tier": tier, "fail_on": fail_on, "references": references, "paper": paper,
            "report": Path(report) if report else None,
            "mode": "update" if option("ntkbench_update_references")
            else "regenerate" if option("ntkbench_regen_references") else None}


def _check_outputs(config: pytest.Config, tier: str) -> None:
    """Every directory the run will write to, writable before the first case runs: the
    report, the run store (with --ntkbench-save-run) and a plots directory given explicitly
    (the default one is checked when the figures are drawn, so that a session that runs no
    case creates nothing)."""
    from ntkbench.outputs import check_writable

    option = config.getoption
    if option("ntkbench_report"):
        check_writable(Path(option("ntkbench_report")))
    if option("ntkbench_save_run"):
        check_writable(config.rootpath / option("ntkbench_runs_dir"), "the run record")
    if option("ntkbench_plots") not in ("none", DEFAULT_PLOTS):
        check_writable(config.rootpath / option("ntkbench_plots") / tier, "the figures")


def _check_scheduler(config: pytest.Config) -> None:
    value = config.getoption("ntkbench_scheduler")
    if not value:
        return
    from ntkbench.scheduler import check, parse

    parse(value)
    if config.getoption("ntkbench_collect"):
        raise ValueError("--ntkbench-scheduler and --ntkbench-collect exclude each other")
    if config.getoption("numprocesses", None) or hasattr(config, "workerinput"):
        raise ValueError("--ntkbench-scheduler spreads the experiments over its workers; drop -n")
    check(value)


def _check_architectures(tier, assignments: list[str]) -> None:
    """Architecture keywords given with --ntkbench-set: a known architecture, keywords its
    builder takes, values it accepts (its builder checks them), before anything runs."""
    named = {key.partition(".")[0] for key, _, _ in (a.partition("=") for a in assignments) if "." in key}
    if not named:
        return  # nothing to check: no import of the models in a session that sets none
    import inspect

    from ntkbench.registry import ARCHITECTURES

    for arch in sorted(named):
        try:
            entry = ARCHITECTURES.get(arch)
        except KeyError as exc:  # UnknownNameError, naming the known ones
            raise ValueError(f"--ntkbench-set {arch}.…: {exc}") from None
        kwargs = tier.arch_kwargs.get(arch, {})
        accepted = [name for name in inspect.signature(entry.build).parameters if name != "num_outputs"]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(f"--ntkbench-set {arch}.{unknown[0]}: {arch} takes no keyword {unknown[0]!r}; "
                             f"known: {', '.join(accepted)}")
        entry.build(10, **kwargs)


def pin_worker_gpu(worker_id: str) -> str | None:
    """Before jax starts in an xdist worker ``gwN``: :func:`pin_gpu` (N)."""
    return pin_gpu(int(worker_id.removeprefix("gw")))


def pin_gpu(index: int) -> str | None:
    """Before jax starts in a worker process: restrict it to one GPU, the ``index``-th of the
    visible GPUs (``CUDA_VISIBLE_DEVICES``, else those ``nvidia-smi -L`` lists), round robin.
    Returns the GPU chosen, or None on a machine without GPUs."""
    import subprocess

    visible = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    if not visible:
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        visible = [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]
    if not visible:
        return None
    chosen = visible[index % len(visible)]
    os.environ["CUDA_VISIBLE_DEVICES"] = chosen
    return chosen


def _check_references(directory: Path, tier: str) -> dict:
    """Validate every reference table of the tier and the paper's expectations, if any."""
    if not directory.is_dir():
        return {}
    from ntkbench.references import ReferenceTable, paper_expectations

    for path in sorted(directory.glob(f"{tier}-*.csv")):
        ReferenceTable.load(path)
    paper = directory / "paper.csv"
    return paper_expectations(paper) if paper.exists() else {}


def outcome_failure(row: dict, fail_on: set[str], verdicts: bool = True) -> str | None:
    """Why this row fails its test under ``--ntkbench-fail-on``, or None; ``verdicts``: whether
    the tier's verdicts mean anything (else only drift fails a row)."""
    from ntkbench.claims import DOES_NOT_HOLD, INCONCLUSIVE
    from ntkbench.references import DRIFT, MISSING, NEW

    if "drift" in fail_on and row.get("reference") in (DRIFT, MISSING):
        return f"reference {row['reference']}: {row['reference_detail']}"
    if "new" in fail_on and row.get("reference") == NEW:
        return "reference new: the reference table has no row for this case (--ntkbench-update-references writes it)"
    if not verdicts:
        return None
    if "control" in fail_on and row.get("control") and row["verdict"] != row["expected"]:
        checks = f" ({row['control_checks']})" if row.get("control_checks") else ""
        return (f"control {row['control']} came out '{row['verdict']}' (expected '{row['expected']}'){checks}: "
                "the suite cannot tell this case apart")
    if ("unexpected" in fail_on and not row.get("control") and row["verdict"] in (DOES_NOT_HOLD, INCONCLUSIVE)
            and row["verdict"] != row.get("expected")):
        return f"{row['claim']} expected '{row['expected']}', got '{row['verdict']}'"
    return None


class SessionOutputs:
    """Collects rows from test reports (local or forwarded by xdist workers); at the end of
    the session writes the files asked for and prints the leaderboard."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.rows: list[dict] = []
        self.lines: list[str] = []
        self.frame = None
        self.metadata: dict = {}
        self.references: dict = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.rows.extend(json.loads(value) for name, value in report.user_properties
                         if name == ROW_PROPERTY and report.when == "call")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.rows or hasattr(self.config, "workerinput"):
            return
        from ntkbench.report import leaderboard_frame

        self.frame = leaderboard_frame(self.rows)
        try:
            self._write(*self._describe())
        except (OSError, ValueError) as exc:
            self.lines.append(f"ntkbench: {exc}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _describe(self):
        """Sets the run's metadata and which reference table it was compared with; returns
        that table and its path."""
        from ntkbench.metadata import environment
        from ntkbench.references import ReferenceTable, find_table

        stash = self.config.stash[SETTINGS_KEY]
        tier, root = stash["tier"], self.config.rootpath
        self.metadata = {**environment(root), "tier": tier.name, "settings": list(self.config.getoption("ntkbench_set"))}
        kind = self.metadata["device_kind"]
        found = find_table(stash["references"], tier.name, kind)
        compared = ReferenceTable.load(found)
        shown = found.relative_to(root) if found.is_relative_to(root) else found
        self.references = {"path": str(shown), "device_kind": kind, "device_kinds": sorted(compared.device_kinds)}
        return compared, found

    def _write(self, compared, found) -> None:
        from ntkbench.outputs import results_document, write_report
        from ntkbench.references import table_path, update_table

        stash = self.config.stash[SETTINGS_KEY]
        tier, root, kind, references = stash["tier"], self.config.rootpath, self.metadata["device_kind"], self.references
        try:
            figures, plots_error = self._plots(), None
        except OSError as exc:  # the reference table, report and run record are still written
            figures, plots_error = [], OSError(f"cannot write the figures: {exc}")
        self._check_orphans(compared, found)
        if stash["mode"]:
            own = table_path(stash["references"], tier.name, kind)
            # compared with another device kind's table: this kind's starts empty and takes every row
            mode = stash["mode"] if found == own else "regenerate"
            merged, written = update_table(own, self.rows, mode, self.metadata, fresh=found != own)
            self.lines.append(f"ntkbench references: {written} rows written to {own} ({len(merged.rows)} in the table)")
        if stash["report"]:
            write_report(stash["report"], self.frame, self.metadata, references, figures, stash["paper"])
            self.lines.append(f"ntkbench report: {stash['report']}/index.html, leaderboard.md, results.json")
        if self.config.getoption("ntkbench_save_run"):
            from ntkbench.runs import save_run

            path = save_run(root / self.config.getoption("ntkbench_runs_dir"),
                            results_document(self.frame, self.metadata, references))
            self.lines.append(f"ntkbench run saved: {path.stem} ({path})")
        if plots_error is not None:
            raise plots_error

    def _check_orphans(self, compared, found: Path) -> None:
        """Report the compared table's rows that belong to no case the suite defines (deleted
        or renamed cases), and remove them with ``--ntkbench-prune-references``; say so when
        there is no table for the tier at all."""
        from ntkbench.cases import defined_case_keys
        from ntkbench.references import update_table
        from ntkbench.tiers import get_tier

        tier = self.config.stash[SETTINGS_KEY]["tier"]
        if not found.exists():
            self.lines.append(f"ntkbench references: no reference table for tier {tier.name!r} in "
                              f"{found.parent}: every row is new (--ntkbench-regen-references writes one)")
            return
        orphans = compared.orphans(defined_case_keys([get_tier(tier.name), tier]))
        if not orphans:
            return
        if self.config.getoption("ntkbench_prune_references"):
            update_table(found, [], None, self.metadata, prune=set(orphans))
            self.lines.append(f"ntkbench references: {len(orphans)} rows of cases the suite no longer defines "
                              f"removed from {found}")
            return
        named = "; ".join(" / ".join(key) for key in orphans[:5]) + (" …" if len(orphans) > 5 else "")
        self.lines.append(f"ntkbench references: {len(orphans)} rows of {found} belong to no case of this suite "
                          f"(deleted or renamed): {named}; --ntkbench-prune-references removes them")

    def _plots(self) -> list[Path]:
        plots = self.config.getoption("ntkbench_plots")
        if plots == "none":
            return []
        from ntkbench.plots import write_plots

        directory = self.config.rootpath / plots / self.config.stash[SETTINGS_KEY]["tier"].name
        written = write_plots(self.frame, directory)
        if written:
            self.lines.append(f"ntkbench plots: {len(written)} figures in {directory}")
        return written

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.frame is None:
            return
        from ntkbench.outputs import describe, references_note
        from ntkbench.report import format_leaderboard

        tier = self.config.stash[SETTINGS_KEY]["tier"]
        terminalreporter.write_sep("=", f"ntkbench leaderboard (tier: {tier.name})")
        for line in (describe(self.metadata), references_note(self.references)):
            if line:
                terminalreporter.write_line(line)
        terminalreporter.write_line(format_leaderboard(self.frame))
        for line in self.lines:
            terminalreporter.write_line(line)
