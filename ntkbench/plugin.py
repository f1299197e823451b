"""pytest plugin: options, claim parametrisation, case evaluation and the leaderboard.

A benchmark module marks its test with ``@pytest.mark.ntkbench_claim("C1")`` and asks for
the ``ntkbench_case`` and ``ntkbench_evaluate`` fixtures; the plugin parametrises the test
over every case of the claim. Rows travel to the controller in each test report's
``user_properties`` (which pytest-xdist forwards), so one leaderboard is printed whatever
the number of workers; ntkbench.session writes the files at the end. Heavy imports (jax)
happen only when a case runs.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from ntkbench.live import PROGRESS_PROPERTY
from ntkbench.session import ROW_PROPERTY, SETTINGS_KEY


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
    group.addoption("--ntkbench-cache-dir", default=None, metavar="DIR",
                    help="cache root, as $NTKBENCH_CACHE_DIR: experiments in DIR/experiments, generated "
                         "datasets in DIR/datasets (default: $NTKBENCH_CACHE_DIR, else ~/.cache/ntkbench)")
    group.addoption("--ntkbench-data-dir", default=None, metavar="DIR",
                    help="directory holding datasets read from files (cifar-10-batches-py/, "
                         "cifar5m/); default $NTKBENCH_DATA_DIR or ~/data")
    group.addoption("--ntkbench-pin-gpus", action="store_true",
                    help="under pytest-xdist, give worker gwN the N-th visible GPU only (round robin)")
    group.addoption("--ntkbench-scheduler", default=None, metavar="ADDRESS|local:N",
                    help="compute the experiments the cache lacks as tasks of a dask.distributed cluster: "
                         "the scheduler at ADDRESS (tcp://HOST:PORT), or local:N for N worker processes on "
                         "this machine (one GPU each, if any); needs ntkbench[distributed]")
    group.addoption("--ntkbench-collect", action="store_true",
                    help="compute nothing: build the leaderboard and reports from the cache alone; "
                         "missing experiments give rows that say so")
    group.addoption("--ntkbench-references", default="reference_results", metavar="DIR",
                    help="reference tables, <tier>-<device kind>.csv (relative to the rootdir; "
                         "default reference_results)")
    group.addoption("--ntkbench-update-references", action="store_true",
                    help="write the rows of cases that drifted or are new into the reference table")
    group.addoption("--ntkbench-regen-references", action="store_true",
                    help="rewrite the reference row of every case this run produced")
    group.addoption("--ntkbench-prune-references", action="store_true",
                    help="remove the reference rows of cases the suite no longer defines (deleted or renamed)")
    group.addoption("--ntkbench-fail-on", default="control", metavar="LIST",
                    help="comma-separated outcomes that fail a case besides errors: control (a control "
                         "came out other than its expected verdict), drift (reference drift or lost "
                         "numbers), new (no reference row), unexpected (a verdict other than the claim's "
                         "expected one); 'none' for nothing (default: control)")
    group.addoption("--ntkbench-report", default=None, metavar="DIR",
                    help="write leaderboard.md, index.html and results.json to DIR")
    group.addoption("--ntkbench-save-run", action="store_true",
                    help="store this run's record in the run store (see the ntkbench command)")
    group.addoption("--ntkbench-runs-dir", default=".ntkbench/runs", metavar="DIR",
                    help="run store, relative to the rootdir (default .ntkbench/runs)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ntkbench_claim(id): parametrise this test over the claim's cases")
    config.addinivalue_line("markers", "ntkbench_controls: parametrise this test over the control cases")
    from ntkbench.session import SessionOutputs, pin_worker_gpu, settings

    if config.getoption("ntkbench_pin_gpus") and hasattr(config, "workerinput"):
        pin_worker_gpu(config.workerinput["workerid"])
    try:
        config.stash[SETTINGS_KEY] = settings(config)
    except (ValueError, OSError) as exc:
        raise pytest.UsageError(f"ntkbench: {exc}") from None
    config.pluginmanager.register(SessionOutputs(config), "ntkbench-outputs")
    from ntkbench.live import LiveProgress

    config.pluginmanager.register(LiveProgress(config), "ntkbench-live")


def _names(option: str | None) -> list[str] | None:
    return [name.strip() for name in option.split(",") if name.strip()] if option else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ntkbench_case" not in metafunc.fixturenames:
        return
    from ntkbench.cases import cases_for, control_cases, metrics_apart

    config = metafunc.config
    if metafunc.definition.get_closest_marker("ntkbench_controls"):
        cases = control_cases()
    elif (marker := metafunc.definition.get_closest_marker("ntkbench_claim")) is not None:
        cases = cases_for(marker.args[0], _names(config.getoption("ntkbench_arch")),
                          _names(config.getoption("ntkbench_dataset")), config.stash[SETTINGS_KEY]["tier"])
    else:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: ntkbench_case needs "
                                "@pytest.mark.ntkbench_claim(id) or @pytest.mark.ntkbench_controls")
    cases = metrics_apart(cases)
    metafunc.parametrize("ntkbench_case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def ntkbench_tier(pytestconfig: pytest.Config):
    """The tier this run uses, with ``--ntkbench-set`` overrides applied."""
    return pytestconfig.stash[SETTINGS_KEY]["tier"]


@pytest.fixture(scope="session")
def ntkbench_cache(pytestconfig: pytest.Config, request: pytest.FixtureRequest):
    """The experiment cache shared by every case of the session; ``--ntkbench-cache-dir`` is
    the cache root of everything cached while the session lasts (experiments and datasets).
    With ``--ntkbench-scheduler``, what the session's cases lack is computed on the cluster
    first; with ``--ntkbench-collect``, nothing is computed."""
    from ntkbench.cache import ExperimentCache
    from ntkbench.storage import use_cache_root

    root = pytestconfig.getoption("ntkbench_cache_dir")
    with use_cache_root(pytestconfig.invocation_params.dir / Path(root).expanduser() if root else None):
        cache = ExperimentCache(collect=pytestconfig.getoption("ntkbench_collect"))
        if pytestconfig.getoption("ntkbench_scheduler"):
            _compute_on_scheduler(pytestconfig, request.session, cache)
        yield cache


def _compute_on_scheduler(config: pytest.Config, session: pytest.Session, cache) -> None:
    from ntkbench import progress
    from ntkbench.scheduler import compute_missing

    value = config.getoption("ntkbench_scheduler")
    cases = [item.callspec.params["ntkbench_case"] for item in session.items
             if hasattr(item, "callspec") and "ntkbench_case" in item.callspec.params]
    try:
        compute_missing(cases, config.stash[SETTINGS_KEY]["tier"], cache, value, progress.report)
    except OSError as exc:  # the scheduler went away (checked at the start)
        pytest.exit(f"ntkbench: --ntkbench-scheduler {value}: {type(exc).__name__}: {exc}",
                    returncode=pytest.ExitCode.INTERNAL_ERROR)


@pytest.fixture(scope="session")
def ntkbench_references(pytestconfig: pytest.Config):
    """The reference table this run is compared with (its tier, this process's device kind)."""
    from ntkbench.references import ReferenceTable, find_table
    from ntkbench.metadata import device_kind

    settings = pytestconfig.stash[SETTINGS_KEY]
    return ReferenceTable.load(find_table(settings["references"], settings["tier"].name, device_kind()))


@pytest.fixture
def ntkbench_evaluate(request: pytest.FixtureRequest, ntkbench_tier, ntkbench_cache, ntkbench_references):
    """Run one case, compare it with its reference row and record the row; fail the test
    with a one-line message on an error or an outcome named by ``--ntkbench-fail-on``."""
    settings = request.config.stash[SETTINGS_KEY]

    def evaluate(case) -> dict:
        from ntkbench.cache import NotInCacheError
        from ntkbench.cases import error_row, run_case
        from ntkbench.claims import NOT_APPLICABLE, NOT_COMPUTED
        from ntkbench.experiments import NotApplicableError
        from ntkbench.session import outcome_failure

        finish = None  # how the test ends, called outside the except blocks (no chained report)
        try:
            row = run_case(case, ntkbench_tier, ntkbench_cache)
        except NotApplicableError as exc:
            finish = functools.partial(pytest.skip, str(exc))
            row = error_row(case, ntkbench_tier, str(exc), NOT_APPLICABLE)
        except NotInCacheError as exc:  # --ntkbench-collect
            finish = functools.partial(pytest.skip, f"not computed: {exc}")
            row = error_row(case, ntkbench_tier, str(exc), NOT_COMPUTED)
        except Exception as exc:  # every failure becomes an error row and a one-line failure
            row = error_row(case, ntkbench_tier, _one_line(exc))
            finish = functools.partial(pytest.fail, row["error"], pytrace=False)
        row.update(ntkbench_references.compare(row))
        live = request.config.pluginmanager.get_plugin("ntkbench-live")
        if live is not None and (lines := live.take()):  # a worker's experiment lines travel with the report
            request.node.user_properties.append((PROGRESS_PROPERTY, json.dumps(lines)))
        if finish is None and (failure := outcome_failure(row, settings["fail_on"], ntkbench_tier.verdicts)):
            finish = functools.partial(pytest.fail, failure, pytrace=False)
        request.node.user_properties.append((ROW_PROPERTY, json.dumps(row)))
        if finish is not None:
            finish()
        return row

    return evaluate


_MARKUP = {"passed": {"green": True}, "failed": {"red": True}, "skipped": {"yellow": True}}


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """With ``-v``, each case's verdict beside its outcome: ``PASSED (holds)``."""
    if report.when != "call" or config.get_verbosity() < 1 or report.outcome not in _MARKUP:
        return None
    row = next((json.loads(value) for name, value in report.user_properties if name == ROW_PROPERTY), None)
    if row is None:
        return None
    letter = {"passed": ".", "failed": "F", "skipped": "s"}[report.outcome]
    return report.outcome, letter, (f"{report.outcome.upper()} ({row['verdict']})", _MARKUP[report.outcome])


def _one_line(exc: BaseException) -> str:
    from ntkbench.kernels import out_of_memory  # a case has run: jax is loaded
    from ntkbench.storage import one_line

    text = one_line(exc)
    if out_of_memory(exc):
        text = f"out of memory: {text[:200]} (lower the tier or the kernel block size)"
    return f"{type(exc).__name__}: {text}"
