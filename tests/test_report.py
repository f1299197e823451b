"""The leaderboard: a deterministic row order and a readable terminal table."""

import itertools

import pandas as pd
import pytest

from ntkbench.cases import Case, base_row, error_row
from ntkbench.claims import get_claim
from ntkbench.scaling_claims import evaluate_scaling
from ntkbench.fit import PairedFit
from ntkbench.report import format_leaderboard, leaderboard_frame
from ntkbench.tiers import get_tier

TIER = get_tier("smoke")
SOURCE = "nn:mlp/mnist1d@0123456789 (computed, 3s) /cache/nn-0123456789.json"  # as the table cites it
SOURCES = [{"label": "nn:mlp/mnist1d@0123456789", "path": "/cache/nn-0123456789.json", "elapsed_s": 3.2,
            "computed": True}]


def result_row(arch: str, metric: str, gap_ci=(0.1, 0.3)) -> dict:
    fit = PairedFit(alpha_a=0.61, alpha_a_ci=(0.52, 0.7), alpha_b=0.4, alpha_b_ci=(0.35, 0.45),
                    gap=0.21, gap_ci=gap_ci, window=(128, 2048), method="loglog", points=5, seeds=5,
                    alternatives=(((128, 1024), 0.1), ((256, 2048), -0.05)))
    case = Case("C1", arch, "mnist1d", metric)
    return {**base_row(case, TIER), **evaluate_scaling(get_claim("C1"), fit),
            "sources": SOURCES, "error": ""}


def failed_row(arch: str, metric: str) -> dict:
    return error_row(Case("C1", arch, "mnist1d", metric), TIER,
                     f"UnknownNameError: unknown architecture '{arch}'; known: cnn1d, mlp")


ROWS = [result_row("mlp", "test_mse"), result_row("mlp", "test_error", gap_ci=(-0.3, -0.1)),
        result_row("cnn1d", "test_mse", gap_ci=(-0.1, 0.2)), failed_row("zzz", "test_mse")]
SORTED_KEYS = [("C1", "cnn1d/mnist1d", "test_mse"), ("C1", "mlp/mnist1d", "test_error"),
               ("C1", "mlp/mnist1d", "test_mse"), ("C1", "zzz/mnist1d", "test_mse")]


def keys(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(frame["claim"], frame["case"], frame["metric"]))


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(ROWS)))),
                         ids=lambda order: "".join(map(str, order)))
def test_row_order_and_table_do_not_depend_on_input_order(order):
    frame = leaderboard_frame([ROWS[i] for i in order])
    assert keys(frame) == SORTED_KEYS
    assert list(frame.index) == list(range(len(ROWS)))
    assert format_leaderboard(frame) == format_leaderboard(leaderboard_frame(ROWS))


def table_lines(rows=ROWS) -> dict[tuple, str]:
    """The formatted table's data lines, by (case, metric)."""
    lines = format_leaderboard(leaderboard_frame(rows)).splitlines()
    return {tuple(cell.strip() for cell in line.split("|")[2:4]): line
            for line in lines[2:] if line.startswith("|")}


def test_table_has_a_header_and_one_line_per_row():
    text = format_leaderboard(leaderboard_frame(ROWS)).split("\n\n")[0]
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        "claim", "case", "metric", "α_a [CI]", "α_b [CI]", "gap or statistic [CI]", "δ", "window",
        "gap on other windows", "trivial (first n beating it: a/b)", "verdict", "source"]
    assert len(lines) == 2 + len(ROWS)


def test_sources_are_named_once_and_cited_by_every_row_using_them():
    text = format_leaderboard(leaderboard_frame(ROWS))
    assert text.count(SOURCE) == 1
    mark = next(line for line in text.splitlines() if line.endswith(SOURCE))[: -len(SOURCE)].strip()
    assert mark
    for _, case, metric in SORTED_KEYS[:3]:
        assert table_lines()[case, metric].split("|")[-2].strip() == mark


@pytest.mark.parametrize("case, metric, expected", [
    ("mlp/mnist1d", "test_mse", ["NN 0.610 [0.520, 0.700]", "eNTK(init) 0.400 [0.350, 0.450]",
                                 "0.210 [0.100, 0.300]", "| 0.05 ", "128–2048 loglog (5 pts)",
                                 "128–1024: +0.100; 256–2048: -0.050", "| holds "]),
    ("mlp/mnist1d", "test_error", ["0.210 [-0.300, -0.100]", "| does not hold "]),
    ("cnn1d/mnist1d", "test_mse", ["0.210 [-0.100, 0.200]", "| inconclusive "]),
    ("zzz/mnist1d", "test_mse", ["| error ", "UnknownNameError: unknown architecture 'zzz'; known: cnn1d, mlp"]),
], ids=["holds", "does-not-hold", "inconclusive", "error"])
def test_table_shows_cis_window_verdict_and_errors(case, metric, expected):
    line = table_lines()[case, metric]
    for text in expected:
        assert text in line


def test_error_row_has_placeholders_instead_of_numbers():
    cells = [cell.strip() for cell in table_lines()["zzz/mnist1d", "test_mse"].split("|")[4:9]]
    assert cells == ["—"] * 5


def test_missing_exponent_is_shown_as_a_dash():
    row = {**result_row("mlp", "test_mse"), "alpha_b": float("nan")}
    cells = table_lines([row])["mlp/mnist1d", "test_mse"].split("|")
    assert cells[4].strip().startswith("NN 0.610") and cells[5].strip() == "—"


