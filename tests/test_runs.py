"""The run store: file names, order, finding a run and its one-line summary."""

import re

import pytest

from leaderboard_rows import failed_row, result_row, save, standard_rows
from ntkbench.runs import find_run, list_runs, load_run, run_summary

STEM = "20250102T030405-smoke-01234567"


@pytest.fixture
def store(tmp_path):
    """Three runs saved out of date order; by day: {3: path, 1: path, 2: path}."""
    directory = tmp_path / "runs"
    return directory, {day: save(directory, standard_rows(), day=day) for day in (3, 1, 2)}


def test_save_run_names_the_file_by_date_tier_and_commit(tmp_path):
    assert save(tmp_path, standard_rows()) == tmp_path / f"{STEM}.json"
    assert save(tmp_path, [], day=9, tier="paper", commit="fedcba9876543210") == (
        tmp_path / "20250109T030405-paper-fedcba98.json")


def test_save_run_never_overwrites(tmp_path):
    first = save(tmp_path, standard_rows())
    before = first.read_bytes()
    second = save(tmp_path, standard_rows(gap=0.9))
    assert second == tmp_path / "20250102T030405.02-smoke-01234567.json"
    assert first.read_bytes() == before
    assert second.read_bytes() != before


def test_list_runs_oldest_first(store):
    directory, by_day = store
    assert list_runs(directory) == [by_day[1], by_day[2], by_day[3]]


def test_list_runs_puts_a_second_save_of_the_same_second_after_the_first(tmp_path):
    first, second = save(tmp_path, standard_rows()), save(tmp_path, standard_rows())
    assert list_runs(tmp_path) == [first, second]
    assert find_run(tmp_path, "latest") == second


def test_list_runs_of_no_store_is_empty(tmp_path):
    assert list_runs(tmp_path / "nowhere") == []


@pytest.mark.parametrize("ref, day", [
    ("latest", 3), ("-1", 3), ("-2", 2), ("-3", 1), ("20250101", 1), ("20250102T030405-smoke-01234567", 2)])
def test_find_run_by_position_prefix_or_id(store, ref, day):
    directory, by_day = store
    assert find_run(directory, ref) == by_day[day]


@pytest.mark.parametrize("as_text", [True, False])
def test_find_run_by_path(store, as_text):
    directory, by_day = store
    assert find_run(directory / "elsewhere", str(by_day[2]) if as_text else by_day[2]) == by_day[2]


@pytest.mark.parametrize("ref, message", [
    ("2025", "3 runs matching '2025'; see `ntkbench runs`"),
    ("1999", "no run matching '1999'; see `ntkbench runs`"),
    ("-4", "3 stored runs, no run -4"),
], ids=["ambiguous", "absent", "out-of-range"])
def test_find_run_rejects_what_names_no_single_run(store, ref, message):
    directory, _ = store
    with pytest.raises(ValueError, match=f"^{re.escape(f'{directory}: {message}')}$"):
        find_run(directory, ref)


@pytest.mark.parametrize("ref", ["latest", "-1"])
def test_find_run_in_an_empty_store(tmp_path, ref):
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}: 0 stored runs, no run -1")):
        find_run(tmp_path, ref)


def test_find_run_minus_zero_is_not_a_position(store):
    directory, _ = store
    with pytest.raises(ValueError):
        find_run(directory, "-0")


def test_find_run_by_the_full_id_of_a_run_with_a_sibling(tmp_path):
    first, _ = save(tmp_path, standard_rows()), save(tmp_path, standard_rows())
    assert find_run(tmp_path, STEM) == first


@pytest.mark.parametrize("dirty, commit", [(False, "0123456789ab"), (True, "0123456789ab+dirty")])
def test_run_summary_counts_the_verdicts(tmp_path, dirty, commit):
    rows = standard_rows() + [result_row("cnn1d", "test_error"), failed_row("yyy")]
    path = save(tmp_path, rows, dirty=dirty)
    assert run_summary(path, load_run(path)) == {"run": STEM, "date": "2025-01-02T03:04:05+00:00", "tier": "smoke",
                                 "device": "cpu ×1", "commit": commit, "cases": 6,
                                 "does not hold": 1, "error": 2, "holds": 2, "inconclusive": 1}


def test_run_summary_of_a_run_without_results(tmp_path):
    path = save(tmp_path, [])
    summary = run_summary(path, load_run(path))
    assert (summary["run"], summary["cases"]) == (STEM, 0)
    assert not {"holds", "error"} & set(summary)
