"""The catalogue of bad inputs: every one ends with its documented exit status (README, "Exit
statuses") and one line naming the problem, no traceback, and leaves every reference table,
run record and cache file byte for byte as it was.

A pytest entry runs the C1 benchmark module in-process on the tiny tier against the warm
cache of the session's ``tiny_run`` and a reference table; a usage error (status 4) is one
``ERROR:`` line, a failing case (status 1) a one-line failure and an error row with the same
text. A command entry runs ``ntkbench`` on a run store of two hand-built runs (status 2).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import pytest

# Imported before the in-process runs, which drop the modules they import when they end.
import ntkbench.cases  # noqa: F401
import ntkbench.plugin  # noqa: F401
from leaderboard_rows import metadata, save, standard_rows
from ntkbench.cli import main
from ntkbench.references import ReferenceTable, table_path
from pytest_output import failure_bodies, leaderboard_section

BENCHMARK = """
import pytest


@pytest.mark.ntkbench_claim("C1")
def test_c1(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
"""
USAGE, FAILED, BAD_COMMAND = int(pytest.ExitCode.USAGE_ERROR), int(pytest.ExitCode.TESTS_FAILED), 2
TABLE = Path("reference_results/smoke-cpu.csv")
BROKEN = "20250103T030405-smoke-broken"  # a run record's name


@dataclasses.dataclass(frozen=True)
class Bad:
    args: tuple[str, ...]
    message: str  # a regular expression the one line matches
    status: int = USAGE
    setup: Callable[[Path], None] | None = None  # prepares the directory the run starts in


def edit_table(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    """A setup that rewrites the reference table's lines (header first, each with its newline)."""
    def setup(directory: Path) -> None:
        path = directory / TABLE
        path.write_text("".join(edit(path.read_text().splitlines(keepends=True))))
    return setup


def replace_in_row(old: str, new: str) -> Callable[[Path], None]:
    return edit_table(lambda lines: [lines[0], lines[1].replace(old, new, 1), *lines[2:]])


def latin1_row(directory: Path) -> None:
    """A setup that writes an accented case name in Latin-1 into the reference table's first row."""
    path = directory / TABLE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], lines[1].replace(b"mnist1d", "mnist1dé".encode("latin-1"), 1), *lines[2:]]))


def cifar_batch(content: bytes) -> Callable[[Path], None]:
    """A CIFAR-10 directory whose five batch files hold ``content``."""
    def setup(directory: Path) -> None:
        batches = directory / "data" / "cifar-10-batches-py"
        batches.mkdir(parents=True)
        for i in range(1, 6):
            (batches / f"data_batch_{i}").write_bytes(content)
    return setup


def stored_run(**meta) -> Callable[[Path], None]:
    return lambda directory: save(directory / "runs", standard_rows(), day=3, **meta)


def broken_record(content: str) -> Callable[[Path], None]:
    return lambda directory: (directory / "runs" / f"{BROKEN}.json").write_text(content)


