"""Reference tables on disk: validation on load, writing, finding a tier's table, and the
paper's expectations (comparison and merging: test_references_compare.py)."""

import csv
import math
import os
from pathlib import Path

import pytest

from leaderboard_rows import metadata, reference_table, result_row, standard_rows
from ntkbench.claims import CLAIMS
from ntkbench.references import (COLUMNS, NUMERIC, ReferenceError, ReferenceTable, find_table, known_claims,
                                 paper_expectations, table_path)

PAPER = Path(__file__).resolve().parents[1] / "reference_results" / "paper.csv"
# The written table's data lines, sorted: 2 cnn1d/test_mse, 3 mlp/test_error, 4 mlp/test_mse.
LAST_LINE = 4


@pytest.fixture
def written(tmp_path) -> Path:
    """A valid table with three rows, written by ReferenceTable.write."""
    table = reference_table(table_path(tmp_path, "smoke", "cpu"), standard_rows())
    table.write()
    return table.path


def edit(path: Path, line: int, column: str, value: str) -> None:
    """Set one cell of the CSV as raw text (``line`` counts from 1, the header)."""
    lines = path.read_text().splitlines(keepends=True)
    fields = next(csv.reader([lines[line - 1]]))
    fields[COLUMNS.index(column)] = value
    lines[line - 1] = ",".join(fields) + "\n"
    path.write_text("".join(lines))


def load_error(path: Path) -> str:
    """The ReferenceError message of loading ``path``, checking the file is left unchanged."""
    before = path.read_bytes()
    with pytest.raises(ReferenceError) as info:
        ReferenceTable.load(path)
    assert path.read_bytes() == before
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("header", [COLUMNS[:-1], COLUMNS + ["extra"],
                                    [c.replace("alpha_a", "alpha-a") for c in COLUMNS]],
                         ids=["missing", "extra", "misspelled"])
def test_a_wrong_header_is_named_on_line_1(written, header):
    lines = written.read_text().splitlines(keepends=True)
    written.write_text(",".join(header) + "\n" + "".join(lines[1:]))
    assert load_error(written).startswith(f"{written}, line 1: header {header}; expected the columns "
                                          f"{','.join(COLUMNS)}")


@pytest.mark.parametrize("line, column, value, message", [
    (3, "alpha_b", "0.4x", "column 'alpha_b': '0.4x' is not a number"),
    (2, "case", "", "column 'case' is empty"),
    (3, "metric", " ", "column 'metric' is empty"),
    (4, "value", "", "column 'value' is empty"),
    (3, "claim", "C9", f"unknown claim 'C9'; known: {', '.join(sorted(known_claims()))}"),
    (4, "verdict", "maybe", "verdict 'maybe' is not one of holds, does not hold, inconclusive"),
    (4, "metric", "test_error", "a second row for C1 / mlp/mnist1d / test_error (first on line 3)"),
    (4, "case", '"mlp/mnist1d', "unexpected end of data (unbalanced quote?)"),
    (2, "case", '"cnn1d/mnist1d', "unexpected end of data (unbalanced quote?)"),
    (2, "date", '"2025', "unexpected end of data (unbalanced quote?)"),
], ids=["non-number", "empty-case", "blank-metric", "empty-value", "unknown-claim", "unknown-verdict",
        "duplicate", "quote-in-last-row", "quote-on-line-2", "quote-in-last-column"])
def test_a_bad_row_is_named_with_its_line(written, line, column, value, message):
    """``message`` "": only the line is checked."""
    edit(written, line, column, value)
    assert load_error(written).startswith(f"{written}, line {line}: {message}")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95, 0.999])
def test_a_file_cut_inside_its_last_row_is_named_with_that_line(written, fraction):
    """Cut anywhere in the last row, its last field (``date``) included: the final newline
    every written table ends with is missing."""
    data = written.read_bytes()
    row_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    written.write_bytes(data[:row_start + max(1, int(fraction * (len(data) - 1 - row_start)))])
    assert load_error(written) == f"{written}, line {LAST_LINE}: the file ends inside this row (truncated?)"


def test_non_utf8_bytes_are_named_with_file_and_line(written):
    written.write_bytes(written.read_bytes().replace(b"mlp/mnist1d,test_mse", b"ml\xff/mnist1d,test_mse"))
    assert load_error(written) == f"{written}, line {LAST_LINE}: not UTF-8 text"


def test_blank_lines_are_skipped(written):
    rows = ReferenceTable.load(written).rows
    written.write_bytes(written.read_bytes().replace(b"\n", b"\n\n", 2))
    assert ReferenceTable.load(written).rows == rows


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_value_must_be_finite(written, value):
    edit(written, 2, "value", value)
    assert load_error(written).startswith(f"{written}, line 2: column 'value': ")


def test_an_empty_file_has_a_missing_header(tmp_path):
    path = tmp_path / "smoke-cpu.csv"
    path.write_bytes(b"")
    assert load_error(path) == (f"{path}, line 1: header missing; expected the columns {','.join(COLUMNS)}")


def test_no_file_and_a_header_only_file_are_empty_tables(tmp_path):
    path = tmp_path / "smoke-cpu.csv"
    assert ReferenceTable.load(path).rows == {}
    path.write_text(",".join(COLUMNS) + "\n")
    assert ReferenceTable.load(path).rows == {}


def comparable(row: dict) -> dict:
    """A row as written to 10 significant digits, NaN as None (NaN never equals itself)."""
    def cell(value):
        if isinstance(value, float):
            return None if math.isnan(value) else float(f"{value:.10g}")
        return value
    return {k: cell(v) for k, v in row.items()}


