"""The claim registry and the verdict rule every claim shares."""

import re
from pathlib import Path

import pytest

from ntkbench.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, get_claim, scaling_verdict, with_ci

MARGIN = 0.05


@pytest.mark.parametrize("gap_ci, verdict", [
    pytest.param((0.10, 0.30), HOLDS, id="above"),
    pytest.param((0.051, 0.06), HOLDS, id="just-above"),
    pytest.param((-0.30, -0.10), DOES_NOT_HOLD, id="below"),
    pytest.param((0.00, 0.049), DOES_NOT_HOLD, id="positive-but-below-margin"),
    pytest.param((0.00, 0.10), INCONCLUSIVE, id="straddling"),
    pytest.param((-1.00, 1.00), INCONCLUSIVE, id="wide"),
    pytest.param((MARGIN, 0.30), INCONCLUSIVE, id="low-end-on-margin"),  # touching δ is not clearing it
    pytest.param((-0.30, MARGIN), INCONCLUSIVE, id="high-end-on-margin"),
])
def test_scaling_verdict(gap_ci, verdict):
    assert scaling_verdict(gap_ci, MARGIN) == verdict


def test_unknown_claim_is_rejected_with_the_known_ids():
    with pytest.raises(ValueError, match=r"unknown claim 'C9'; known: .*C1"):
        get_claim("C9")




@pytest.mark.parametrize("value, low, high, text", [
    (0.5, 0.25, 0.75, "0.500 [0.250, 0.750]"), (0.005, 0.001, 0.009, "5.00e-03 [1.00e-03, 9.00e-03]"),
    (float("nan"), 0.0, 1.0, "—")])
def test_a_number_is_shown_with_its_interval(value, low, high, text):
    assert with_ci(value, low, high) == text


def test_a_claim_owns_its_sweep():
    from ntkbench.tiers import get_tier

    small = get_tier("small")
    assert get_claim("C1").variants(small) == [()]
    assert get_claim("C2").variants(small) == [(("n0", n0),) for n0 in small.after_n0]
    assert get_claim("C2").variants(None) == []  # a swept claim has no cases without a tier


def readme_block(marker: str) -> str:
    """The fenced code block that follows ``<!-- marker -->`` in README.md."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    after = text.split(f"<!-- {marker} -->", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_a_claim_with_a_new_experiment_kind_is_added_from_a_conftest(pytester, tiny_pytest_args):
    """The README's worked example, verbatim: a conftest.py registers an experiment kind and
    a claim, a benchmark module marks its test, and the run prints the claim's rows."""
    pytester.makeconftest(readme_block("example:claim-conftest"))
    pytester.makepyfile(test_linear_baseline=readme_block("example:claim-test"))
    result = pytester.runpytest_subprocess(*tiny_pytest_args, "--ntkbench-plots=none")
    result.assert_outcomes(passed=2)
    rows = [line for line in result.outlines if line.startswith("| LIN ") and "mlp/mnist1d" in line]
    assert len(rows) == 2 and all("NN " in row and "linear regression " in row for row in rows)
    assert any(re.search(r"\(computed, \d+s\) .*linear_inputs-", line) for line in result.outlines)
    assert any(re.search(r"\(cached, \d+s\) .*nn-", line) for line in result.outlines)  # C1's network curve
    verdicts = {row.split("|")[11].strip() for row in rows}
    assert verdicts <= {HOLDS, DOES_NOT_HOLD, INCONCLUSIVE}
