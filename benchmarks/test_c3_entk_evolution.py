"""C3: the eNTK keeps evolving through most of training instead of freezing early."""

import pytest


@pytest.mark.ntkbench_claim("C3")
def test_c3_entk_evolution(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
