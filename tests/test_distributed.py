"""More than one process: parsing the option, splitting experiments, and two real pytest
processes joined by jax's multi-process runtime (on this machine) sharing one cache."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ntkbench.cases import Case, cases_for, experiment_spec
from ntkbench.distributed import experiment_rounds, parse, share
from ntkbench.tiers import get_tier

ROOT = Path(__file__).resolve().parents[1]


def test_parse_auto_and_explicit():
    assert parse("auto") == {}
    assert parse("10.0.0.1:1234,4,3") == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3}


@pytest.mark.parametrize("value", ["", "host:12,2", "host,2,0", "host:port,2,0", "host:12,2,2", "host:12,x,0"])
def test_parse_refuses_malformed_values(value):
    with pytest.raises(ValueError, match="must be 'auto' or HOST:PORT,NUM_PROCESSES,PROCESS_ID"):
        parse(value)


def test_shares_cover_every_item_once():
    items = list(range(11))
    shares = [share(items, index, 3) for index in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]


def test_rounds_put_networks_first_including_those_kernels_after_training_need():
    tier = get_tier("smoke")
    cases = cases_for("C2", ["mlp"], ["mnist1d"], tier) + [Case("C1", "myrtle5", "mnist1d", "test_mse")]
    networks, rest = experiment_rounds(cases, tier)
    assert {spec.kind for spec in networks} == {"nn"} and {spec.kind for spec in rest} == {"entk_after"}
    assert {spec.n0 for spec in rest} == set(tier.after_n0)
    assert {spec.key for spec in networks} == {spec.network().key for spec in rest}
    assert experiment_spec("nn", cases[0], tier).key in {spec.key for spec in networks}
    assert all(spec.arch == "mlp" for spec in networks + rest)  # the image network on vectors adds nothing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def pytest_command(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "benchmarks/test_c1_entk_init.py", "--ntkbench-tier=smoke",
            "--ntkbench-arch=mlp", f"--ntkbench-cache-dir={tmp_path / 'cache'}", "--ntkbench-plots=none",
            "-p", "no:cacheprovider", "-q", *extra]


def test_two_processes_split_the_experiments_and_print_the_same_leaderboard(tmp_path, tiny_settings):
    address = f"localhost:{free_port()}"
    tiny = [f"--ntkbench-set={setting}" for setting in tiny_settings]
    runs = [subprocess.Popen(pytest_command(tmp_path, *tiny, f"--ntkbench-distributed={address},2,{index}",
                                            f"--ntkbench-report={tmp_path / f'report{index}'}"),
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for index in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    computed = [int(out.split(f"process {i} of 2 computed ")[1].split()[0]) for i, out in enumerate(outputs)]
    assert computed == [1, 1], computed  # the network, then its eNTK, one each
    assert "process 1 of 2; process 0 writes the files" in outputs[1]
    assert (tmp_path / "report0" / "results.json").exists() and not (tmp_path / "report1" / "results.json").exists()

    def leaderboard(out: str) -> str:  # the table and the verdict summary (not the date, nor who computed what)
        return out.split("ntkbench leaderboard")[1].split("| claim", 1)[1].split("\n[1]")[0]

    assert leaderboard(outputs[0]) == leaderboard(outputs[1])
    # one process on the shared cache afterwards: nothing left to compute, the same rows
    single = subprocess.run(pytest_command(tmp_path, *tiny, f"--ntkbench-report={tmp_path / 'single'}"),
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stdout[-3000:]
    assert "(computed" not in single.stdout
    rows = [json.loads((tmp_path / name / "results.json").read_text())["results"] for name in ("report0", "single")]
    assert rows[0] == rows[1] and len(rows[0]) == 2  # test MSE and test error


@pytest.mark.parametrize("extra, message", [
    (["--ntkbench-distributed=somewhere"], "must be 'auto' or HOST:PORT,NUM_PROCESSES,PROCESS_ID"),
    (["--ntkbench-distributed=localhost:1,2,0", "-n", "2"], "runs one pytest process per machine; drop -n"),
    (["--ntkbench-distributed=auto"], "--ntkbench-distributed found no cluster (SLURM, Open MPI, Kubernetes): "),
])
def test_bad_distributed_settings_are_usage_errors(tmp_path, extra, message):
    outside_a_cluster = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMI_", "KUBERNETES_"))}
    result = subprocess.run(pytest_command(tmp_path, *extra), cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=outside_a_cluster)
    assert result.returncode == 4 and message in result.stderr, result.stderr[-2000:]
