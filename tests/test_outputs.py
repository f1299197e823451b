"""Report files: results.json, leaderboard.md and the self-contained index.html."""

import base64
import json
import re

import pandas as pd
import pytest

from leaderboard_rows import metadata, standard_rows
from ntkbench.outputs import ReportError, check_writable, describe, load_results, references_note, write_report
from ntkbench.report import format_leaderboard, leaderboard_frame

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # only embedded, never decoded
PAPER = {"C1": {"claim": "C1", "expected": "holds", "source": "Fig. 2 (left)", "note": "MNIST-1D"}}
REFERENCES = {"path": "reference_results/smoke-gpu.csv", "device_kind": "cpu", "device_kinds": ["gpu"]}


@pytest.fixture
def frame() -> pd.DataFrame:
    return leaderboard_frame(standard_rows())


@pytest.fixture
def report(tmp_path, frame):
    """The report directory of ``frame`` with one figure and the paper's expectations."""
    figure = tmp_path / "c1-mlp.png"
    figure.write_bytes(PNG)
    paths = write_report(tmp_path / "report", frame, metadata(), REFERENCES, [figure], PAPER)
    assert paths == [tmp_path / "report" / name for name in ("results.json", "leaderboard.md", "index.html",
                                                             "figures/c1-mlp.png")]
    return tmp_path / "report"


def test_results_json_has_metadata_references_and_every_row(report, frame):
    text = (report / "results.json").read_text()
    document = json.loads(text)
    assert sorted(document) == ["experiments", "format_version", "metadata", "references", "results"]
    assert document["format_version"] == 2
    cited = {source["path"]: source for sources in frame["sources"] if isinstance(sources, list) for source in sources}
    assert document["experiments"] == sorted(({k: s[k] for k in ("label", "path", "elapsed_s")} for s in cited.values()),
                                             key=lambda e: e["label"])
    assert cited and all(isinstance(e["elapsed_s"], float) for e in document["experiments"])
    assert document["metadata"] == metadata() and document["references"] == REFERENCES
    assert [(r["case"], r["metric"], r["verdict"]) for r in document["results"]] == list(
        zip(frame["case"], frame["metric"], frame["verdict"]))
    failed = document["results"][-1]
    assert (failed["case"], failed["gap"], failed["alpha_a"]) == ("zzz/mnist1d", None, None)
    assert "NaN" not in text
    assert all("sources" not in row for row in document["results"])


def test_the_html_page_is_self_contained(report):
    page = (report / "index.html").read_text()
    for outside in ('src="http', "<link", "<script src"):
        assert outside not in page
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode("ascii")}"' in page
    assert "<figcaption>c1-mlp.png</figcaption>" in page


def test_the_html_page_shows_every_case_verdict_and_the_papers_expectations(report, frame):
    page = (report / "index.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    for case, metric, verdict in zip(frame["case"], frame["metric"], frame["verdict"]):
        css = verdict.replace(" ", "-")
        assert any(f"<td>{case}</td><td>{metric}</td>" in row and f'<td class="{css}">{verdict}</td>' in row
                   for row in rows)
    assert "<h2>The paper's expectations</h2>" in page
    assert "<td>C1</td><td>holds</td><td>Fig. 2 (left)</td><td>MNIST-1D</td>" in page


def test_no_paper_section_without_expectations(tmp_path, frame):
    write_report(tmp_path, frame, metadata())
    assert "expectations" not in (tmp_path / "index.html").read_text()


def test_leaderboard_md_has_title_description_note_and_table(report, frame):
    text = (report / "leaderboard.md").read_text()
    assert text == "\n\n".join(["# ntkbench leaderboard (tier: smoke)", describe(metadata()),
                                references_note(REFERENCES), format_leaderboard(frame)]) + "\n"
    assert describe(metadata()) == ("cpu ×1 (cpu), Test CPU; jax 0.10.2, neural-tangents 0.6.5; "
                                    "commit 0123456789ab; 2025-01-02T03:04:05+00:00")


@pytest.mark.parametrize("where", ["directory", "json"])
def test_load_results_round_trips_the_frame(report, frame, where):
    loaded = load_results(report if where == "directory" else report / "results.json")
    expected = frame.drop(columns=["sources"])
    assert sorted(loaded.columns) == sorted(expected.columns)
    pd.testing.assert_frame_equal(loaded[expected.columns], expected)
    assert loaded.attrs == {"metadata": metadata(), "references": REFERENCES}


@pytest.mark.parametrize("content", ["not json at all", '{"metadata": {}}', "[1, 2]"],
                         ids=["text", "no-results", "list"])
def test_load_results_of_another_file_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        load_results(path)
    assert str(info.value).startswith(f"{path}: not an ntkbench results file (")
    assert "\n" not in str(info.value)


def test_load_results_of_a_directory_without_results_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'results.json'}: not an ntkbench results file")):
        load_results(tmp_path)