CIFAR = ("--ntkbench-arch=myrtle5", "--ntkbench-dataset=cifar10", "--ntkbench-data-dir=data")
SESSION = {
    "unknown-tier": Bad(("--ntkbench-tier=bogus",), "invalid choice: 'bogus'"),
    "unknown-setting": Bad(("--ntkbench-set=nosuchkey=1",), "ntkbench: unknown override 'nosuchkey'; known: "),
    "setting-without-value": Bad(("--ntkbench-set=learning_rate",), "override 'learning_rate' is not KEY=VALUE"),
    "unknown-optimizer": Bad(("--ntkbench-set=optimizer=rmsprop",), "unknown optimizer 'rmsprop'; known: "),
    "unknown-schedule": Bad(("--ntkbench-set=schedule=bogus",), "unknown schedule 'bogus'; known: "),
    "non-integer-steps": Bad(("--ntkbench-set=max_steps=abc",), "max_steps"),
    "negative-learning-rate": Bad(("--ntkbench-set=learning_rate=-1",), "must be positive"),
    "decreasing-sizes": Bad(("--ntkbench-set=n_grid=(128,64)",), r"n_grid must be increasing positive sizes"),
    "no-seeds": Bad(("--ntkbench-set=seeds=()",), r"seeds must be a non-empty tuple of integers, got \(\)"),
    "zero-validation-set": Bad(("--ntkbench-set=n_val=0",), "n_val must be a positive integer, got 0"),
    "one-sided-window": Bad(("--ntkbench-set=fit_window=(64,)",), r"fit_window must be \(n_min, n_max\) or None"),
    "malformed-deferred": Bad(("--ntkbench-set=deferred=(1,)",), "deferred must be .* pairs"),
    "unknown-architecture-setting": Bad(("--ntkbench-set=nosucharch.width=3",),
                                        "--ntkbench-set nosucharch.…: unknown architecture 'nosucharch'; known: .*mlp"),
    "unknown-architecture-keyword": Bad(("--ntkbench-set=mlp.nosuch=3",),
                                        "mlp takes no keyword 'nosuch'; known: depth, width, parameterization"),
    "negative-width": Bad(("--ntkbench-set=mlp.width=-1",), "mlp: width must be an integer ≥ 1, got -1"),
    "negative-depth": Bad(("--ntkbench-set=mlp.depth=-1",), "mlp: depth must be an integer ≥ 0, got -1"),
    "unknown-parameterization": Bad(("--ntkbench-set=mlp.parameterization=mup",),
                                    "unknown parameterization 'mup'; known: standard, ntk"),
    "unwritable-plots": Bad(("--ntkbench-plots=test_c1.py/plots",),
                            "cannot write the figures to .*test_c1.py/plots"),
    "unwritable-report": Bad(("--ntkbench-report=test_c1.py/report",),
                             "cannot write the report to test_c1.py/report"),
    "unwritable-run-store": Bad(("--ntkbench-save-run", "--ntkbench-runs-dir=test_c1.py/runs"),
                                "cannot write the run record to .*test_c1.py/runs"),
    "cache-root-is-a-file": Bad(("--ntkbench-cache-dir=test_c1.py",),
                                "--ntkbench-cache-dir test_c1.py: not a directory"),
    "missing-data-directory": Bad(("--ntkbench-data-dir=nosuchdir",), "--ntkbench-data-dir nosuchdir: no such directory"),
    "unknown-fail-on": Bad(("--ntkbench-fail-on=drift,bogus",), "--ntkbench-fail-on: unknown bogus"),
    "update-and-regenerate": Bad(("--ntkbench-update-references", "--ntkbench-regen-references"),
                                 "--ntkbench-update-references and --ntkbench-regen-references exclude each other"),
    "mistyped-references-directory": Bad(("--ntkbench-references=reference_resluts",),
                                         "--ntkbench-references reference_resluts: no such directory"),
    "truncated-references": Bad((), r"smoke-cpu.csv, line \d+: the file ends inside this row \(truncated\?\)",
                                setup=edit_table(lambda lines: [*lines[:-1], lines[-1][:-40]])),
    "truncated-references-on-update": Bad(("--ntkbench-update-references",), r"line \d+: the file ends inside this row",
                                          setup=edit_table(lambda lines: [*lines[:-1], lines[-1][:-40]])),
    "references-of-an-unknown-claim": Bad((), "smoke-cpu.csv, line 2: unknown claim 'C9'; known: ",
                                          setup=replace_in_row("C1,", "C9,")),
    "references-not-utf8": Bad((), "smoke-cpu.csv, line 2: not UTF-8 text", setup=latin1_row),
    "references-with-another-header": Bad((), "smoke-cpu.csv, line 1: header .*; expected the columns claim,",
                                          setup=edit_table(lambda lines: [lines[0].replace("claim", "Claim"),
                                                                          *lines[1:]])),
    "references-row-with-a-field-missing": Bad((), r"smoke-cpu.csv, line 2: \d+ fields, expected \d+",
                                               setup=edit_table(lambda lines: [lines[0],
                                                                               lines[1].split(",", 1)[1], *lines[2:]])),
    "references-value-not-a-number": Bad((), "smoke-cpu.csv, line 2: column 'value': 'abc' is not a number",
                                         setup=edit_table(lambda lines: [lines[0], re.sub(
                                             r",(-?[0-9.e+-]+),", ",abc,", lines[1], count=1), *lines[2:]])),
    "references-with-a-row-twice": Bad((), r"smoke-cpu.csv, line \d+: a second row for .* \(first on line 2\)",
                                       setup=edit_table(lambda lines: [*lines, lines[1]])),
    "scheduler-of-no-workers": Bad(("--ntkbench-scheduler=local:0",), "local:N needs a whole number N ≥ 1"),
    "scheduler-without-a-port": Bad(("--ntkbench-scheduler=nonsense",), "give a scheduler address"),
    "unreachable-scheduler": Bad(("--ntkbench-scheduler=tcp://127.0.0.1:9",),
                                 "--ntkbench-scheduler tcp://127.0.0.1:9: no scheduler answers there"),
    "scheduler-and-collect": Bad(("--ntkbench-scheduler=local:2", "--ntkbench-collect"),
                                 "--ntkbench-scheduler and --ntkbench-collect exclude each other"),
    "scheduler-under-xdist": Bad(("--ntkbench-scheduler=local:2", "-n", "2"), "drop -n"),
    "unknown-architecture": Bad(("--ntkbench-arch=nosucharch",),
                                "UnknownNameError: unknown architecture 'nosucharch'; known: ", FAILED),
    "diverged-training": Bad(("--ntkbench-set=learning_rate=1e6",),
                             r"DivergedError: training diverged by step \d+: train loss .* at learning rate 1e\+06",
                             FAILED),
    "sizes-too-large-to-generate": Bad(("--ntkbench-set=n_val=10000000",),
                                       "mnist1d: 10,000,.* samples asked for .* lower n_grid, pool_factor, n_val",
                                       FAILED),
    "missing-data-files": Bad(CIFAR, "DataMissingError: .*cifar-10-batches-py is missing: put the python version",
                              FAILED, setup=lambda directory: (directory / "data").mkdir()),
    "junk-data-file": Bad(CIFAR, "DataFileError: .*data_batch_1 is not a CIFAR-10 python batch: ", FAILED,
                          setup=cifar_batch(b"not a pickle")),
    "data-file-of-another-format": Bad(CIFAR, "DataFileError: .*data_batch_1 is not a CIFAR-10 python batch: "
                                       "no dict of data and labels", FAILED, setup=cifar_batch(pickle.dumps([1, 2]))),
}
COMMAND = {
    "unknown-run": Bad(("compare", "nope"), r"runs: no run matching 'nope'; see `ntkbench runs`", BAD_COMMAND),
    "run-index-out-of-range": Bad(("compare", "-1", "-5"), "runs: 2 stored runs, no run -5", BAD_COMMAND),
    "no-earlier-run-of-the-tier": Bad(("compare", "latest"), "no earlier run of tier 'smoke' on 'gpu'; name a baseline",
                                      BAD_COMMAND, setup=stored_run(device_kind="gpu")),
    "runs-of-different-tiers": Bad(("compare", "latest", "-2"), "is of tier 'small', .* of tier 'smoke'", BAD_COMMAND,
                                   setup=stored_run(tier="small")),
    "truncated-run-record": Bad(("compare", BROKEN), r"broken.json: not an ntkbench results file \(JSONDecodeError",
                                BAD_COMMAND, setup=broken_record('{"metadata": {"tier": "smoke"}, "res')),
    "run-record-missing-columns": Bad(("compare", BROKEN), r"not an ntkbench run record \(results without metric",
                                      BAD_COMMAND, setup=broken_record('{"metadata": {"tier": "smoke"}, '
                                                                       '"results": [{"claim": "C1", "case": "x"}]}')),
    "run-record-without-tier": Bad(("compare", BROKEN), r"not an ntkbench run record \(no tier in its metadata\)",
                                   BAD_COMMAND, setup=broken_record('{"metadata": {}, "results": []}')),
    "missing-reference-directory": Bad(("compare", "latest", "--references", "nosuchdir"),
                                       "nosuchdir: no reference table for tier 'smoke'", BAD_COMMAND),
}


