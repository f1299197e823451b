"""C1': the trained network's data-scaling exponent beats its infinite-width NTK's."""

import pytest


@pytest.mark.ntkbench_claim("C1'")
def test_c1_ntk_inf(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