def test_an_unwritable_report_directory_is_a_one_line_report_error(tmp_path, frame):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    directory = blocker / "report"
    with pytest.raises(ReportError) as info:
        check_writable(directory)
    assert str(info.value) == f"cannot write the report to {directory}: Not a directory"
    with pytest.raises(ReportError, match="cannot write the report to"):
        write_report(directory, frame, metadata())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("kinds, across", [(["gpu"], True), (["cpu", "gpu"], False), ([], False)])
def test_references_note_says_across_device_kinds_only_then(kinds, across):
    note = references_note({"path": "reference_results/smoke-x.csv", "device_kind": "cpu", "device_kinds": kinds})
    assert note.startswith("Compared with reference_results/smoke-x.csv")
    assert ("across device kinds: this run on cpu, references from gpu" in note) is across


@pytest.mark.parametrize("references", [None, {}, {"path": "", "device_kind": "cpu", "device_kinds": ["gpu"]}])
def test_references_note_is_empty_without_a_table(references):
    assert references_note(references) == ""


def test_rows_link_to_their_figure_copied_next_to_the_report(tmp_path):
    from ntkbench.plots import scaling_figure_name

    rows = standard_rows()
    rows[0]["source_paths"] = ["/cache/nn-0123456789.json"]  # mlp/test_mse cites an experiment
    plots = tmp_path / "plots" / "smoke"  # drawn elsewhere than the report
    plots.mkdir(parents=True)
    figures = [plots / scaling_figure_name("mlp/mnist1d", "test_mse"), plots / "scaling-other-test_mse.png"]
    for figure in figures:
        figure.write_bytes(PNG + figure.name.encode())
    report = tmp_path / "report"
    (report / "figures").mkdir(parents=True)
    (report / "figures" / "scaling-stale-test_mse.png").write_bytes(PNG)
    paths = write_report(report, leaderboard_frame(rows), metadata(), figures=figures)
    assert paths[3:] == [report / "figures" / f.name for f in figures]
    assert sorted(p.name for p in (report / "figures").iterdir()) == sorted(f.name for f in figures)
    page = (report / "index.html").read_text()
    links = {(case, metric): re.findall(r'<a href="([^"]*)">', cells)  # the leaderboard's rows
             for case, metric, cells in re.findall(r"<tr><td>C1</td><td>(\w+/mnist1d)</td><td>(\w+)</td>(.*?)</tr>", page)}
    assert links == {("mlp/mnist1d", "test_mse"): ["figures/scaling-mlp_mnist1d-test_mse.png"],
                     ("mlp/mnist1d", "test_error"): [], ("cnn1d/mnist1d", "test_mse"): [],
                     ("zzz/mnist1d", "test_mse"): []}
    (href,) = links["mlp/mnist1d", "test_mse"]
    assert (report / href).read_bytes() == figures[0].read_bytes()
    assert "<th>figure</th>" in page

    write_report(report, leaderboard_frame(rows), metadata())  # no figures this time: no links, no copies
    assert not list((report / "figures").iterdir())
    assert "<th>figure</th>" not in (report / "index.html").read_text()


def test_html_table_escapes_link_text_and_address():
    from ntkbench.outputs import Link, html_table

    table = html_table([{"figure": [Link("a<b", 'x".png?a=1&b=2')], "text": "<i>"}])
    assert '<td><a href="x&quot;.png?a=1&amp;b=2">a&lt;b</a></td><td>&lt;i&gt;</td>' in table
