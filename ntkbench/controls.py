"""Controls: settings in which a claim is expected NOT to hold.

A claim suite that cannot say no is worthless. Each control runs a claim's cases under
settings where the network should behave like its kernel; its expected verdict is "does
not hold", and a control that comes out "holds" fails its test.

* ``lazy`` — a wide one-hidden-layer MLP (width 1024; 512 at the small tier and 256 at the
  smoke tier, for time) in NTK parameterization trained by plain SGD with a small constant
  learning rate: the network stays close to its linearisation, so it
  scales like its eNTK (C1) and its eNTK barely moves (C3).
* ``kernel_target`` — the MLP learning a target inside the span of its infinite-width NTK
  (Gaussian inputs): the kernel is already the right one, so the network has no better
  exponent to find (C1).
"""

from __future__ import annotations

import dataclasses

from ntkbench.claims import DOES_NOT_HOLD
from ntkbench.tiers import Tier

LAZY_SETTINGS = ("mlp.depth=1", "mlp.width=1024", "mlp.parameterization='ntk'", "optimizer='sgd'",
                 "momentum=0.0", "schedule='constant'", "learning_rate=0.1")
#: Smaller networks and grids for controls at the fast tiers, so that they fit their budgets.
SMOKE = ("mlp.width=256",)  # the lazy MLP's width at the smoke tier
SMALL_GRID = ("n_grid=(128,256,512,1024,2048)", "n_val=256", "n_test=512", "evolution_n=512")
LAZY_TIERS = (("smoke", SMOKE), ("small", (*SMALL_GRID, "mlp.width=512")))


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

    def tier(self, tier: Tier) -> Tier:
        """The tier the control runs at: ``tier`` with the control's settings, then the
        settings for that tier, applied."""
        extra = dict(self.tier_settings).get(tier.name, ())
        return tier.with_overrides([*self.settings, *extra])


CONTROLS: dict[str, Control] = {}


def register_control(control: Control) -> Control:
    CONTROLS[f"{control.claim}:{control.id}"] = control
    return control


register_control(Control("lazy", "C1", "mlp", "mnist1d", LAZY_SETTINGS, LAZY_TIERS))
register_control(Control("lazy", "C3", "mlp", "mnist1d", LAZY_SETTINGS, LAZY_TIERS,
                         metrics=("distance_rising",)))
register_control(Control("kernel_target", "C1", "mlp", "teacher",
                         data_kwargs=(("teacher", "ntk"), ("arch", "mlp"))))
