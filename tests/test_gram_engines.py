"""eNTK engines: which one ``auto`` picks, precisions, out-of-memory retries, the fallback
from structured derivatives, and the same Gram on two (forced) CPU devices."""

import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkbench.gram_engines as gram_engines
from ntkbench.gram_engines import JacobianEngine, KernelFnEngine, LayerwiseEngine, resolve
from ntkbench.kernels import entk_gram
from ntkbench.models import build_model


def small(name: str, shape, n: int = 12, traced: bool = False, **kwargs):
    """(model, params, inputs) of a narrow registered network; ``traced``: the parameters'
    shapes only, with no initialisation run (all that choosing an engine reads)."""
    model = build_model(name, 3, **kwargs)
    x = np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32)
    key = jax.random.PRNGKey(0)
    params = jax.eval_shape(model.init, key, x[:1]) if traced else model.init(key, x[:1])
    return model, params, x


MLP = lambda n=12: small("mlp", (10,), n, width=16)  # noqa: E731
CNN = lambda n=12: small("cnn1d", (10,), n, width=4)  # noqa: E731


def relative(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


class FlaxMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(nn.relu(nn.Dense(8)(x)))


class FlaxCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(nn.relu(nn.Conv(4, (3,))(x[..., None])).mean(axis=1))


def flax_network(module):
    x = np.random.default_rng(0).normal(size=(12, 10)).astype(np.float32)
    return module, module.init(jax.random.PRNGKey(0), x[:1]), x


@pytest.mark.parametrize("network, engine", [
    (MLP, "layerwise"), (CNN, "layerwise"), (lambda: small("myrtle5", (4, 4, 3), traced=True, width=4), "layerwise"),
    (lambda: flax_network(FlaxMLP()), "structured"), (lambda: flax_network(FlaxCNN()), "jacobian"),
], ids=["mlp", "cnn1d", "myrtle5", "flax-dense", "flax-conv"])
def test_auto_picks_layerwise_then_structured_for_dense_then_jacobian(network, engine):
    model, params, x = network()
    assert resolve("auto", model, params, x[:1]) == engine
    if engine != "layerwise":
        expected = entk_gram(model, params, x, implementation="jacobian")
        assert relative(entk_gram(model, params, x), expected) < 1e-5


def test_unknown_precision_is_refused():
    model, params, x = MLP()
    with pytest.raises(ValueError, match="unknown eNTK precision 'fp8'; known: float32, tf32, bf16"):
        entk_gram(model, params, x, precision="fp8")


@pytest.mark.parametrize("engine", ["layerwise", "jacobian", "structured"])
def test_precisions_against_float64(engine):
    """Measured against the float64 Gram of the same network: float32 and tf32 (float32 on a
    CPU) to 1e-5; bf16 Jacobians with float32 sums to 2e-2, and really coarser. The
    structured engine passes the precision to jax's matmul setting, which CPUs ignore."""
    model, params, x = MLP(16)
    with jax.enable_x64(True):
        exact = entk_gram(model, jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params),
                          x.astype(np.float64), implementation="jacobian")
    errors = {p: relative(entk_gram(model, params, x, implementation=engine, precision=p), exact)
              for p in ("float32", "tf32", "bf16")}
    assert errors["float32"] < 1e-5 and errors["tf32"] < 1e-5
    assert errors["bf16"] < 2e-2
    if engine != "structured":
        assert errors["bf16"] > 1e-4, errors


def test_a_block_out_of_memory_is_retried_at_half_the_size(monkeypatch):
    model, params, x = CNN()
    expected = entk_gram(model, params, x, implementation="jacobian")
    original, seen = JacobianEngine.block, []

    def block(self, a, b):
        seen.append(sum(len(chunk) for chunk in a))
        if seen[-1] > 3:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.00GiB")
        return original(self, a, b)

    monkeypatch.setattr(JacobianEngine, "block", block)
    with pytest.warns(UserWarning, match="eNTK block of 12 rows ran out of memory; retrying with 6"):
        gram = entk_gram(model, params, x, implementation="jacobian", block_size=12)
    assert seen[:2] == [12, 6] and max(seen[2:]) == 3
    np.testing.assert_allclose(gram, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_other_errors_are_not_retried(monkeypatch):
    model, params, x = CNN()
    monkeypatch.setattr(JacobianEngine, "block", lambda self, a, b: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        entk_gram(model, params, x, implementation="jacobian")


@pytest.mark.parametrize("network, engine_class, name", [
    (lambda: flax_network(FlaxMLP()), KernelFnEngine, "structured"), (MLP, LayerwiseEngine, "layerwise"),
], ids=["structured", "layerwise"])
def test_auto_falls_back_to_jacobians_when_its_engine_fails(monkeypatch, network, engine_class, name):
    """The structured engine rests on jax internals: if a jax release breaks it (or anything
    breaks the layerwise engine), ``auto`` still gives the Gram (and says why); asking for
    the engine by name still fails."""
    model, params, x = network()
    expected = entk_gram(model, params, x, implementation="jacobian")
    monkeypatch.setattr(engine_class, "block", lambda self, a, b: (_ for _ in ()).throw(TypeError("linearize()")))
    with pytest.warns(UserWarning, match=rf"{name} eNTK failed \(TypeError: linearize\(\)\); using the Jacobian"):
        np.testing.assert_array_equal(entk_gram(model, params, x), expected)
    with pytest.raises(TypeError):
        entk_gram(model, params, x, implementation=name)


def test_kernel_function_engine_blocks_cover_the_whole_gram():
    model, params, x = MLP(10)
    whole = entk_gram(model, params, x, implementation="structured")
    blocked = entk_gram(model, params, x, implementation="structured", block_size=4)
    np.testing.assert_allclose(blocked, whole, rtol=1e-5, atol=1e-5 * np.abs(whole).max())
    np.testing.assert_array_equal(blocked, blocked.T)


TWO_DEVICES = textwrap.dedent("""
    import numpy as np, jax
    from ntkbench.gram_engines import JacobianEngine
    from ntkbench.kernels import entk_gram
    from ntkbench.models import build_model
    assert jax.local_device_count() == 2, jax.devices()
    model = build_model("mlp", 3, width=4)
    x = np.random.default_rng(0).normal(size=(13, 10)).astype(np.float32)
    params = model.init(jax.random.PRNGKey(0), x[:1])
    engine = JacobianEngine(model, params)
    assert engine.devices == 2 and [len(j) for j in engine.jacobian(x[:5])] == [3, 2]
    assert [j.devices() for j in engine.jacobian(x[:5])] == [{d} for d in jax.devices()]
    for engine in ("jacobian", "layerwise"):
        one = entk_gram(model, params, x, implementation=engine, devices=jax.devices()[:1])
        two = entk_gram(model, params, x, implementation=engine, block_size=6)
        print(float(np.abs(one - two).max() / np.abs(one).max()))
""")


def test_two_forced_cpu_devices_give_the_same_gram_as_one():
    """Rows of every block split over 2 devices (13 rows in blocks of 6: 3 + 3, 3 + 3, 1),
    for the Jacobian and the layerwise engine."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", TWO_DEVICES], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [float(error) < 1e-6 for error in result.stdout.split()] == [True, True], result.stdout


def test_engines_are_compiled_once_per_model():
    model, params, x = MLP()
    assert gram_engines.jacobian_fn(model) is gram_engines.jacobian_fn(build_model("mlp", 3, width=16))
