"""The pytest plugin end to end, through pytester: options, failures, leaderboard, xdist, cache.

Each test runs pytest on a one-test benchmark module shaped like
``benchmarks/test_c1_entk_init.py``, on a tiny tier and the MLP only. The runs share the
experiment cache of the session's ``tiny_run`` (the same cases, computed with the same
settings), so they load the experiments rather than train. Runs are in-process unless they
need a fresh interpreter (xdist, import checks).
"""

import re

import pytest

# Imported before the in-process runs, which drop the modules they import when they end;
# ntkbench.cases also registers the built-in architectures named below.
import ntkbench.cases  # noqa: F401
import ntkbench.plugin  # noqa: F401
from ntkbench.report import format_leaderboard, leaderboard_frame
from pytest_output import leaderboard_section

BENCHMARK = """
import pytest


@pytest.mark.ntkbench_claim("C1")
def test_c1(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
"""
MLP_KEYS = [("C1", "mlp/mnist1d", "test_error"), ("C1", "mlp/mnist1d", "test_mse")]
VERDICTS = {"holds", "does not hold", "inconclusive"}


@pytest.fixture
def run(pytester, tiny_pytest_args):
    """``run(*args, subprocess=False)``: pytest on the benchmark module, tiny tier, warm cache."""
    pytester.makepyfile(test_c1=BENCHMARK)

    def run_pytest(*args, subprocess=False):
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest_inprocess
        return runner(*tiny_pytest_args, *args)

    return run_pytest


def table_rows(lines: list[str]) -> dict[tuple, dict[str, str]]:
    """Leaderboard table rows by (claim, case, metric): {column: cell}, without the source column."""
    table = lines[:lines.index("")] if "" in lines else lines  # the verdict summary follows a blank line
    header = next(line for line in table if line.startswith("| claim"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    rows = [dict(zip(columns, (cell.strip() for cell in line.strip("|").split("|"))))
            for line in table if line.startswith("| C1")]
    return {(r["claim"], r["case"], r["metric"]): {k: v for k, v in r.items() if k != "source"} for r in rows}


def leaderboard_rows(result) -> dict[tuple, list[str]]:
    return table_rows(leaderboard_section(result))


def source_statuses(result) -> list[str]:
    return re.findall(r"\b(cached|computed)\b", "\n".join(leaderboard_section(result)))


def test_leaderboard_has_one_row_per_case(run, tiny_run):
    result = run()
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    rows = leaderboard_rows(result)
    assert sorted(rows) == MLP_KEYS
    assert {cells["verdict"] for cells in rows.values()} <= VERDICTS
    # The numbers are those of the same cases run in-process; no reference table: both new.
    in_process = [{**row, "reference": "new", "reference_detail": ""} for row in tiny_run.rows.values()]
    assert rows == table_rows(format_leaderboard(leaderboard_frame(in_process)).splitlines())


def test_second_run_loads_the_experiments_from_the_cache(run, warm_cache):
    """The cache holds the experiments an earlier session computed: they are not recomputed."""
    stored = {path: path.stat().st_mtime_ns for path in warm_cache.glob("*.json")}
    assert {"entk_init", "nn"} <= {path.name.split("-")[0] for path in stored}  # (other tests add their own)
    result = run()
    assert result.ret == 0
    assert set(source_statuses(result)) == {"cached"}
    assert {path: path.stat().st_mtime_ns for path in warm_cache.glob("*.json")} == stored


def test_collect_builds_the_leaderboard_from_the_cache_and_computes_nothing(pytester, tiny_settings, warm_cache):
    """--ntkbench-collect on a partial cache (eNTK(init) missing, partly computed): rows that
    say so and skipped tests; on the complete cache: the rows of a normal run."""
    import shutil

    cache = shutil.copytree(warm_cache.parent, pytester.path / "cache")
    pytester.makepyfile(test_c1=BENCHMARK)
    args = ["-p", "no:cacheprovider", "--ntkbench-tier=smoke", "--ntkbench-arch=mlp", "--ntkbench-plots=none",
            *(f"--ntkbench-set={s}" for s in tiny_settings), f"--ntkbench-cache-dir={cache}", "--ntkbench-collect"]
    complete = pytester.runpytest_inprocess(*args)
    complete.assert_outcomes(passed=2)
    assert set(source_statuses(complete)) == {"cached"}

    (entk,) = (cache / "experiments").glob("entk_init-*.json")
    entk.rename(entk.with_suffix(".partial.json"))
    before = sorted(p.name for p in (cache / "experiments").rglob("*"))
    partial = pytester.runpytest_inprocess(*args, "-rs")
    partial.assert_outcomes(skipped=2)
    rows = leaderboard_rows(partial)
    assert sorted(rows) == MLP_KEYS and {cells["verdict"] for cells in rows.values()} == {"not computed"}
    partial.stdout.fnmatch_lines(["ntkbench plan: 2 cases need 2 experiments: 1 cached, 1 missing "
                                  "(--ntkbench-collect computes nothing)",
                                  "*not computed: entk_init:mlp/mnist1d@* is not in the cache (partly computed)*"])
    assert "ntkbench: computed" not in partial.stdout.str()
    assert sorted(p.name for p in (cache / "experiments").rglob("*")) == before


TWINLESS_CONFTEST = """
import flax.linen as nn

from ntkbench.registry import register_architecture


@register_architecture("twinless")
def twinless(num_outputs):
    return nn.Dense(num_outputs)
"""


def test_architecture_without_a_twin_is_skipped_with_a_not_applicable_row(pytester, tiny_settings,
                                                                         scratch_architectures):
    """C1' needs the twin's infinite-width NTK: without a twin the case is skipped (neither
    failed nor dropped) and its row says so. (The run registers in this process's registry:
    ``scratch_architectures`` drops that registration afterwards.)"""
    pytester.makeconftest(TWINLESS_CONFTEST)
    pytester.makepyfile(test_twinless_ntk_inf=BENCHMARK.replace('"C1"', '"C1\'"'))
    settings = [*tiny_settings, "seeds=(0,)", "n_grid=(8,)"]  # short, should the network curve be computed
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-rs", "--ntkbench-tier=smoke", "--ntkbench-arch=twinless",
        *(f"--ntkbench-set={setting}" for setting in settings), f"--ntkbench-cache-dir={pytester.path / 'cache'}")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=2)
    message = "architecture 'twinless' has no stax twin"
    skipped = [re.fullmatch(rf"SKIPPED \[(\d+)\] .*: {message}", line) for line in result.outlines]
    assert sum(int(match.group(1)) for match in skipped if match) == 2
    rows = leaderboard_rows(result)
    assert sorted(rows) == [("C1'", "twinless/mnist1d", metric) for metric in ("test_error", "test_mse")]
    assert {cells["verdict"] for cells in rows.values()} == {"not applicable"}
    assert all(message in line for line in leaderboard_section(result) if "| not applicable " in line)


