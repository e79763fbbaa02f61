"""The report files, and that each figure shows the data it claims (artists counted before saving)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from adapter.analysis import StudyDefinition, analyze, write_outputs
from adapter.analysis import figures as report_figures
from adapter.analysis.periods import score_readings

from .test_endpoints import biopsy_trial, mini_trial


def _artists(figure: Figure | Axes, gid: str) -> list[Any]:
    """The artists of a figure (or one panel) tagged with `gid`."""
    return [a for a in figure.findobj() if a.get_gid() == gid]


@pytest.fixture(scope="module")
def mini_report(
    definition: StudyDefinition, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[Path]]:
    tables = mini_trial().trial()
    folder = tmp_path_factory.mktemp("mini_report")
    return folder, write_outputs(analyze(tables, definition, "mini"), folder)


def test_write_outputs_writes_every_file(
    definition: StudyDefinition, mini_report: tuple[Path, list[Path]]
) -> None:
    tmp_path, paths = mini_report
    results = analyze(mini_trial().trial(), definition, "mini")
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    assert {"results.json", "report.md", "report.html"} <= names
    assert {
        f"figures/{n}.png"
        for n in ("strength_trajectories", "change_by_arm", "responder_bars", "biopsy_pairs")
    } <= names
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text()) == results.to_dict()


def test_the_html_is_self_contained_with_embedded_figures(
    mini_report: tuple[Path, list[Path]],
) -> None:
    tmp_path, _ = mini_report
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG")
    assert not re.search(r'(src|href)="(https?:|//|[^"d#])', page)  # nothing fetched from outside


def test_the_report_shows_published_vs_reanalysis_with_methods(
    mini_report: tuple[Path, list[Path]],
) -> None:
    tmp_path, _ = mini_report
    markdown = (tmp_path / "report.md").read_text()
    assert "| P, change within IVIG arm | `p_within_ivig` | < 0.018" in markdown
    assert "wilcoxon signed-rank, exact" in markdown
    assert "RECONSTRUCTED" not in markdown  # this trial's TS does not say so


def test_the_reconstructed_label_is_shown_when_the_trial_summary_says_so(
    definition: StudyDefinition, tmp_path: Path
) -> None:
    trial = mini_trial().trial_summary("DATASRC", "RECONSTRUCTED from published aggregates")
    tables = trial.trial()
    write_outputs(analyze(tables, definition, "mini"), tmp_path)
    assert "RECONSTRUCTED cohort / reanalysis" in (tmp_path / "report.md").read_text()
    assert (
        'class="banner">RECONSTRUCTED cohort / reanalysis' in (tmp_path / "report.html").read_text()
    )


def test_free_text_is_escaped_in_the_html(definition: StudyDefinition, tmp_path: Path) -> None:
    trial = mini_trial()
    trial.subject("<script>alert(1)</script>", "IVIG")
    tables = trial.trial()
    write_outputs(analyze(tables, definition, "<b>source</b>"), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;source&lt;/b&gt;" in page


def test_the_spaghetti_figure_draws_one_line_per_subject_with_scores(
    definition: StudyDefinition,
) -> None:
    tables = mini_trial().trial()
    results = analyze(tables, definition, "mini")
    figure = report_figures.strength_trajectories(results)
    lines = _artists(figure, "subject")
    with_scores = score_readings(tables, "MSSUM")
    assert len(lines) == len(with_scores) == 9
    points = sum(len(line.get_xdata()) for line in lines)
    assert points == sum(len(r) for r in with_scores.values())
    panel_titles = [ax.get_title() for ax in figure.axes]
    assert "Randomised to IVIG (5 patients)" in panel_titles
    assert "Randomised to Placebo (4 patients)" in panel_titles


def test_the_change_figure_plots_each_subject_change(definition: StudyDefinition) -> None:
    results = analyze(mini_trial().trial(), definition, "mini")
    figure = report_figures.change_by_arm(results)
    strength_panel = figure.axes[0]
    plotted = sorted(
        float(y)
        for collection in _artists(strength_panel, "subject")
        for _, y in collection.get_offsets()
    )
    assert plotted == sorted([2.0, 4.0, 6.0, 8.0, 10.0, -1.0, 3.0, -5.0, 7.0])
    means = sorted(
        float(seg[0][1])
        for collection in _artists(strength_panel, "mean")
        for seg in collection.get_segments()
    )
    assert means == pytest.approx([1.0, 6.0])


def test_the_responder_bars_have_the_e3_counts(definition: StudyDefinition) -> None:
    results = analyze(mini_trial().trial(), definition, "mini")
    figure = report_figures.responder_bars(results)
    heights = [bar.get_height() for bar in _artists(figure, "bar")]
    values = results.endpoints["E3"].values
    expected = [
        values[f"{role}_{c}"]
        for role in ("ivig", "placebo")
        for c in ("major", "mild", "none", "worse")
    ]
    assert heights == expected


def test_the_biopsy_figure_draws_one_pair_per_patient(definition: StudyDefinition) -> None:
    results = analyze(biopsy_trial().trial(), definition, "biopsies")
    figure = report_figures.biopsy_pairs(results)
    fibre_panel = figure.axes[0]
    pairs = _artists(fibre_panel, "pair")
    assert len(pairs) == results.endpoints["E6"].values["n"] == 3
    ys = sorted(tuple(line.get_ydata()) for line in pairs)
    assert ys == [(38.0, 45.5), (40.0, 46.0), (42.0, 47.0)]


def test_long_exclusion_lists_are_summarised_by_reason(
    definition: StudyDefinition, tmp_path: Path
) -> None:
    trial = mini_trial()
    for i in range(40):
        trial.subject(f"Z{i:02d}", "PBO")
    tables = trial.trial()
    results = analyze(tables, definition, "many")
    write_outputs(results, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "- no treatment period in SE (41)" in markdown
    assert "- Z00: no treatment period in SE" not in markdown
    assert (
        len(json.loads((tmp_path / "results.json").read_text())["endpoints"]["E1"]["excluded"])
        == 41
    )


def test_outputs_are_byte_identical_on_a_rerun(
    definition: StudyDefinition, mini_report: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    first_dir, first_paths = mini_report
    tables = mini_trial().trial()
    second_paths = write_outputs(analyze(tables, definition, "mini"), tmp_path)
    assert [p.relative_to(tmp_path) for p in second_paths] == [
        p.relative_to(first_dir) for p in first_paths
    ]
    for path in first_paths:
        assert (tmp_path / path.relative_to(first_dir)).read_bytes() == path.read_bytes(), path.name
