"""Progress lines: one per experiment and seed group as it is computed, and one per
experiment loaded from the cache. The cache reports them here; whoever shows them (the
pytest plugin, a script) subscribes. Kept free of jax."""

from __future__ import annotations

from collections.abc import Callable

_listeners: list[Callable[[str], None]] = []


def subscribe(listener: Callable[[str], None]) -> None:
    _listeners.append(listener)


def unsubscribe(listener: Callable[[str], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def report(line: str) -> None:
    for listener in list(_listeners):
        listener(line)


def experiment_line(label: str, n_grid, seeds, seconds: float, computed: bool) -> str:
    """``computed nn:mlp/mnist1d@… seeds 0–4, n 128–4096: 11.2 s`` (or ``loaded``)."""
    seeds = sorted(seeds)
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}–{seeds[-1]}"
    sizes = f"n {min(n_grid)}–{max(n_grid)}" if len(n_grid) > 1 else f"n {n_grid[0]}"
    verb = "computed" if computed else "loaded"
    return f"ntkbench: {verb} {label} {seed_text}, {sizes}: {seconds:.1f} s"
