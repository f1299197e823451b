"""A run you can watch: the plan at the start and a line per experiment, in plain output
(no ``-s``); under pytest-xdist, see test_session."""

import shutil

import pytest

from ntkbench.live import LiveProgress  # noqa: F401  (imported once, before the in-process runs)
from ntkbench.progress import experiment_line

BENCHMARK = """
import pytest


@pytest.mark.ntkbench_claim("C1")
def test_c1(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
"""


def test_an_experiment_line_says_what_which_seeds_and_sizes_and_how_long():
    assert experiment_line("nn:mlp/mnist1d@0123456789", (128, 256, 4096), [3, 0, 4], 11.24, True) == \
        "ntkbench: computed nn:mlp/mnist1d@0123456789 seeds 0–4, n 128–4096: 11.2 s"
    assert experiment_line("entk_init:mlp/x@ab", (64,), [1], 0.5, False) == \
        "ntkbench: loaded entk_init:mlp/x@ab seed 1, n 64: 0.5 s"


@pytest.fixture
def run(pytester, tiny_pytest_args, warm_cache):
    """``run(*args)``: pytest on C1 for the MLP, tiny tier, on a copy of the warm cache
    without the eNTK experiment (computed by the first run), captured as on a terminal."""
    pytester.makepyfile(test_c1=BENCHMARK)
    cache = shutil.copytree(warm_cache.parent, pytester.path / "cache")
    for path in (cache / "experiments").glob("entk_init-*"):
        path.unlink()

    def run_pytest(*args):
        return pytester.runpytest_inprocess(*tiny_pytest_args, f"--ntkbench-cache-dir={cache}",
                                            "--ntkbench-plots=none", *args)
    return run_pytest


def test_plain_output_shows_the_plan_then_each_experiment_as_it_is_computed_or_loaded(run):
    first = run()
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["ntkbench plan: 2 cases need 2 experiments: 1 cached, 1 to compute",
                                "ntkbench: loaded nn:mlp/mnist1d@* seeds 0–1, n 64–256: * s",
                                "ntkbench: computed entk_init:mlp/mnist1d@* seed 0, n 64–256: * s",
                                "ntkbench: computed entk_init:mlp/mnist1d@* seed 1, n 64–256: * s"])
    again = run()
    again.stdout.fnmatch_lines(["ntkbench plan: 2 cases need 2 experiments: 2 cached, 0 to compute",
                                "ntkbench: loaded nn:mlp/mnist1d@* seeds 0–1, n 64–256: * s",
                                "ntkbench: loaded entk_init:mlp/mnist1d@* seeds 0–1, n 64–256: * s"])
    assert not [line for line in again.outlines if "ntkbench: computed" in line]
