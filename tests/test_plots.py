"""Figures written from the experiments behind leaderboard rows."""

import json

import pandas as pd
import pytest

from ntkbench.plots import write_plots
from ntkbench.report import leaderboard_frame

PNG = b"\x89PNG\r\n\x1a\n"


def test_scaling_figures_for_each_case_and_metric(tiny_run, tmp_path):
    rows = [*tiny_run.rows.values(), {"claim": "C1", "case": "zzz/mnist1d", "metric": "test_mse",
                                      "verdict": "error", "error": "UnknownNameError: ..."}]
    stale = tmp_path / "scaling-old-test_mse.png"
    stale.write_bytes(PNG)
    written = write_plots(leaderboard_frame(rows), tmp_path)
    assert sorted(p.name for p in written) == ["scaling-mlp_mnist1d-test_error.png",
                                               "scaling-mlp_mnist1d-test_mse.png"]
    assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 10_000 for p in written)
    assert not stale.exists()


def test_evolution_figure_from_checkpoint_records(tmp_path):
    steps = (0, 10, 50, 100)
    records = [{"seed": s, "step": t, "time": t / 1000, "epoch": t / 2, "angle_to": [abs(t - u) / 100 for u in steps],
                "cka_angle_to": [abs(t - u) / 200 for u in steps], "kernel_test_mse": 1 - t / 200,
                "kernel_test_error": 0.5 - t / 400} for s in (0, 1) for t in steps]
    source = tmp_path / "entk_evolution-0123456789abcdef0123.json"
    source.write_text(json.dumps({"spec": {"kind": "entk_evolution", "arch": "mlp", "dataset": "mnist1d", "n0": 64},
                                  "records": records}))
    frame = pd.DataFrame([{"claim": "C3", "case": "mlp/mnist1d", "metric": "travel_ahead_25", "verdict": "holds",
                           "source_paths": [str(source)]}])
    (written,) = write_plots(frame, tmp_path / "plots")
    assert written.name == "evolution-mlp-mnist1d-entk_evolution-0123456789abcdef0123.png"
    assert written.read_bytes().startswith(PNG)


def test_no_rows_no_figures(tmp_path):
    assert write_plots(leaderboard_frame([]), tmp_path) == []


def test_a_figures_exponent_is_the_rows(tiny_run):
    from ntkbench.plots import curve_fit

    row = tiny_run.rows["test_mse"]
    network = next(path for path in row["source_paths"] if "/nn-" in path)
    records = pd.DataFrame(json.loads(open(network).read())["records"])
    assert curve_fit(records, "test_mse")[0] == pytest.approx(row["alpha_a"], rel=1e-9)
