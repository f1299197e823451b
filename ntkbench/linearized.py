"""The experiment kind "nn_linearized": the network's first-order Taylor expansion around its
initialisation, trained exactly as the network is.

f_lin(x; θ) = f(x; θ0) + J(x; θ0)(θ − θ0) is regression with the eNTK at initialisation
(K = J Jᵀ) by the network's own optimizer, minibatches and early stopping, so in the lazy
regime the network and f_lin agree in function space (Lee et al. 2019). The lazy control
checks that agreement; ridge regression with a validation-chosen ridge is a different
estimator (another spectral filter) from early-stopped gradient descent.
"""

from __future__ import annotations

import dataclasses

from ntkbench import _env  # noqa: F401  (XLA flags before jax starts)
import jax

from ntkbench.experiments import ExperimentKind, register_kind
from ntkbench.runners import run_nn_seed, run_nn_seeds


@dataclasses.dataclass(frozen=True)
class Linearized:
    """A module's linearisation around the parameters it was initialised with. Its
    parameters are {"at": θ0, "params": θ}; θ0 takes no gradient, so no optimizer moves it."""

    module: object

    def init(self, key, x):
        params = self.module.init(key, x)
        return {"at": params, "params": params}

    def apply(self, params, x):
        at = jax.lax.stop_gradient(params["at"])
        delta = jax.tree.map(lambda p, a: p - a, params["params"], at)
        value, tangent = jax.jvp(lambda q: self.module.apply(q, x), (at,), (delta,))
        return value + tangent


register_kind(ExperimentKind("nn_linearized", run_nn_seed, "NN linearized at init", trains=True,
                             batched=run_nn_seeds, network="nn_linearized", model=Linearized))
