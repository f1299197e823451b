"""pytest plugin: options, claim parametrisation, case evaluation and the leaderboard.

A benchmark module marks its test with ``@pytest.mark.ntkbench_claim("C1")`` and asks for
the ``ntkbench_case`` and ``ntkbench_evaluate`` fixtures; the plugin parametrises the test
over every case of the claim. Rows travel to the controller in each test report's
``user_properties`` (which pytest-xdist forwards), so one leaderboard is printed whatever
the number of workers. Heavy imports (jax) happen only when a case runs.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

ROW_PROPERTY = "ntkbench_row"
SETTINGS_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ntkbench", "ntkbench: NN-vs-kernel claim benchmarks")
    group.addoption("--ntkbench-tier", default="small", choices=("smoke", "small", "paper"),
                    help="how much of each experiment to run (default: small)")
    group.addoption("--ntkbench-arch", default=None,
                    help="comma-separated architectures (default: all registered)")
    group.addoption("--ntkbench-dataset", default=None,
                    help="comma-separated datasets (default: each claim's own)")
    group.addoption("--ntkbench-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a tier setting, e.g. learning_rate=0.01, seeds=(0,1), mlp.width=256")
    group.addoption("--ntkbench-plots", default=".ntkbench/plots", metavar="DIR",
                    help="directory (relative to the rootdir) for the scaling and evolution "
                         "figures, one subdirectory per tier; 'none' to skip them")
    group.addoption("--ntkbench-cache-dir", default=None,
                    help="experiment cache (default: $NTKBENCH_CACHE_DIR/experiments or "
                         "~/.cache/ntkbench/experiments)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ntkbench_claim(id): parametrise this test over the claim's cases")
    config.addinivalue_line("markers", "ntkbench_controls: parametrise this test over the control cases")
    config.pluginmanager.register(Leaderboard(config), "ntkbench-leaderboard")
    from ntkbench.tiers import get_tier

    try:
        tier = get_tier(config.getoption("ntkbench_tier")).with_overrides(config.getoption("ntkbench_set"))
    except ValueError as exc:
        raise pytest.UsageError(f"ntkbench: {exc}") from None
    config.stash[SETTINGS_KEY] = {"tier": tier}


def _names(option: str | None) -> list[str] | None:
    return [name.strip() for name in option.split(",") if name.strip()] if option else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ntkbench_case" not in metafunc.fixturenames:
        return
    from ntkbench.cases import cases_for, control_cases

    config = metafunc.config
    if metafunc.definition.get_closest_marker("ntkbench_controls"):
        cases = control_cases()
    elif (marker := metafunc.definition.get_closest_marker("ntkbench_claim")) is not None:
        cases = cases_for(marker.args[0], _names(config.getoption("ntkbench_arch")),
                          _names(config.getoption("ntkbench_dataset")), config.stash[SETTINGS_KEY]["tier"])
    else:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: ntkbench_case needs "
                                "@pytest.mark.ntkbench_claim(id) or @pytest.mark.ntkbench_controls")
    metafunc.parametrize("ntkbench_case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def ntkbench_tier(pytestconfig: pytest.Config):
    """The tier this run uses, with ``--ntkbench-set`` overrides applied."""
    return pytestconfig.stash[SETTINGS_KEY]["tier"]


@pytest.fixture(scope="session")
def ntkbench_cache(pytestconfig: pytest.Config):
    """The experiment cache shared by every case of the session."""
    from ntkbench.cache import ExperimentCache

    root = pytestconfig.getoption("ntkbench_cache_dir")
    return ExperimentCache(Path(root) if root else None)


@pytest.fixture
def ntkbench_evaluate(request: pytest.FixtureRequest, ntkbench_tier, ntkbench_cache):
    """Run one case; record its row; fail the test with a one-line message on error."""

    def evaluate(case) -> dict:
        from ntkbench.cases import error_row, run_case
        from ntkbench.claims import HOLDS, NOT_APPLICABLE
        from ntkbench.experiments import NotApplicableError

        finish = None  # how the test ends, called outside the except blocks (no chained report)
        try:
            row = run_case(case, ntkbench_tier, ntkbench_cache)
        except NotApplicableError as exc:
            finish = functools.partial(pytest.skip, str(exc))
            row = error_row(case, ntkbench_tier, str(exc), NOT_APPLICABLE)
        except Exception as exc:  # every failure becomes an error row and a one-line failure
            row = error_row(case, ntkbench_tier, _one_line(exc))
            finish = functools.partial(pytest.fail, row["error"], pytrace=False)
        if finish is None and row.get("control") and row["verdict"] == HOLDS:
            finish = functools.partial(
                pytest.fail, f"control {row['control']} came out '{HOLDS}' (expected "
                             f"'{row['expected']}'): the suite cannot tell this case apart", pytrace=False)
        request.node.user_properties.append((ROW_PROPERTY, json.dumps(row)))
        if finish is not None:
            finish()
        return row

    return evaluate


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "RESOURCE_EXHAUSTED" in text or isinstance(exc, MemoryError):
        text = f"out of memory: {text[:200]} (lower the tier or the kernel block size)"
    return f"{type(exc).__name__}: {text}"


class Leaderboard:
    """Collects rows from test reports (local or forwarded by xdist workers) and prints them."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.rows: list[dict] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.rows.extend(json.loads(value) for name, value in report.user_properties
                         if name == ROW_PROPERTY and report.when == "call")

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.rows or hasattr(self.config, "workerinput"):
            return
        from ntkbench.report import format_leaderboard, leaderboard_frame

        tier = self.config.stash[SETTINGS_KEY]["tier"]
        frame = leaderboard_frame(self.rows)
        terminalreporter.write_sep("=", f"ntkbench leaderboard (tier: {tier.name})")
        terminalreporter.write_line(format_leaderboard(frame))
        plots = self.config.getoption("ntkbench_plots")
        if plots != "none":
            from ntkbench.plots import write_plots

            directory = self.config.rootpath / plots / tier.name
            written = write_plots(frame, directory)
            if written:
                terminalreporter.write_line(f"ntkbench plots: {len(written)} figures in {directory}")
