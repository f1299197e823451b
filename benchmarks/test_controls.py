"""Controls: settings where the claims are expected not to hold; "holds" there is a failure."""

import pytest


@pytest.mark.ntkbench_controls
def test_control(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
