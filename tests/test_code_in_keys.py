"""The code that computes an experiment is part of its cache key: editing an architecture in a
user's conftest.py recomputes its experiments, and only them.

Each run is a fresh pytest process on a copy of the session's tiny-run cache, as a user
reruns after editing the file.
"""

import re
import shutil

CONFTEST = '''
import flax.linen as nn
from ntkbench.registry import register_architecture


class Wide(nn.Module):
    num_outputs: int
    width: int = 16

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.width)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.num_outputs)(x)


@register_architecture("wide")
def wide(num_outputs: int, width: int = 16) -> Wide:
    return Wide(num_outputs, width)
'''

BENCHMARK = """
import pytest


@pytest.mark.ntkbench_claim("C1")
def test_c1(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
"""


def experiments(result) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, architecture) → (key prefix, "computed" or "cached") of each experiment a run used."""
    found = re.findall(r"\b(\w+):(\w+)/mnist1d@(\w+) \((computed|cached), ", result.stdout.str())
    return {(kind, arch): (key, status) for kind, arch, key, status in found}


def test_editing_an_architecture_in_a_conftest_recomputes_its_experiments_only(pytester, tiny_settings, tiny_run):
    root = shutil.copytree(tiny_run.cache.root.parent, pytester.path / "cache")  # experiments/ and datasets/
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_c1=BENCHMARK)
    args = ["-p", "no:cacheprovider", "--ntkbench-tier=smoke", "--ntkbench-arch=mlp,wide", "--ntkbench-plots=none",
            *(f"--ntkbench-set={setting}" for setting in tiny_settings), f"--ntkbench-cache-dir={root}"]

    first = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(passed=4)
    before = experiments(first)
    assert {(arch, status) for (_, arch), (_, status) in before.items()} == {("mlp", "cached"), ("wide", "computed")}

    pytester.makeconftest(CONFTEST.replace("nn.relu(", "nn.tanh("))  # the forward pass only
    second = pytester.runpytest_subprocess(*args)
    second.assert_outcomes(passed=4)
    after = experiments(second)
    assert sorted(after) == sorted(before) == [(kind, arch) for kind in ("entk_init", "nn") for arch in ("mlp", "wide")]
    for (kind, arch), (key, status) in after.items():
        if arch == "wide":  # a new key: computed again, the old results left as they are
            assert status == "computed" and key != before[kind, arch][0]
        else:  # the unrelated experiment: the same key, loaded from the cache
            assert (key, status) == before[kind, arch]