def test_write_then_load_gives_the_same_rows_to_10_digits(tmp_path):
    table = reference_table(tmp_path / "smoke-cpu.csv", [result_row(gap=0.123456789012345, alpha_b=1 / 3),
                                                         result_row(metric="test_error", alpha_a=math.nan)])
    table.write()
    loaded = ReferenceTable.load(table.path)
    assert {k: comparable(r) for k, r in loaded.rows.items()} == {k: comparable(r) for k, r in table.rows.items()}
    loaded_row = loaded.rows["C1", "mlp/mnist1d", "test_mse"]
    assert (loaded_row["value"], loaded_row["alpha_b"]) == (0.123456789, 0.3333333333)
    assert all(isinstance(loaded_row[c], float) for c in NUMERIC)


def test_rows_are_written_sorted(tmp_path):
    table = reference_table(tmp_path / "smoke-cpu.csv", standard_rows()[::-1])
    table.write()
    with open(table.path, newline="") as handle:
        keys = [tuple(r[:3]) for r in csv.reader(handle)][1:]
    assert keys == [("C1", "cnn1d/mnist1d", "test_mse"), ("C1", "mlp/mnist1d", "test_error"),
                    ("C1", "mlp/mnist1d", "test_mse")]


def test_write_replaces_the_file_and_leaves_no_temporary_file(written):
    reference_table(written, standard_rows(gap=0.5)).write()
    assert ReferenceTable.load(written).rows["C1", "mlp/mnist1d", "test_mse"]["value"] == 0.5
    assert sorted(p.name for p in written.parent.iterdir() if not p.name.endswith(".lock")) == [written.name]


def test_a_failed_write_keeps_the_old_file(written, monkeypatch):
    before = written.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        reference_table(written, standard_rows(gap=0.5)).write()
    assert written.read_bytes() == before
    assert [p.name for p in written.parent.iterdir() if p.name.endswith(".tmp")] == []


def touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_text(",".join(COLUMNS) + "\n")


@pytest.mark.parametrize("existing, found", [
    (("smoke-gpu.csv", "smoke-cpu.csv", "smoke-tpu.csv"), "smoke-cpu.csv"),
    (("smoke-tpu.csv", "smoke-gpu.csv", "small-cpu.csv"), "smoke-gpu.csv"),
    (("small-cpu.csv", "paper-cpu.csv"), "smoke-cpu.csv"),
    ((), "smoke-cpu.csv"),
], ids=["own-kind", "other-kind", "other-tiers-only", "none"])
def test_find_table_prefers_the_own_device_kind(tmp_path, existing, found):
    touch(tmp_path, *existing)
    assert find_table(tmp_path, "smoke", "cpu") == tmp_path / found


def write_paper(path: Path, *rows: str) -> Path:
    path.write_text("claim,expected,source,note\n" + "".join(row + "\n" for row in rows))
    return path


def test_paper_expectations_by_claim(tmp_path):
    path = write_paper(tmp_path / "paper.csv", "C1,holds,Fig. 2,", 'C3,holds,"Sec. 4, Fig. 5",kernel moves')
    expectations = paper_expectations(path)
    assert list(expectations) == ["C1", "C3"]
    assert expectations["C3"] == {"claim": "C3", "expected": "holds", "source": "Sec. 4, Fig. 5",
                                  "note": "kernel moves"}


@pytest.mark.parametrize("bad_row, message", [
    ("C1 control,holds,Fig. 2,", f"unknown claim 'C1 control'; known: {', '.join(sorted(CLAIMS))}"),
    ("C2,probably,Fig. 3,", "expected 'probably' is not one of holds, does not hold, inconclusive"),
    ("C2,holds, ,", "every expectation needs a source"),
], ids=["unknown-claim", "bad-expected", "no-source"])
def test_a_bad_expectation_is_named_with_its_line(tmp_path, bad_row, message):
    path = write_paper(tmp_path / "paper.csv", "C1,holds,Fig. 2,", bad_row)
    with pytest.raises(ReferenceError) as info:
        paper_expectations(path)
    assert str(info.value).startswith(f"{path}, line 3: {message}")


def test_the_committed_paper_expectations_agree_with_the_claims():
    if not PAPER.exists():
        pytest.skip(f"{PAPER} is not written yet")
    expectations = paper_expectations(PAPER)
    assert expectations
    assert {claim: row["expected"] for claim, row in expectations.items()} == {
        claim: CLAIMS[claim].expected for claim in expectations}


def test_reading_references_and_claims_does_not_import_jax():
    """The plugin validates reference tables before any case runs: that must stay cheap."""
    import subprocess
    import sys

    code = "import sys, ntkbench.references, ntkbench.controls; sys.exit('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_update_reads_merges_and_writes_under_one_lock(tmp_path, monkeypatch):
    import threading

    import filelock

    from ntkbench.references import ReferenceTable, update_table

    path = tmp_path / "smoke-cpu.csv"
    held = []
    load = ReferenceTable.load.__func__

    def load_checking_the_lock(cls, where):
        def probe():  # another thread (another fd) must not get the lock while the table is read
            try:
                filelock.FileLock(str(where) + ".lock", timeout=0).acquire()
                held.append(False)
            except filelock.Timeout:
                held.append(True)
        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        return load(cls, where)

    monkeypatch.setattr(ReferenceTable, "load", classmethod(load_checking_the_lock))
    table, written = update_table(path, standard_rows(), "regenerate", metadata())
    assert held == [True] and written == 3 and ReferenceTable.load(path).rows == table.rows
