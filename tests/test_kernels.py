"""ntkbench.kernels: eNTK blocks sized from the devices' free memory, resident Jacobian
blocks, and the same Gram whatever the blocks."""

import types

import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import ntkbench.gram_engines as gram_engines
import ntkbench.kernels as kernels
from ntkbench.kernels import MIN_BLOCK_ROWS, block_size_for, device_memory_budget, entk_gram, free_memory
from ntkbench.models import build_model

GiB = 1024**3
MYRTLE5_CIFAR_PARAMS = 447_626  # Jacobian row of Myrtle-5 at width 128 on 32×32×3 inputs


class FakeDevice:
    """A device whose allocator reports ``limit`` bytes with ``in_use`` taken; None: a CPU."""

    def __init__(self, limit=None, in_use=0):
        self.limit, self.in_use = limit, in_use

    def memory_stats(self):
        return None if self.limit is None else {"bytes_limit": self.limit, "bytes_in_use": self.in_use}


@pytest.fixture
def host_memory(monkeypatch):
    """Sets the host's available memory (psutil's figure) and runs as one process."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)

    def set_available(available):
        psutil = pytest.importorskip("psutil")
        monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=available))

    return set_available


def test_a_gpu_with_140_gib_free_sizes_paper_scale_blocks():
    gpu = [FakeDevice(limit=141 * GiB, in_use=1 * GiB)]
    assert free_memory(gpu) == 140 * GiB
    budget = device_memory_budget(gpu)
    assert budget == 70 * GiB
    rows = block_size_for(MYRTLE5_CIFAR_PARAMS, budget)
    assert rows == 70 * GiB // (32 * MYRTLE5_CIFAR_PARAMS) > 4096  # no fixed 4096-row cap
    assert (16384 + 4096 + 1024) * MYRTLE5_CIFAR_PARAMS * 4 <= budget  # a paper-tier Jacobian stays resident
    assert block_size_for(1, budget) == kernels.max_block_rows(budget) > 30000  # tiny rows: the kernel-block cap


def test_a_cpu_with_24_gb_takes_half_of_the_available_memory(host_memory):
    host_memory(24 * 10**9)
    assert free_memory([FakeDevice()]) == 24 * 10**9
    assert device_memory_budget([FakeDevice()]) == 12 * 10**9
    assert block_size_for(MYRTLE5_CIFAR_PARAMS, 12 * 10**9) == 12 * 10**9 // (32 * MYRTLE5_CIFAR_PARAMS)
    assert device_memory_budget([FakeDevice()], fraction=0.25) == 6 * 10**9


def test_host_memory_is_shared_by_cpu_devices_and_xdist_workers(host_memory, monkeypatch):
    host_memory(24 * 10**9)
    assert free_memory([FakeDevice(), FakeDevice()]) == 12 * 10**9
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert free_memory([FakeDevice()]) == 12 * 10**9


def test_a_nearly_full_device_falls_back_to_the_minimum_block():
    for device in (FakeDevice(limit=GiB, in_use=GiB - 1000), FakeDevice(limit=GiB, in_use=2 * GiB)):
        budget = device_memory_budget([device])
        assert budget == (500 if device.in_use < GiB else 0)
        assert block_size_for(MYRTLE5_CIFAR_PARAMS, budget) == MIN_BLOCK_ROWS
        assert block_size_for(1, budget) == MIN_BLOCK_ROWS


def test_several_devices_take_the_least_free(host_memory):
    host_memory(24 * 10**9)
    gpus = [FakeDevice(limit=80 * GiB, in_use=10 * GiB), FakeDevice(limit=80 * GiB, in_use=50 * GiB)]
    assert free_memory(gpus) == 30 * GiB
    assert free_memory(gpus + [FakeDevice()]) == 24 * 10**9  # a CPU among them with less


def test_block_size_for_memory():
    assert block_size_for(1000, memory_bytes=32 * 1000 * 100) == 100
    assert block_size_for(10**9, memory_bytes=1) == MIN_BLOCK_ROWS
    assert block_size_for(1, memory_bytes=10**12) == kernels.max_block_rows(10**12) == 125_000
    assert kernels.max_block_rows(2 * GiB) == 5792


def test_resident_blocks_keep_the_most_reused_first():
    blocks = [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 7)]
    assert kernels.resident_blocks(blocks, 10, budget=70, transient=0) == {0, 1, 2, 3}  # all fit
    assert kernels.resident_blocks(blocks, 10, budget=60, transient=40) == {3}  # 20 left beside two blocks
    assert kernels.resident_blocks(blocks, 10, budget=60, transient=20) == {2, 3}
    assert kernels.resident_blocks(blocks, 10, budget=10, transient=20) == set()


# --- blocks: each Jacobian block computed as often as the budget makes it --------------

@pytest.fixture(scope="module")
def mlp():
    model = build_model("mlp", 3, width=8)
    x = np.random.default_rng(5).normal(size=(12, 10)).astype(np.float32)
    params = model.init(jax.random.PRNGKey(0), x[:1])
    return model, params, ravel_pytree(params)[0].size * 4  # bytes of one Jacobian row


def make_case(mlp, x2: bool):
    """(model, params, row bytes, entk_gram args: 7 rows (and 5 columns), the Gram in one block)."""
    model, params, row_bytes = mlp
    rng = np.random.default_rng(6)
    args = tuple(rng.normal(size=(n, 10)).astype(np.float32) for n in ((7, 5) if x2 else (7,)))
    return model, params, row_bytes, args, entk_gram(model, params, *args, implementation="jacobian")


@pytest.fixture(scope="module", params=[False, True], ids=["symmetric", "x2"])
def gram_case(mlp, request):
    return make_case(mlp, request.param)


@pytest.fixture(scope="module")
def symmetric_case(mlp):
    return make_case(mlp, False)


@pytest.fixture
def jacobian_calls(monkeypatch):
    """The row count of every Jacobian block the Jacobian engine computes."""
    calls = []
    original = gram_engines.JacobianEngine.jacobian

    def spy(self, x):
        calls.append(len(x))
        return original(self, x)

    monkeypatch.setattr(gram_engines.JacobianEngine, "jacobian", spy)
    return calls


def assert_same_gram(actual, expected, symmetric):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    if symmetric:
        np.testing.assert_array_equal(actual, actual.T)


def test_blocked_equals_unblocked(gram_case, jacobian_calls):
    model, params, _, args, expected = gram_case
    blocked = entk_gram(model, params, *args, implementation="jacobian", block_size=3)
    # 7 rows in blocks of 3 (3, 3, 1), and 5 columns (3, 2): each block's Jacobian once
    assert jacobian_calls == ([3, 3, 1] if len(args) == 1 else [3, 3, 2, 3, 1])
    assert_same_gram(blocked, expected, len(args) == 1)


def test_memory_bound_recomputes_column_blocks(gram_case, jacobian_calls):
    model, params, _, args, expected = gram_case
    recomputed = entk_gram(model, params, *args, implementation="jacobian", block_size=3, memory_bytes=1)
    # a row block once, held through its row; a column block for each row that needs it
    assert jacobian_calls == ([3, 3, 1, 3, 1, 1] if len(args) == 1 else [3, 3, 2] * 2 + [1, 3, 2])
    assert_same_gram(recomputed, expected, len(args) == 1)


def test_a_symmetric_jacobian_that_fits_once_is_computed_once(symmetric_case, jacobian_calls):
    """A symmetric Gram counts its inputs once: 7 rows fit in a budget of 7 (not 14)."""
    model, params, row_bytes, args, expected = symmetric_case
    gram = entk_gram(model, params, *args, implementation="jacobian", block_size=3, memory_bytes=7 * row_bytes)
    assert jacobian_calls == [3, 3, 1]
    assert_same_gram(gram, expected, True)


def test_blocks_that_partly_fit_stay_resident_from_the_last(symmetric_case, jacobian_calls):
    """Blocks (2, 2, 2, 1): a budget of 6 rows holds two blocks computed on the fly and the
    last block, which every row needs."""
    model, params, row_bytes, args, expected = symmetric_case
    gram = entk_gram(model, params, *args, implementation="jacobian", block_size=2, memory_bytes=6 * row_bytes)
    assert jacobian_calls == [2, 2, 2, 1, 2, 2, 2]  # without the last resident: [2, 2, 2, 1, 2, 2, 1, 2, 1, 1]
    assert_same_gram(gram, expected, True)


def test_the_default_budget_comes_from_the_device(mlp, host_memory, jacobian_calls):
    """On a CPU, half the available host memory: 320 rows' worth, a budget of 160 rows, gives
    blocks of 20 rows (two in a quarter of it), all resident; an explicit budget still wins."""
    model, params, row_bytes = mlp
    x = np.random.default_rng(7).normal(size=(50, 10)).astype(np.float32)
    host_memory(320 * row_bytes)
    expected = entk_gram(model, params, x, implementation="jacobian", memory_bytes=10**9)
    assert jacobian_calls == [50]
    gram = entk_gram(model, params, x, implementation="jacobian")
    assert jacobian_calls[1:] == [20, 20, 10]
    assert_same_gram(gram, expected, True)


def test_a_resident_symmetric_gram_is_cut_into_tiles(mlp, jacobian_calls):
    """Four blocks a side (5/8 of the products of one block), none for two sides of inputs."""
    model, params, _ = mlp
    x = np.random.default_rng(8).normal(size=(1100, 10)).astype(np.float32)
    whole = entk_gram(model, params, x, implementation="jacobian", block_size=1100)
    assert_same_gram(entk_gram(model, params, x, implementation="jacobian", memory_bytes=10**10), whole, True)
    assert jacobian_calls == [1100] + [275] * 4
    entk_gram(model, params, x[:1000], x[1000:], implementation="jacobian", memory_bytes=10**10)
    assert jacobian_calls[5:] == [1000, 100]


def test_layer_factor_blocks_equal_the_whole_gram():
    """Blocks of a pytree of layer factors (the 1-D CNN's dense and convolution layers)."""
    model = build_model("cnn1d", 3, width=4)
    x = np.random.default_rng(0).normal(size=(9, 10)).astype(np.float32)
    params = model.init(jax.random.PRNGKey(0), x[:1])
    whole = entk_gram(model, params, x, implementation="layerwise")
    for memory in (None, 1):
        assert_same_gram(entk_gram(model, params, x, implementation="layerwise", block_size=4, memory_bytes=memory),
                         whole, True)
    np.testing.assert_allclose(entk_gram(model, params, x[:4], x[4:], implementation="layerwise", block_size=2),
                               whole[:4, 4:], rtol=1e-5, atol=1e-5 * np.abs(whole).max())
