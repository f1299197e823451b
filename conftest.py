"""Shared pytest configuration for the repository's tests and benchmarks."""

import pytest

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("ntkbench"):
        raise pytest.UsageError(
            "the ntkbench pytest plugin is not installed; install the package first (see README.md)")
