"""The ``ntkbench`` command on a run store of hand-built runs: runs, compare, history."""

import pytest

from leaderboard_rows import failed_row, metadata, save, standard_rows
from ntkbench.cli import main
from ntkbench.references import ReferenceTable, table_path

LABELS = ["mlp/mnist1d", "cnn1d/mnist1d", "zzz/mnist1d"]
EQUAL = {("mlp/mnist1d", "test_mse"): "match", ("mlp/mnist1d", "test_error"): "match",
         ("cnn1d/mnist1d", "test_mse"): "match", ("zzz/mnist1d", "test_mse"): "—"}


@pytest.fixture
def store(tmp_path):
    """Two runs with the same rows (days 1 and 2)."""
    directory = tmp_path / "runs"
    return directory, [save(directory, standard_rows(), day=day) for day in (1, 2)]


@pytest.fixture
def cli(capsys):
    """``cli(*args)``: (exit status, stdout lines, stderr) of ``ntkbench *args``."""
    def run(*args):
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out.splitlines(), err
    return run


def compared(lines: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """The comparison table's (status, detail) by (case, metric)."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| C1")]
    return {(r[1], r[2]): (r[4], r[5]) for r in rows}


def statuses(lines: list[str]) -> dict[tuple[str, str], str]:
    return {k: status for k, (status, _) in compared(lines).items()}


def write_references(directory, device_kind="cpu"):
    """The reference table of standard_rows() for the smoke tier and ``device_kind``."""
    empty = ReferenceTable(table_path(directory, "smoke", device_kind), {})
    table, written = empty.merged(standard_rows(), "regenerate", metadata(device_kind=device_kind))
    assert written == 3
    table.write()
    return table.path


def test_runs_lists_the_stored_runs(store, cli):
    directory, paths = store
    status, lines, _ = cli("--runs-dir", directory, "runs")
    assert status == 0
    assert [line.split("|")[1].strip() for line in lines[2:]] == [p.stem for p in paths]
    assert all("| smoke  | cpu ×1   | 0123456789ab |" in line for line in lines[2:])


def test_runs_of_an_empty_store(tmp_path, cli):
    assert cli("--runs-dir", tmp_path, "runs")[:2] == (0, [f"no runs in {tmp_path}"])


def test_compare_equal_runs_exits_0(store, cli):
    directory, paths = store
    status, lines, err = cli("--runs-dir", directory, "compare", "latest")
    assert (status, err) == (0, "")
    assert lines[0] == f"baseline: {paths[0].stem}, the latest earlier run of tier 'smoke' on 'cpu'"
    assert lines[1] == f"{paths[1].stem} vs {paths[0]}"
    assert statuses(lines) == EQUAL
    assert lines[-1] == "no drift"


@pytest.mark.parametrize("changed, status_text, detail", [
    (standard_rows(gap=0.5), "drift", "gap 0.5, reference 0.21 (tolerance 0.02)"),
    (standard_rows()[1:] + [failed_row("mlp")], "missing", "reference 0.21, none this run"),
], ids=["gap-moved", "numbers-lost"])
def test_compare_a_changed_case_exits_1_and_names_it(store, cli, changed, status_text, detail):
    directory, _ = store
    save(directory, changed, day=3)
    status, lines, _ = cli("--runs-dir", directory, "compare", "latest")
    assert status == 1
    assert statuses(lines) == {**EQUAL, ("mlp/mnist1d", "test_mse"): status_text}
    assert compared(lines)["mlp/mnist1d", "test_mse"] == (status_text, detail)
    assert lines[-1] == f"1 of {len(changed)} cases drifted or lost their numbers"


def test_compare_with_a_named_baseline(store, cli):
    directory, paths = store
    later = save(directory, standard_rows(gap=0.5), day=3)
    status, lines, _ = cli("--runs-dir", directory, "compare", paths[0].stem, later.stem)
    assert status == 1
    assert lines[0] == f"{paths[0].stem} vs {later}"
    assert statuses(lines)["mlp/mnist1d", "test_mse"] == "drift"


@pytest.mark.parametrize("rows, expected", [(standard_rows(), 0), (standard_rows(gap=0.5), 1)])
def test_compare_with_the_reference_table(tmp_path, cli, rows, expected):
    path = write_references(tmp_path / "refs")
    run = save(tmp_path / "runs", rows)
    status, lines, _ = cli("--runs-dir", tmp_path / "runs", "compare", run.stem, "--references", tmp_path / "refs")
    assert status == expected
    assert lines[0] == f"{run.stem} vs {path}"
    assert statuses(lines)["mlp/mnist1d", "test_error"] == "match"
    assert statuses(lines)["mlp/mnist1d", "test_mse"] == ("match" if expected == 0 else "drift")


def test_compare_with_another_device_kinds_references_says_so(tmp_path, cli):
    path = write_references(tmp_path / "refs", device_kind="gpu")
    save(tmp_path / "runs", standard_rows())
    status, lines, _ = cli("--runs-dir", tmp_path / "runs", "compare", "latest", "--references", tmp_path / "refs")
    assert status == 0
    assert lines[1] == (f"Compared with {path} — across device kinds: this run on cpu, references from gpu.")


def test_history_writes_an_html_page(store, cli, tmp_path):
    directory, _ = store
    output = tmp_path / "out" / "history.html"
    status, lines, _ = cli("--runs-dir", directory, "history", "-o", output)
    assert (status, lines) == (0, [f"wrote {output}"])
    page = output.read_text()
    assert all(label in page for label in LABELS)
    assert page.count('src="data:image/png;base64,') == 3  # the failed zzz case has no figure


def test_compare_without_a_baseline_takes_the_latest_run_of_the_same_tier_and_device_kind(tmp_path, cli):
    directory = tmp_path / "runs"
    small = save(directory, standard_rows(), day=1, tier="small")
    save(directory, standard_rows(gap=0.5), day=2)  # a smoke run in between: not comparable
    save(directory, standard_rows(gap=0.5), day=3, tier="small", device_kind="gpu")  # another device kind
    latest = save(directory, standard_rows(), day=4, tier="small")
    status, lines, err = cli("--runs-dir", directory, "compare", "latest")
    assert (status, err) == (0, "")
    assert lines[:2] == [f"baseline: {small.stem}, the latest earlier run of tier 'small' on 'cpu'",
                         f"{latest.stem} vs {small}"]


def test_compare_as_json_lines(store, cli):
    import json

    directory, paths = store
    status, lines, err = cli("--runs-dir", directory, "compare", "latest", "--json")
    assert status == 0 and err.splitlines()[-1] == "no drift"
    rows = [json.loads(line) for line in lines]
    assert {(r["case"], r["metric"]): r["status"] for r in rows} == EQUAL
    assert set(rows[0]) == {"claim", "case", "metric", "verdict", "status", "detail"}


@pytest.mark.parametrize("content, what", [
    ('{"metadata": {"tier": "smoke"}, "res', "not an ntkbench results file (JSONDecodeError"),
    ('{"metadata": {"tier": "smoke"}, "results": [{"claim": "C1", "case": "x"}]}',
     "not an ntkbench run record (results without metric, verdict)"),
    ('{"metadata": {}, "results": []}', "not an ntkbench run record (no tier in its metadata)"),
], ids=["truncated", "missing-columns", "no-tier"])
def test_a_broken_run_record_is_skipped_by_runs_and_history_and_an_error_in_compare(store, cli, content, what):
    directory, paths = store
    broken = directory / "20250103T030405-smoke-broken.json"
    broken.write_text(content)
    status, lines, err = cli("--runs-dir", directory, "runs")
    assert status == 0 and [line.split("|")[1].strip() for line in lines[2:]] == [p.stem for p in paths]
    assert err.startswith(f"ntkbench: skipping {broken}: {what}") and len(err.splitlines()) == 1
    status, _, err = cli("--runs-dir", directory, "history", "-o", directory / "history.html")
    assert status == 0 and err.startswith(f"ntkbench: skipping {broken}: {what}")
    status, lines, err = cli("--runs-dir", directory, "compare", broken.stem)
    assert (status, lines) == (2, []) and err.startswith(f"ntkbench: {broken}: {what}") and len(err.splitlines()) == 1