def test_plugin_does_not_import_jax_until_a_case_runs(pytester):
    """As plugin.py's docstring promises: ntkbench is a pytest11 plugin, so it loads in every
    pytest run of its environment, which must not pay for (or be changed by) importing jax."""
    pytester.makepyfile(test_plain="""
        import sys

        def test_jax_is_not_imported():
            assert "jax" not in sys.modules
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("verdict", ["holds", "inconclusive"])
def test_a_control_off_its_expected_verdict_fails(pytester, monkeypatch, verdict):
    """Controls must be able to say no: a control row whose verdict is not the expected one
    fails its test ("inconclusive" too), at a tier that decides verdicts; at the smoke tier,
    which does not, the row is reported and the test passes."""
    monkeypatch.setattr(ntkbench.cases, "run_case", lambda case, tier, cache: {
        **ntkbench.cases.base_row(case, tier), "verdict": verdict, "error": ""})
    pytester.makepyfile(test_controls_holding="""
import pytest


@pytest.mark.ntkbench_controls
def test_control(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
""")
    options = ("-p", "no:cacheprovider", "--ntkbench-tier=smoke", "--ntkbench-plots=none")
    result = pytester.runpytest_inprocess(*options, "--ntkbench-set=verdicts=True")
    outcomes = result.parseoutcomes()
    positive = 2 if verdict == "holds" else 0  # the feature_target control (two metrics) expects "holds"
    assert outcomes.get("failed", 0) >= 1 and outcomes.get("passed", 0) == positive
    result.stdout.fnmatch_lines([f"*control C1:lazy came out '{verdict}'*the suite cannot tell this case apart*"])
    assert "failed" not in pytester.runpytest_inprocess(*options).parseoutcomes()


@pytest.mark.parametrize("exc", [RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 26447184384 bytes."),
                                 MemoryError()], ids=["device", "host"])
def test_out_of_memory_is_named_in_the_one_line_error(exc):
    message = ntkbench.plugin._one_line(exc)
    assert message.startswith(f"{type(exc).__name__}: out of memory: ")
    assert message.endswith("(lower the tier or the kernel block size)") and "\n" not in message


def test_a_session_that_runs_no_case_leaves_xla_flags_alone(pytester, monkeypatch):
    """The plugin loads in every pytest session of the environment (entry point): it must not
    change jax's settings where ntkbench is not used."""
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    pytester.makepyfile(test_other="""
import os

def test_flags():
    import ntkbench.plugin, ntkbench.session  # loaded, as in any session
    assert "XLA_FLAGS" not in os.environ
""")
    result = pytester.runpytest_subprocess()  # the plugin comes by its entry point
    result.assert_outcomes(passed=1)
