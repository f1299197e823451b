"""C1: the trained network's data-scaling exponent beats its eNTK at initialisation's."""

import pytest


@pytest.mark.ntkbench_claim("C1")
def test_c1(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
