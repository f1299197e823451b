"""Name → object registries for architectures and datasets.

Registering is one decorated definition::

    @register_architecture("my_mlp")
    def my_mlp(num_outputs: int, width: int = 128) -> flax.linen.Module: ...

Third-party packages can also expose registrations through the ``ntkbench.plugins``
entry-point group: each entry point names a module that is imported (and so registers
its definitions) the first time a registry is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Lookup of a name that no registry entry has."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class Registry(Generic[T]):
    """A named collection; ``get`` of an unknown name lists the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def put(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``, replacing any entry of that name (a scheduler's
        worker takes the session's definitions)."""
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        _load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        _load_entry_points()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.names()


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A registered network: ``build(num_outputs, **kwargs)`` returns a flax module; the
    optional ``twin(num_outputs, **kwargs)`` returns its neural-tangents ``stax`` twin (same
    layers, widths and parameterization), whose analytic kernel is the infinite-width NTK."""

    name: str
    build: Callable[..., Any]
    input_kind: str = "vector"
    twin: Callable[..., Any] | None = None  # same signature; returns a stax (init, apply, kernel_fn)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A registered dataset: ``load(n_train, n_val, n_test, seed, **kwargs)`` → Splits."""

    name: str
    load: Callable[..., Any]
    input_kind: str = "vector"
    task: str = "classification"
    fingerprint: Callable[[], str] | None = None  # of files the data is read from (cache key)


ARCHITECTURES: Registry[Architecture] = Registry("architecture")
DATASETS: Registry[Dataset] = Registry("dataset")


def register_architecture(name: str, input_kind: str = "vector",
                          twin: Callable[..., Any] | None = None):
    """Decorator registering a flax-module factory ``f(num_outputs, **kwargs)``, optionally
    with its stax twin ``twin(num_outputs, **kwargs)``."""

    def decorate(build: Callable[..., Any]) -> Callable[..., Any]:
        ARCHITECTURES.add(name, Architecture(name, build, input_kind, twin))
        return build

    return decorate


def register_dataset(name: str, input_kind: str = "vector", task: str = "classification",
                     fingerprint: Callable[[], str] | None = None):
    """Decorator registering a loader ``f(n_train, n_val, n_test, seed, **kwargs)``; a
    dataset read from files gives a ``fingerprint()`` of them for the cache key."""

    def decorate(load: Callable[..., Any]) -> Callable[..., Any]:
        DATASETS.add(name, Dataset(name, load, input_kind, task, fingerprint))
        return load

    return decorate


_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    import ntkbench.data  # noqa: F401  (the built-in registrations)
    import ntkbench.models  # noqa: F401

    for entry_point in metadata.entry_points(group="ntkbench.plugins"):
        entry_point.load()
