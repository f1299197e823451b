"""``--ntkbench-scheduler``: the option, the task graph, ``local:N``'s workers, and a real
pytest session on a dask LocalCluster of 2 worker processes on this machine: each
experiment computed once, a worker killed mid-task and its task run again, and the numbers
of a run without dask."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ntkbench.cases import Case, cases_for, experiment_spec
from ntkbench.scheduler import experiment_graph, local_cluster, parse
from ntkbench.tiers import get_tier
from claim_modules import claim_module
from test_code_in_keys import CONFTEST  # an architecture of the session's own conftest.py ("wide")

distributed = pytest.importorskip("distributed")

BENCHMARK = claim_module("C1", "C2")
TASK_LINE = re.compile(r"ntkbench: computed (\S+) on tcp://\S+: [\d.]+ s(, retried after (\d+) lost worker)?")


def test_parse_local_workers_and_addresses():
    assert parse("local:3") == 3
    assert parse("tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    assert parse("10.0.0.1:8786") == "10.0.0.1:8786"


@pytest.mark.parametrize("value", ["", "local:", "local:0", "local:-1", "local:x", "nonsense", "host: 1"])
def test_parse_refuses_malformed_values(value):
    with pytest.raises(ValueError, match="--ntkbench-scheduler"):
        parse(value)


def test_the_graph_puts_networks_first_and_kernels_after_training_depend_on_them():
    tier = get_tier("smoke")
    cases = cases_for("C2", ["mlp"], ["mnist1d"], tier) + [Case("C1", "myrtle5", "mnist1d", "test_mse")]
    graph = experiment_graph(cases, tier)
    kinds = [spec.kind for spec, _ in graph.values()]
    assert kinds == sorted(kinds, key=lambda kind: kind != "nn")  # networks first
    network = experiment_spec("nn", cases[0], tier)
    assert graph[network.key] == (network, ())
    after = [(spec, needs) for spec, needs in graph.values() if spec.kind == "entk_after"]
    assert {spec.n0 for spec, _ in after} == set(tier.after_n0)
    assert all(needs == (network.key,) for _, needs in after)
    assert all(spec.arch == "mlp" for spec, _ in graph.values())  # the image network on vectors adds nothing


def run_session(directory: Path, args: list[str], name: str) -> str:
    """pytest in a new process (its output also kept in ``name``.log); the output."""
    result = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=directory, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "PYTHONHASHSEED": "0"})
    (directory / f"{name}.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def tiny_settings_args(tiny_settings) -> list[str]:
    return ["-p", "no:cacheprovider", "--ntkbench-tier=smoke", "--ntkbench-plots=none",
            *(f"--ntkbench-set={s}" for s in tiny_settings)]


def records(directory: Path) -> dict[str, list]:
    return {path.name: json.loads(path.read_text())["records"] for path in directory.glob("*.json")}


def results(report: Path) -> list[dict]:
    """results.json's rows, without the paths of the cache they were read from."""
    return [{k: v for k, v in row.items() if k not in ("source_paths", "sources")}
            for row in json.loads((report / "results.json").read_text())["results"]]


class KillOnce(distributed.WorkerPlugin):
    """Kills its worker's process (SIGKILL) 2 s after the first network task starts: once
    in the whole cluster, as the file ``marker`` records."""

    def __init__(self, marker: str):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith("nn-") and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(key))
            threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGKILL)).start()