def test_statistic_rows_have_no_exponents_and_small_values_in_scientific_notation():
    row = {**result_row("mlp", "test_mse"), "alpha_a": float("nan"), "alpha_b": float("nan"),
           "gap": 4e-4, "gap_lo": 2e-4, "gap_hi": 6e-4, "method": "of training", "points": 3,
           "window_lo": 0.25, "window_hi": 1.0}
    cells = [c.strip() for c in table_lines([row])["mlp/mnist1d", "test_mse"].split("|")]
    assert cells[4:7] == ["—", "—", "4.00e-04 [2.00e-04, 6.00e-04]"]
    assert cells[8] == "25%–100% of training (3 seeds)"


def test_no_rows():
    frame = leaderboard_frame([])
    assert frame.empty
    assert format_leaderboard(frame) == "no ntkbench results"


def summary_cells(rows) -> dict[str, str]:
    """The C1 line of the verdict summary below the table, by column."""
    title, *summary = format_leaderboard(leaderboard_frame(rows)).split("\n\n")[1].splitlines()
    assert title.startswith("Verdicts per claim, on its primary metric")
    header = [c.strip() for c in summary[0].strip("|").split("|")]
    line = next(line for line in summary[2:] if line.strip("|").split("|")[0].strip() == "C1")
    return dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))


def test_verdict_summary_counts_each_claims_verdicts_on_its_primary_metric():
    cells = summary_cells(ROWS)
    primary = [r["verdict"] for r in ROWS if r["claim"] == "C1" and r["metric"] == "test_mse"]
    assert cells["primary metric"] == "test_mse" and int(cells["cases"]) == len(primary) == 3
    assert all(int(cells[v]) == primary.count(v) for v in set(primary))
    assert "does not hold" not in cells  # the only "does not hold" is a secondary (test_error) row


def after_row(arch: str, n0: int, alpha_after: float, metric: str = "test_mse") -> dict:
    fit = PairedFit(alpha_a=0.6, alpha_a_ci=(0.5, 0.7), alpha_b=alpha_after,
                    alpha_b_ci=(alpha_after - 0.05, alpha_after + 0.05), gap=0.6 - alpha_after,
                    gap_ci=(0.5 - alpha_after, 0.7 - alpha_after), window=(128, 2048), method="loglog", points=5)
    case = Case("C2", arch, "mnist1d", metric, (("n0", n0),))
    return {**base_row(case, TIER), **evaluate_scaling(get_claim("C2"), fit), "sources": SOURCES, "error": ""}


@pytest.mark.parametrize("alphas, trend", [((0.2, 0.3, 0.4), "grows"), ((0.4, 0.3, 0.2), "falls"),
                                            ((0.2, 0.4, 0.3), "mixed"), ((0.3,), "one value")])
def test_c2_summary_follows_alpha_after_in_increasing_n0(alphas, trend):
    """``alphas`` in increasing n0; the rows arrive in reverse order."""
    by_n0 = list(zip((512, 2048, 8192), alphas))
    rows = [after_row("mlp", n0, alpha) for n0, alpha in reversed(by_n0)] + ROWS
    frame = leaderboard_frame(rows)
    ((_, table),) = get_claim("C2").summaries(frame[frame["claim"] == "C2"])
    (row,) = table.to_dict("records")
    assert (row["case"], row["metric"], row["trend"]) == ("mlp/mnist1d", "test_mse", trend)
    assert row["α_b by n0 [CI]"] == "; ".join(
        f"{n0}: {a:.3f} [{a - 0.05:.3f}, {a + 0.05:.3f}]" for n0, a in by_n0)


def test_a_claims_summary_is_printed_under_the_table_only_with_its_rows():
    rows = [after_row("mlp", 512, 0.2), after_row("mlp", 2048, 0.3), after_row("cnn1d", 512, 0.5)]
    text = format_leaderboard(leaderboard_frame(rows + ROWS))
    assert "C2 secondary finding (reported, not required): α_b, the exponent of curve entk_after, by n0" in \
        text.split("\n\n")[-1]
    assert "| mlp/mnist1d   | test_mse | grows" in text
    assert "| cnn1d/mnist1d | test_mse | one value" in text
    assert "secondary finding" not in format_leaderboard(leaderboard_frame(ROWS))


def test_an_experiment_is_cited_once_by_its_file_whoever_computed_it():
    """Under xdist one worker computes an experiment and another loads it: one footnote,
    "computed", and the same table as when one process did both."""
    loaded = [{**SOURCES[0], "computed": False}]
    mixed = [{**result_row("mlp", "test_mse"), "sources": loaded}, result_row("mlp", "test_error")]
    serial = [result_row("mlp", "test_mse"), result_row("mlp", "test_error")]
    assert format_leaderboard(leaderboard_frame(mixed)) == format_leaderboard(leaderboard_frame(serial))
    assert format_leaderboard(leaderboard_frame(mixed)).count("/cache/nn-0123456789.json") == 1


@pytest.mark.parametrize("sanity, cell", [
    ({"trivial": 0.9, "beats_trivial_a": 256, "beats_trivial_b": 128, "ridge_at_edge": 0}, "0.900 (256/128)"),
    ({"trivial": 0.9, "beats_trivial_a": None, "beats_trivial_b": 128, "ridge_at_edge": 3},
     "0.900 (never/128), ridge at grid edge ×3"),
    ({}, "—"),
], ids=["both-beat", "never-and-edge", "no-figures"])
def test_sanity_cell_gives_the_trivial_loss_the_first_n_beating_it_and_ridge_edges(sanity, cell):
    from ntkbench.report import leaderboard_table

    row = {**ROWS[0], **sanity}
    table, _ = leaderboard_table(leaderboard_frame([row]))
    assert table[0]["trivial (first n beating it: a/b)"] == cell
