"""History across stored runs: where a case drifted, and the HTML page."""

import re

import pytest

from leaderboard_rows import key, save, standard_rows
from ntkbench.history import history_frame, history_html
from ntkbench.runs import readable_runs

KEYS = sorted(key(row) for row in standard_rows())
CHANGED = ("C1", "mlp/mnist1d", "test_mse")


def store(directory, *runs: list[dict]) -> list:
    """Save ``runs`` on successive days; the store's runs (path, results), oldest first."""
    for day, rows in enumerate(runs, start=1):
        save(directory, rows, day=day)
    return readable_runs(directory)


@pytest.fixture
def runs(tmp_path) -> list:
    """Three runs: equal, equal, then mlp/test_mse's gap moved from 0.21 to 0.5."""
    return store(tmp_path, standard_rows(), standard_rows(), standard_rows(gap=0.5))


def drifted(frame) -> list[tuple]:
    return [(r["run_index"], r["claim"], r["case"], r["metric"]) for r in frame.to_dict("records") if r["drift"]]


def test_history_frame_marks_drift_only_where_a_case_changed(runs):
    frame = history_frame(runs)
    assert len(frame) == 3 * len(KEYS)
    assert list(frame["run"].drop_duplicates()) == [p.stem for p, _ in runs]
    assert set(frame["tier_run"]) == {"smoke"}
    assert drifted(frame) == [(2, *CHANGED)]


def test_a_run_without_results_is_skipped(tmp_path):
    paths = store(tmp_path, standard_rows(), [], standard_rows(gap=0.5))
    frame = history_frame(paths)
    assert sorted(set(frame["run_index"])) == [0, 2]
    assert drifted(frame) == [(2, *CHANGED)]


def test_drift_is_against_the_previous_run_that_had_the_case(tmp_path):
    without = [row for row in standard_rows() if key(row) != CHANGED]
    assert drifted(history_frame(store(tmp_path, standard_rows(), without, standard_rows(gap=0.5)))) == [(2, *CHANGED)]


def section(page: str, title: str) -> list[list[str]]:
    """The cells of the table under the ``<h2>`` heading ``title``, row by row."""
    body = page.split(f"<h2>{title}</h2>", 1)[1].split("<h2>", 1)[0]
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_history_html_lists_the_runs(runs):
    assert section(history_html(runs), "Runs") == [
        ["run_index", "run", "tier"], *([str(i), p.stem, "smoke"] for i, (p, _) in enumerate(runs))]


def test_history_html_marks_drift_in_the_statistic_table(runs):
    page = history_html(runs)
    header, *rows = section(page, "Statistic per run")
    assert header == ["claim", "case", "metric", "0", "1", "2"]
    by_key = {tuple(row[:3]): row[3:] for row in rows}
    assert sorted(by_key) == KEYS
    assert by_key[CHANGED] == ["0.21 holds", "0.21 holds", "0.5 holds DRIFT"]
    assert by_key["C1", "mlp/mnist1d", "test_error"] == ["0.21 does not hold"] * 3
    assert by_key["C1", "zzz/mnist1d", "test_mse"] == ["error"] * 3
    assert page.count("DRIFT") == 1


def test_history_html_has_one_figure_per_case_with_numbers(runs):
    """Every case but the one that only ever failed (zzz, no numbers: no empty figure)."""
    page = history_html(runs)
    alts = re.findall(r'<figure><img alt="([^"]*)" src="data:image/png;base64,[A-Za-z0-9+/=]+"></figure>', page)
    assert alts == [" ".join(k) for k in KEYS if not k[1].startswith("zzz")]


def test_no_stored_runs(tmp_path):
    assert history_frame([]).empty
    assert "<p>no stored runs with results</p>" in history_html([])
    assert "<p>no stored runs with results</p>" in history_html(store(tmp_path, []))
