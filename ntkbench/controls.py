"""Controls: settings in which a claim's outcome is known in advance, so that the suite can
be seen to say no (and yes) for the right reason.

* ``lazy`` — a wide one-hidden-layer MLP (width 1024; 512 at the small tier and 256 at the
  smoke tier, for time) in NTK parameterization trained by plain SGD with a small constant
  learning rate: the network stays close to its linearisation. C1 is tested as an
  equivalence: the network converged (else the case is an error), the gap's CI lies inside
  [−δ, δ], and the network agrees in function space with regression by its eNTK at
  initialisation trained the way the network is — its linearisation around θ0, trained by
  the same optimizer on the same minibatches and early-stopped on the same validation split
  (kind ``nn_linearized``; Lee et al. 2019): ‖f_NN − f_lin‖² / ‖f_lin‖² ≤ 0.1 on the test
  points at every size of the window (an order of magnitude below the predictor's own
  squared norm; fixed before any control was run). Ridge regression with a validation-
  chosen ridge is another estimator (another spectral filter) than early-stopped gradient
  descent, so its distance to the network is reported in every row but not tested. For
  C3 its kernel's total travel must be under a tenth of the non-lazy MLP's (and its run is
  C3's frozen-kernel baseline).
* ``kernel_target`` — the MLP learning a target inside the span of its infinite-width NTK
  (Gaussian inputs): the kernel is already the right one, so the network has no better
  exponent to find (C1, as an equivalence: the gap's CI inside [−δ, δ]).
* ``feature_target`` — its positive twin: the same Gaussian inputs and MLP, a target that
  depends on a 2-dimensional projection of the 40-dimensional input, which a rotation-
  invariant kernel can only learn from many more samples than a network that finds the
  projection: C1 is expected to hold, so the inputs alone cannot decide the outcome.

A control fails its test when its verdict is not its expected one ("inconclusive" fails).
"""

from __future__ import annotations

import dataclasses

from ntkbench.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE
from ntkbench.tiers import Tier

LAZY_SETTINGS = ("mlp.depth=1", "mlp.width=1024", "mlp.parameterization='ntk'", "optimizer='sgd'",
                 "momentum=0.0", "schedule='constant'", "learning_rate=0.1")
#: Smaller networks and grids for controls at the fast tiers, so that they fit their budgets.
SMOKE = ("mlp.width=256",)  # the lazy MLP's width at the smoke tier
SMALL_GRID = ("n_grid=(128,256,512,1024,2048)", "n_val=256", "n_test=512", "evolution_n=512")
LAZY_TIERS = (("smoke", SMOKE), ("small", (*SMALL_GRID, "mlp.width=512")))
EQUIVALENCE, VERDICT = "equivalence", "verdict"


@dataclasses.dataclass(frozen=True)
class Control:
    id: str
    claim: str
    arch: str
    dataset: str
    settings: tuple[str, ...] = ()  # tier overrides (KEY=VALUE, ARCH.KWARG=VALUE) at every tier
    tier_settings: tuple[tuple[str, tuple[str, ...]], ...] = (("small", SMALL_GRID),)
    data_kwargs: tuple[tuple[str, object], ...] = ()
    metrics: tuple[str, ...] | None = None  # default: all of the claim's metrics
    expected: str = DOES_NOT_HOLD
    # how the verdict is decided: "equivalence" (the gap's CI inside [−δ, δ], and function-
    # space agreement if ``agreement`` is set) or "verdict" (the claim's own rule)
    rule: str = EQUIVALENCE
    # (experiment kind, largest ‖f_a − f‖² / ‖f‖²): curve a must agree with that experiment's
    # predictions on the test points at every size of the window
    agreement: tuple[str, float] | None = None

    def tier(self, tier: Tier) -> Tier:
        """The tier the control runs at: ``tier`` with the control's settings, then the
        settings for that tier, applied."""
        extra = dict(self.tier_settings).get(tier.name, ())
        return tier.with_overrides([*self.settings, *extra])

    def decide(self, row: dict) -> dict:
        """The control's verdict from its measured row, and the checks behind it."""
        if self.rule != EQUIVALENCE:
            return {}
        low, high, margin = row["gap_lo"], row["gap_hi"], row["margin"]
        checks = {f"gap CI inside ±{margin:g}": -margin <= low and high <= margin}
        if self.agreement is not None:
            kind, bound = self.agreement
            distance = row.get("agreement_distance")
            shown = f"{distance:.3f}" if distance is not None and distance == distance else "unknown"
            checks[f"‖f_a − f_{kind}‖²/‖f_{kind}‖² {shown} ≤ {bound:g}"] = shown != "unknown" and distance <= bound
        verdict = DOES_NOT_HOLD if all(checks.values()) else HOLDS if low > margin else INCONCLUSIVE
        return {"verdict": verdict, "control_checks": "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in checks.items())}


CONTROLS: dict[str, Control] = {}


def register_control(control: Control) -> Control:
    CONTROLS[f"{control.claim}:{control.id}"] = control
    return control


register_control(Control("lazy", "C1", "mlp", "mnist1d", LAZY_SETTINGS, LAZY_TIERS, agreement=("nn_linearized", 0.1)))
register_control(Control("lazy", "C3", "mlp", "mnist1d", LAZY_SETTINGS, LAZY_TIERS, metrics=("travel_ratio",),
                         rule=VERDICT))
register_control(Control("kernel_target", "C1", "mlp", "teacher",
                         data_kwargs=(("teacher", "ntk"), ("arch", "mlp"))))
register_control(Control("feature_target", "C1", "mlp", "teacher", data_kwargs=(("teacher", "low_dimensional"),),
                         expected=HOLDS, rule=VERDICT))
