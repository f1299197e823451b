"""What a session does with its rows, through pytester: reference tables (compare, update,
regenerate, bad files), ``--ntkbench-fail-on``, report files, run records and xdist.

The benchmark module runs C1 and C1b for the MLP on the tiny tier. C1b's case sets its own
optimizer and learning rate (SGD, 0.005), so a change of the tier's learning rate moves C1's
numbers and leaves C1b's alone: the perturbation the reference comparison must single out.
"""

import json
import re

import pytest

import ntkbench.plugin  # noqa: F401  (imported once, before the in-process runs)
from ntkbench.references import ReferenceTable
from claim_modules import claim_module

BENCHMARKS = claim_module("C1", "C1b")
PERTURBED = "--ntkbench-set=learning_rate=0.03"  # the tier's default is 1e-3
C1_CASES = {("C1", "mlp/mnist1d", "test_error"), ("C1", "mlp/mnist1d", "test_mse")}
TABLE = "reference_results/smoke-cpu.csv"


@pytest.fixture
def run(pytester, tiny_pytest_args):
    """``run(*args, subprocess=False)``: pytest on C1 and C1b, tiny tier, no figures."""
    pytester.makepyfile(test_claims_c1_c1b=BENCHMARKS)

    def run_pytest(*args, subprocess=False):
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest_inprocess
        return runner(*tiny_pytest_args, "--ntkbench-plots=none", *args)

    return run_pytest


@pytest.fixture
def references(run, pytester):
    """The reference table written by a first run with ``--ntkbench-regen-references``, each
    row's tolerance set to 1e-8 (the table keeps ten digits): any number that moves drifts (at the tiny tier's sizes the
    networks learn little, so a perturbation moves exponents by less than the claims'
    tolerance), and a case the perturbation cannot reach must come out bit for bit the same."""
    result = run("--ntkbench-regen-references")
    assert result.ret == 0
    path = pytester.path / TABLE
    result.stdout.fnmatch_lines([f"*ntkbench references: 4 rows written to {path} (4 in the table)"])
    table = ReferenceTable.load(path)
    for row in table.rows.values():
        row["tolerance"] = 1e-8
    table.write()
    return path


