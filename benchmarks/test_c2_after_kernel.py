"""C2: an eNTK taken after pre-training on n0 samples still scales worse than the network."""

import pytest


@pytest.mark.ntkbench_claim("C2")
def test_c2_after_kernel(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
