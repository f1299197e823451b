"""Sessions in separate processes on one cache: a session killed with SIGKILL in the middle of
an experiment is resumed from its last finished seed, and two sessions started together
compute each experiment once; they end with the numbers of an uninterrupted run (the
session's ``tiny_run``, whose experiment files have the same keys)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCHMARK = """
import pytest


@pytest.mark.ntkbench_claim("C1")
def test_c1(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
"""
# A test hook: with NTKBENCH_TEST_PAUSE set, the session stops for good once the network
# experiment's seed 0 is stored as partial progress, where the test kills it.
PAUSING_CONFTEST = """
import os
import time

from ntkbench import progress


def pause(line):
    if line.startswith("ntkbench: computed nn:") and " seed 0," in line:
        time.sleep(600)


if os.environ.get("NTKBENCH_TEST_PAUSE"):
    progress.subscribe(pause)
"""


def start(directory: Path, args: list[str], name: str, **env) -> subprocess.Popen:
    """pytest in ``directory`` in a new process, its output in ``name``.log."""
    log = (directory / f"{name}.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=directory, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, **env})


def session_args(tiny_settings, cache: Path, report: str) -> list[str]:
    return ["-p", "no:cacheprovider", "--ntkbench-tier=smoke", "--ntkbench-arch=mlp",
            *(f"--ntkbench-set={s}" for s in tiny_settings), f"--ntkbench-cache-dir={cache}",
            "--ntkbench-plots=none", f"--ntkbench-report={report}"]


def records(directory: Path) -> dict[str, list]:
    """The records of every complete experiment file in ``directory``, by file name."""
    return {path.name: json.loads(path.read_text())["records"]
            for path in directory.glob("*.json") if not path.name.endswith(".partial.json")}


def same_as_uninterrupted(cache: Path, warm_cache: Path) -> None:
    """Every experiment file of ``cache`` holds the records of the same file in the warm cache."""
    stored, uninterrupted = records(cache / "experiments"), records(warm_cache)
    assert {"nn", "entk_init"} == {name.split("-")[0] for name in stored}
    assert stored == {name: uninterrupted[name] for name in stored}


def computed_lines(log: Path) -> list[str]:
    """(experiment, seeds) of each "computed" line in a session's output."""
    return re.findall(r"^ntkbench: computed (\S+) (seeds? [0-9–]+),", log.read_text(), re.MULTILINE)


def test_a_killed_session_is_resumed_and_two_sessions_together_compute_each_experiment_once(
        pytester, tiny_settings, warm_cache):
    """A first session is killed with SIGKILL once the network's seed 0 is stored; then two
    sessions start together on the same cache: one resumes the network from seed 1, and
    no experiment and seed is computed twice."""
    pytester.makepyfile(test_c1=BENCHMARK)
    pytester.makeconftest(PAUSING_CONFTEST)
    cache = pytester.path / "cache"
    killed = start(pytester.path, session_args(tiny_settings, cache, "killed"), "killed", NTKBENCH_TEST_PAUSE="1")
    deadline = time.monotonic() + 120
    while not list((cache / "experiments").glob("nn-*.partial.json")) and killed.poll() is None:
        assert time.monotonic() < deadline, (pytester.path / "killed.log").read_text()
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    (partial,) = (cache / "experiments").glob("nn-*.partial.json")
    assert [r["seed"] for r in json.loads(partial.read_text())["records"]] == [0] * 4  # seed 0, four sizes

    names = ("a", "b")
    sessions = [start(pytester.path, session_args(tiny_settings, cache, name), name) for name in names]
    logs = [pytester.path / f"{name}.log" for name in names]
    assert [session.wait(timeout=300) for session in sessions] == [0, 0], [log.read_text() for log in logs]
    resumed = [log for log in logs if re.search(rf"^ntkbench: resuming nn:mlp/mnist1d@\S+: seeds 0 from "
                                                rf"{re.escape(str(partial))}$", log.read_text(), re.MULTILINE)]
    assert len(resumed) == 1 and not partial.exists()
    computed = [line for log in logs for line in computed_lines(log)]
    assert sorted(computed) == sorted(set(computed))  # no experiment and seed computed twice
    assert [seeds for label, seeds in computed if label.startswith("nn:")] == ["seed 1"]
    assert [seeds for label, seeds in computed if label.startswith("entk_init:")] in (["seed 0", "seed 1"],
                                                                                       ["seeds 0–1"])
    results = [json.loads((pytester.path / name / "results.json").read_text())["results"] for name in names]
    assert results[0] == results[1]
    same_as_uninterrupted(cache, warm_cache)
