"""What a running session shows: the plan at the start, and a line per experiment (from
:mod:`ntkbench.progress`) as it is computed or loaded, without ``-s`` and under xdist.

Lines go through pytest's terminal reporter with capture suspended, as they happen in a
plain run. Under pytest-xdist a worker keeps them and sends them with each case's test
report (``user_properties``); the controller prints them when the case finishes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ntkbench import progress

PROGRESS_PROPERTY = "ntkbench_progress"


class LiveProgress:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.worker = hasattr(config, "workerinput")
        self.pending: list[str] = []
        self.planned = False
        progress.subscribe(self.line)

    def line(self, text: str) -> None:
        if self.worker:
            self.pending.append(text)
        else:
            self.write(text)

    def write(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is None:
            _write_line(reporter, text)
            return
        with capture.global_and_fixture_disabled():
            _write_line(reporter, text)

    def take(self) -> list[str]:
        """The lines a worker kept since the last call (none outside a worker)."""
        lines, self.pending = self.pending, []
        return lines

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.worker or report.when != "call":
            return
        for name, value in report.user_properties:
            if name == PROGRESS_PROPERTY:
                for text in json.loads(value):
                    self.write(text)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.worker:
            return
        cases = [item.callspec.params["ntkbench_case"] for item in session.items
                 if hasattr(item, "callspec") and "ntkbench_case" in item.callspec.params]
        if cases:
            self.write(plan_line(cases, self.config))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        if not self.planned:  # every worker reports its collection; the plan is said once
            self.planned = True
            workers = self.config.getoption("numprocesses", None)
            self.write(f"ntkbench plan: {len(ids)} tests on {workers} workers; each case's experiment lines "
                       "follow when it finishes")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        progress.unsubscribe(self.line)


def _write_line(reporter, text: str) -> None:
    if reporter._tw.width_of_current_line:  # after progress dots (xdist writes them without a path)
        reporter._tw.line()
    reporter.write_line(text)


def plan_line(cases: list, config: pytest.Config) -> str:
    """``ntkbench plan: 39 cases need 21 experiments: 3 cached, 18 to compute (≈ 8.6 min …)``."""
    from ntkbench.cache import ExperimentCache
    from ntkbench.cases import case_experiments
    from ntkbench.session import SETTINGS_KEY

    tier = config.stash[SETTINGS_KEY]["tier"]
    specs = {}
    for case in cases:
        try:
            specs.update((spec.key, spec) for spec in case_experiments(case, tier))
        except Exception:  # noqa: BLE001  (not applicable or unknown: the case says so when it runs)
            continue
    from ntkbench.storage import use_cache_root

    root = config.getoption("ntkbench_cache_dir")  # as the ntkbench_cache fixture reads it
    with use_cache_root(config.invocation_params.dir / Path(root).expanduser() if root else None):
        cache = ExperimentCache()
    cached = [spec for spec in specs.values() if cache.path(spec).exists()]
    todo = [spec for spec in specs.values() if spec not in cached]
    head = f"ntkbench plan: {len(cases)} cases need {len(specs)} experiments: {len(cached)} cached, "
    if config.getoption("ntkbench_collect"):
        return head + f"{len(todo)} missing (--ntkbench-collect computes nothing)"
    where = " on the scheduler" if config.getoption("ntkbench_scheduler") else ""
    return head + f"{len(todo)} to compute{where}{_estimate([spec.label for spec in todo], config, tier.name)}"


def _estimate(labels: list[str], config: pytest.Config, tier: str) -> str:
    """The compute time the latest stored run of the tier recorded for these experiments."""
    if not labels:
        return ""
    from ntkbench.runs import list_runs

    store = config.rootpath / config.getoption("ntkbench_runs_dir")
    for path in reversed(list_runs(store)):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if document.get("metadata", {}).get("tier") != tier or not document.get("experiments"):
            continue
        times = {e["label"]: e["elapsed_s"] for e in document["experiments"]}
        known = [times[label] for label in labels if label in times]
        return (f" (≈ {sum(known) / 60:.1f} min for the {len(known)} of them that run {path.stem} computed)"
                if known else "")
    return ""