def test_a_cluster_computes_each_experiment_once_with_the_numbers_of_a_run_without_dask_a_lost_worker_included(
        pytester, tiny_settings):
    """C1 and C2 of an architecture defined in the session's conftest.py, on 2 local worker
    processes: the network, then eNTK(init) and eNTK(after), which reads the network's
    parameters. The worker running the network's task is killed 2 s into it."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the plugin, to workers that cannot import tests
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_claims=BENCHMARK)
    args = [*tiny_settings_args(tiny_settings), "--ntkbench-arch=wide"]
    cluster_cache, serial_cache, marker = (pytester.path / name for name in ("cluster-cache", "serial-cache", "killed"))
    with local_cluster(2, dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.register_plugin(KillOnce(str(marker)))
        output = run_session(pytester.path, [*args, f"--ntkbench-cache-dir={cluster_cache}",
                                             f"--ntkbench-report={pytester.path / 'cluster'}",
                                             f"--ntkbench-scheduler={cluster.scheduler_address}"], "cluster")
    assert re.search(r"ntkbench scheduler: tcp://\S+, 2 workers, dashboard \S+: 3 experiments to compute, 0 cached",
                     output)
    assert marker.read_text().startswith("nn-")  # a worker died in the network's task
    tasks = {match[0].split(":")[0]: match[2] for match in TASK_LINE.findall(output)}
    assert tasks == {"nn": "1", "entk_init": "", "entk_after": ""}  # each once; the network's task run again
    assert not re.search(r"ntkbench: computed \S+ seed", output)  # the session itself computes nothing

    serial = run_session(pytester.path, [*args, f"--ntkbench-cache-dir={serial_cache}",
                                         f"--ntkbench-report={pytester.path / 'serial'}"], "serial")
    assert len(re.findall(r"ntkbench: computed \S+ seed", serial)) == 6  # 3 experiments, 2 seeds each
    assert records(cluster_cache / "experiments") == records(serial_cache / "experiments")
    assert results(pytester.path / "cluster") == results(pytester.path / "serial")
    files = [sorted(p.relative_to(cache).as_posix() for p in (cache / "experiments").rglob("*.*")
                    if p.suffix != ".lock") for cache in (cluster_cache, serial_cache)]
    assert files[0] == files[1]  # parameters and predictions included


def test_local_workers_keep_this_process_blas_threads_and_get_the_gpu_plugin(monkeypatch):
    """``local:N``: dask would give its workers one BLAS thread (other roundings than this
    process's); they inherit this process's settings instead."""
    from ntkbench.scheduler import connect

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    ours = {name: os.environ.get(name) for name in names}  # (dask's nanny writes its settings here)
    with connect("local:1") as client:
        seen = client.run(lambda dask_worker: ({name: os.environ.get(name) for name in names},
                                               sorted(dask_worker.plugins)))
    ((environment, plugins),) = seen.values()
    assert environment == ours == {name: os.environ.get(name) for name in names}
    assert "ntkbench-one-gpu-per-worker" in plugins


def slurm_recipe() -> str:
    """The Python program of the README's SLURM recipe."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("<!-- readme:slurm-recipe -->", 1)[1]
    return block.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]


def test_the_readme_slurm_recipe_submits_gpu_workers_and_runs_the_paper_tier(monkeypatch):
    """The recipe as written, with job submission and pytest replaced by recorders."""
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    seen = {}

    def scale(cluster, jobs):  # also called with 0 when the cluster closes
        seen.setdefault("jobs", []).append(jobs)
        seen.update(script=cluster.job_script(), address=cluster.scheduler_address)

    monkeypatch.setattr(dask_jobqueue.SLURMCluster, "scale", scale)
    monkeypatch.setattr(subprocess, "call", lambda command: seen.setdefault("command", command) and 0)
    with pytest.raises(SystemExit) as exit_info:
        exec(compile(slurm_recipe(), "README.md", "exec"), {"__name__": "__main__"})
    assert exit_info.value.code == 0 and seen["jobs"][0] == 8
    assert "#SBATCH --gres=gpu:1" in seen["script"] and "#SBATCH --cpus-per-task=8" in seen["script"]
    assert f"{sys.executable} -m distributed.cli.dask_worker {seen['address']}" in seen["script"]
    assert "--nthreads 1" in seen["script"]
    assert seen["command"][:4] == [sys.executable, "-m", "pytest", "benchmarks"]
    assert {"--ntkbench-tier=paper", f"--ntkbench-scheduler={seen['address']}"} <= set(seen["command"])
