"""Reference tables in use: the status of a leaderboard row, merging a run into a table,
the comparison listing and a stored run as a table."""

import math

import pytest

from leaderboard_rows import NAN, failed_row, key, metadata, reference_table, result_row, standard_rows
from ntkbench.references import ReferenceTable, compare_rows, table_from_results
from ntkbench.report import leaderboard_frame

A, B, C, D, E = (("C1", f"{arch}/mnist1d", metric) for arch, metric in [
    ("mlp", "test_mse"), ("mlp", "test_error"), ("cnn1d", "test_mse"), ("zzz", "test_mse"), ("cnn1d", "test_error")])
OLD, NEW = "a" * 40, "b" * 40


@pytest.fixture
def table(tmp_path) -> ReferenceTable:
    """One reference row: mlp/test_mse, gap 0.21, α 0.61 and 0.4, holds, default tolerance."""
    return reference_table(tmp_path / "smoke-cpu.csv", [result_row()])


def status(reference: str, detail: str = "") -> dict:
    return {"reference": reference, "reference_detail": detail, "reference_value": 0.21, "reference_device": "cpu"}


@pytest.mark.parametrize("changes, expected", [
    ({"gap": 0.225, "alpha_a": 0.6, "alpha_b": 0.41}, status("match")),
    ({"gap": 0.25}, status("drift", "gap 0.25, reference 0.21 (tolerance 0.02)")),
    ({"alpha_a": 0.65}, status("drift", "alpha_a 0.65, reference 0.61 (tolerance 0.02)")),
    ({"alpha_b": 0.36}, status("drift", "alpha_b 0.36, reference 0.4 (tolerance 0.02)")),
    ({"alpha_b": NAN}, status("drift", "alpha_b nan, reference 0.4 (tolerance 0.02)")),
    ({"verdict": "inconclusive"}, status("drift", "verdict 'inconclusive', reference 'holds'")),
], ids=["within-tolerance", "gap", "alpha_a", "alpha_b", "alpha-gone", "verdict"])
def test_compare_a_measured_row(table, changes, expected):
    assert table.compare({**result_row(), **changes}) == expected


def test_an_exponent_only_the_run_has_drifts_and_one_neither_has_matches(tmp_path):
    without = reference_table(tmp_path / "smoke-cpu.csv", [result_row(alpha_b=NAN)])
    assert without.compare(result_row()) == status("drift", "alpha_b 0.4, reference nan (tolerance 0.02)")
    assert without.compare(result_row(alpha_b=NAN))["reference"] == "match"


@pytest.mark.parametrize("row, expected", [
    (result_row("cnn1d"), {"reference": "new", "reference_detail": ""}),
    (failed_row("cnn1d"), {"reference": "", "reference_detail": ""}),
    (failed_row("mlp"), status("missing", "reference 0.21, none this run")),
], ids=["new", "error-without-reference", "missing"])
def test_compare_a_row_without_reference_or_numbers(table, row, expected):
    assert table.compare(row) == expected


def test_a_tolerance_in_the_csv_overrides_the_claims(table):
    table.rows[A]["tolerance"] = 0.1
    table.write()
    loaded = ReferenceTable.load(table.path)
    assert loaded.rows[A]["tolerance"] == 0.1
    assert loaded.compare(result_row(gap=0.3)) == status("match")
    assert loaded.compare(result_row(gap=0.35)) == status("drift", "gap 0.35, reference 0.21 (tolerance 0.1)")


@pytest.fixture
def before(tmp_path) -> ReferenceTable:
    """References for A, B, C and D, from commit OLD."""
    rows = [result_row(), result_row(metric="test_error", gap_ci=(-0.3, -0.1)), result_row("cnn1d"), result_row("zzz")]
    return reference_table(tmp_path / "smoke-cpu.csv", rows, metadata(commit=OLD))


def run_rows(table: ReferenceTable) -> list[dict]:
    """This run: A unchanged, B drifted, D failed, E new (C not run), each compared with ``table``."""
    rows = [result_row(), result_row(metric="test_error", gap=0.5, gap_ci=(-0.3, -0.1)), failed_row("zzz"),
            result_row("cnn1d", "test_error")]
    return [{**row, **table.compare(row)} for row in rows]


def commits(table: ReferenceTable) -> dict:
    return {k: row["commit"][:1] for k, row in table.rows.items()}


@pytest.mark.parametrize("mode, count, rewritten", [("update", 2, {B, E}), ("regenerate", 3, {A, B, E})])
def test_merged_writes_the_modes_rows_and_keeps_the_others(before, mode, count, rewritten):
    merged, written = before.merged(run_rows(before), mode, metadata(commit=NEW))
    assert written == count
    assert commits(merged) == {k: "b" if k in rewritten else "a" for k in (A, B, C, D, E)}
    assert merged.rows[D] is before.rows[D] and merged.rows[C] is before.rows[C]
    assert merged.rows[B]["value"] == 0.5
    assert set(before.rows) == {A, B, C, D} and before.rows[B]["value"] == 0.21
    assert merged.path == before.path


@pytest.mark.parametrize("mode", ["update", "regenerate"])
def test_a_tolerance_override_survives_a_rewrite(before, mode):
    before.rows[A]["tolerance"] = before.rows[B]["tolerance"] = 0.01
    rows = [{**row, **before.compare(row)} for row in [result_row(gap=0.25)] + run_rows(before)[1:]]
    merged, written = before.merged(rows, mode, metadata(commit=NEW))
    assert commits(merged)[A] == commits(merged)[B] == "b"
    merged.write()
    loaded = ReferenceTable.load(merged.path)
    assert [loaded.rows[k]["tolerance"] for k in (A, B)] == [0.01, 0.01]
    assert math.isnan(loaded.rows[E]["tolerance"])


def test_compare_rows_lists_every_status_and_the_references_not_run(before):
    del before.rows[D]
    rows = [{k: v for k, v in r.items() if not k.startswith("reference")} for r in run_rows(before)]
    listed = [(r["case"], r["metric"], r["verdict"], r["status"]) for r in compare_rows(before, rows)]
    assert listed == [("mlp/mnist1d", "test_mse", "holds", "match"),
                      ("mlp/mnist1d", "test_error", "does not hold", "drift"),
                      ("zzz/mnist1d", "test_mse", "error", "—"),
                      ("cnn1d/mnist1d", "test_error", "holds", "new"),
                      ("cnn1d/mnist1d", "test_mse", "", "not run")]
    assert compare_rows(before, rows)[1]["detail"] == "gap 0.5, reference 0.21 (tolerance 0.02)"


def test_table_from_results_holds_the_measured_rows_of_a_run(tmp_path):
    frame = leaderboard_frame(standard_rows())
    table = table_from_results(frame, metadata(dirty=True), tmp_path / "run.json")
    assert table.path == tmp_path / "run.json"
    assert sorted(table.rows) == sorted(key(r) for r in standard_rows()[:3])
    row = table.rows[A]
    assert {k: row[k] for k in ("value", "value_lo", "value_hi", "alpha_a", "alpha_b", "window_lo", "window_hi")} == {
        "value": 0.21, "value_lo": 0.1, "value_hi": 0.3, "alpha_a": 0.61, "alpha_b": 0.4,
        "window_lo": 128, "window_hi": 2048}
    assert (row["verdict"], row["tier"], row["device_kind"], row["commit"], row["versions"]) == (
        "holds", "smoke", "cpu", "0123456789ab+dirty", "jax=0.10.2;neural-tangents=0.6.5")
    assert [table.compare(r)["reference"] for r in standard_rows()] == ["match", "match", "match", ""]