def fingerprint(*roots: Path) -> dict[str, str]:
    """md5 of every file under ``roots``, lock files left out (empty, and left in place by
    design: removing one would race with another process taking it)."""
    return {str(path): hashlib.md5(path.read_bytes()).hexdigest()
            for root in roots for path in sorted(root.rglob("*")) if path.is_file() and path.suffix != ".lock"}


@pytest.fixture
def session_directory(pytester, tiny_run) -> Path:
    """The benchmark module and a valid four-row reference table for the smoke tier on CPU."""
    pytester.makepyfile(test_c1=BENCHMARK)
    empty = ReferenceTable(table_path(pytester.path / TABLE.parent, "smoke", "cpu"), {})
    table, _ = empty.merged(standard_rows(), "regenerate", metadata())
    table.write()
    return pytester.path


def one_line(lines: list[str], message: str) -> None:
    matching = [line for line in lines if re.search(message, line)]
    assert len(matching) == 1, "\n".join(lines)


@pytest.mark.parametrize("bad", SESSION.values(), ids=SESSION.keys())
def test_bad_session_input(bad, session_directory, pytester, tiny_pytest_args, warm_cache):
    if bad.setup:
        bad.setup(session_directory)
    before = fingerprint(session_directory / TABLE.parent, warm_cache.parent)
    result = pytester.runpytest_inprocess(*tiny_pytest_args, "--ntkbench-plots=none", *bad.args)
    assert result.ret == bad.status
    output = result.outlines + result.errlines
    assert not any("Traceback" in line or "INTERNALERROR" in line for line in output)
    if bad.status == USAGE:
        errors = [line for line in result.errlines if line.startswith("ERROR:")]
        assert len(errors) == 1, result.errlines
        one_line(result.errlines, bad.message)
    else:
        bodies = failure_bodies(result)
        assert bodies and all(len(body) == 1 and re.search(bad.message, body[0]) for body in bodies.values()), bodies
        error_rows = [line for line in leaderboard_section(result) if "| error " in line]
        assert len(error_rows) == len(bodies) and all(re.search(bad.message, line) for line in error_rows)
    assert fingerprint(session_directory / TABLE.parent, warm_cache.parent) == before


@pytest.mark.parametrize("bad", COMMAND.values(), ids=COMMAND.keys())
def test_bad_command_input(bad, tmp_path, capsys):
    for day in (1, 2):
        save(tmp_path / "runs", standard_rows(), day=day)
    if bad.setup:
        bad.setup(tmp_path)
    before = fingerprint(tmp_path)
    status = main(["--runs-dir", str(tmp_path / "runs"), *bad.args])
    out, err = capsys.readouterr()
    assert (status, out) == (bad.status, "")
    assert len(err.splitlines()) == 1 and err.startswith("ntkbench: ") and re.search(bad.message, err), err
    assert fingerprint(tmp_path) == before


def test_the_catalogue_holds_at_least_thirty_bad_inputs():
    assert len(SESSION) + len(COMMAND) >= 30
