"""C1b: C1 holds across learning rate, batch size, optimizer and width (the tier's sweep)."""

import pytest


@pytest.mark.ntkbench_claim("C1b")
def test_c1b_robustness(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