def statuses(result) -> dict[tuple, str]:
    """The reference column of the leaderboard, by (claim, case, metric)."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("| claim") and "reference" in line)
    table = lines[start:lines.index("", start)]  # the verdict counts follow a blank line
    columns = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows = [dict(zip(columns, (c.strip() for c in line.strip("|").split("|"))))
            for line in table if re.match(r"\| C1b? ", line)]
    return {(r["claim"], r["case"], r["metric"]): r["reference"].split(":")[0] for r in rows}


def test_first_run_is_new_and_a_rerun_matches(run, references):
    rows = [line for line in references.read_text().splitlines()[1:]]
    assert len(rows) == 4 and all(",smoke,cpu," in row for row in rows)
    result = run("--ntkbench-fail-on=control,drift")
    assert result.ret == 0
    assert set(statuses(result).values()) == {"match"}
    result.stdout.fnmatch_lines([f"Compared with {TABLE}."])


def test_perturbed_hyperparameter_drifts_only_the_cases_it_touches(run, references):
    before = references.read_bytes()
    reported = run(PERTURBED)  # default: drift is reported, not a failure
    assert reported.ret == 0
    found = statuses(reported)
    assert {k for k, status in found.items() if status == "drift"} == C1_CASES
    assert {status for k, status in found.items() if k not in C1_CASES} == {"match"}
    failing = run(PERTURBED, "--ntkbench-fail-on=drift")
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    failing.assert_outcomes(passed=2, failed=2)
    failing.stdout.fnmatch_lines(["*_ test_c1[[]mlp-mnist1d-test_*] _*", "reference drift: *"] * 2)
    assert references.read_bytes() == before  # never written without an option


def test_update_rewrites_drifted_rows_and_a_partial_run_keeps_the_rest(run, references):
    lines_before = references.read_text().splitlines()
    result = run(PERTURBED, "--ntkbench-update-references", "-k", "test_c1 and not test_c1b")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*ntkbench references: 2 rows written to * (4 in the table)"])
    lines_after = references.read_text().splitlines()
    assert lines_after[0] == lines_before[0]
    changed = {tuple(line.split(",")[:3]) for line in set(lines_after) - set(lines_before)}
    assert changed == C1_CASES  # the C1b rows (not run) are kept byte for byte
    assert set(statuses(run(PERTURBED, "--ntkbench-fail-on=drift")).values()) == {"match"}


def test_references_of_another_device_kind_are_compared_and_flagged(run, references, pytester):
    gpu = references.with_name("smoke-gpu.csv")
    gpu.write_text(references.read_text().replace(",smoke,cpu,", ",smoke,gpu,"))
    references.unlink()
    result = run("--ntkbench-regen-references")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*across device kinds: this run on cpu, references from gpu*"])
    assert set(statuses(result).values()) == {"match"}
    assert references.exists() and ",smoke,cpu," in references.read_text()  # written for its own kind


def test_fail_on_unexpected_fails_claims_that_do_not_hold(run):
    result = run("--ntkbench-fail-on=unexpected", "--ntkbench-set=verdicts=True", "-k", "test_c1 and not test_c1b")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1
    result.stdout.fnmatch_lines(["*C1 expected 'holds', got '*'*"])


def test_report_and_run_record(run, pytester):
    result = run("--ntkbench-report=out", "--ntkbench-save-run")
    assert result.ret == 0
    out = pytester.path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "leaderboard.md", "results.json"]
    document = json.loads((out / "results.json").read_text())
    assert {(r["claim"], r["case"], r["metric"]) for r in document["results"]} >= C1_CASES
    assert document["metadata"]["tier"] == "smoke" and document["metadata"]["device_kind"] == "cpu"
    (record,) = (pytester.path / ".ntkbench" / "runs").glob("*-smoke-*.json")
    assert json.loads(record.read_text())["results"] == document["results"]
    html = (out / "index.html").read_text()
    assert "mlp/mnist1d" in html and 'src="http' not in html


def test_xdist_writes_the_same_results_as_a_serial_run_and_shows_the_workers_lines(run, pytester):
    serial = run("-n", "0", "--ntkbench-report=serial")
    parallel = run("-n", "2", "--ntkbench-report=parallel", subprocess=True)
    assert serial.ret == parallel.ret == 0
    # the plan, then the workers' experiment lines reach the terminal
    parallel.stdout.fnmatch_lines(["ntkbench plan: * tests on 2 workers*",
                                   "ntkbench: loaded nn:mlp/mnist1d@* n 64–256: * s"])
    assert parallel.stdout.str().count("ntkbench leaderboard (tier: smoke)") == 1
    results = [json.loads((pytester.path / d / "results.json").read_text())["results"] for d in ("serial", "parallel")]
    assert results[0] == results[1] and len(results[0]) == 4


def test_pinned_xdist_workers_each_see_one_gpu(pytester, monkeypatch):
    """``--ntkbench-pin-gpus``: worker gwN keeps the N-th visible GPU (round robin)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,7")
    pytester.makepyfile(test_visible="""
        import os
        import pytest

        @pytest.mark.parametrize("k", range(6))
        def test_visible(worker_id, k):
            assert os.environ["CUDA_VISIBLE_DEVICES"] == {"gw0": "4", "gw1": "7"}[worker_id]
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--ntkbench-pin-gpus")
    result.assert_outcomes(passed=6)
    unpinned = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    unpinned.assert_outcomes(failed=6)


@pytest.mark.parametrize("visible, worker, chosen", [("4,7", "gw0", "4"), ("4,7", "gw1", "7"), ("4,7", "gw2", "4")])
def test_pin_worker_gpu_round_robin(monkeypatch, visible, worker, chosen):
    from ntkbench.session import pin_worker_gpu

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert pin_worker_gpu(worker) == chosen
    assert __import__("os").environ["CUDA_VISIBLE_DEVICES"] == chosen


def test_without_a_reference_table_every_row_is_new_and_said_so(run):
    result = run()
    assert result.ret == 0 and set(statuses(result).values()) == {"new"}
    result.stdout.fnmatch_lines(["ntkbench references: no reference table for tier 'smoke' in *reference_results: "
                                 "every row is new (--ntkbench-regen-references writes one)"])
    failing = run("--ntkbench-fail-on=new")
    failing.assert_outcomes(failed=4)
    failing.stdout.fnmatch_lines(["reference new: the reference table has no row for this case*"])


def test_rows_of_cases_the_suite_no_longer_defines_are_reported_then_pruned(run, references):
    lines = references.read_text().splitlines(keepends=True)
    orphan = lines[1].replace(",mlp/mnist1d,", ",gone/mnist1d,", 1)
    references.write_text("".join([*lines, orphan]))
    before = references.read_bytes()
    reported = run()
    assert reported.ret == 0 and references.read_bytes() == before
    reported.stdout.fnmatch_lines([f"ntkbench references: 1 rows of {references} belong to no case of this suite "
                                   f"(deleted or renamed): C1 / gone/mnist1d / test_*; "
                                   "--ntkbench-prune-references removes them"])
    pruned = run("--ntkbench-prune-references")
    assert pruned.ret == 0
    pruned.stdout.fnmatch_lines([f"ntkbench references: 1 rows of cases the suite no longer defines removed from "
                                 f"{references}"])
    assert references.read_text().splitlines(keepends=True) == lines  # the other rows byte for byte


def test_verbose_output_shows_each_cases_verdict(run, references):
    result = run("-v")
    assert result.ret == 0
    result.stdout.re_match_lines([r".*::test_c1\[mlp-mnist1d-test_mse\] PASSED \((holds|does not hold|inconclusive)\).*",
                                  r".*::test_c1b\[.*\] PASSED \((holds|does not hold|inconclusive)\).*"])
    quiet = run()
    assert not [line for line in quiet.outlines if "PASSED (" in line]
