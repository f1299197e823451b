"""The text of a benchmark module for pytester runs: one test per claim."""


def claim_module(*claims: str) -> str:
    """A module whose test ``test_<claim>`` is parametrised over the cases of each claim."""
    tests = "".join(f'''

@pytest.mark.ntkbench_claim("{claim}")
def test_{claim.lower().replace("'", "_prime")}(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
''' for claim in claims)
    return "import pytest\n" + tests
