"""The reanalysis report: results.json, report.md, a self-contained report.html and the PNG figures.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and rendered to
Markdown and to HTML from the same blocks, so the two always say the same thing. The HTML has no
external assets: figures are embedded as base64 PNG, styles inline, every text escaped.
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from adapter.analysis import figures
from adapter.analysis.definition import PublishedFigure
from adapter.analysis.results import Cell, Dataset, EndpointResult, Results, Value

__all__ = ["build_figures", "write_outputs"]

#: Plain-language labels for the spec's value names (presentation only).
VALUE_LABELS: dict[str, str] = {
    "n_ivig": "Patients analysed, IVIG arm",
    "n_placebo": "Patients analysed, placebo arm",
    "change_mean_ivig": "Mean change from baseline, IVIG arm",
    "change_mean_placebo": "Mean change from baseline, placebo arm",
    "p_within_ivig": "P, change within IVIG arm",
    "p_within_placebo": "P, change within placebo arm",
    "p_between_mwu": "P, IVIG vs placebo (rank test)",
    "p_between_welch": "P, IVIG vs placebo (t-test)",
    "ivig_major": "IVIG courses: major improvement",
    "ivig_mild": "IVIG courses: mild improvement",
    "ivig_none": "IVIG courses: no change",
    "ivig_worse": "IVIG courses: worsening",
    "placebo_major": "Placebo courses: major improvement",
    "placebo_mild": "Placebo courses: mild improvement",
    "placebo_none": "Placebo courses: no change",
    "placebo_worse": "Placebo courses: worsening",
    "p_fisher_major": "P, major improvement IVIG vs placebo",
    "n": "Patients (or courses) analysed",
    "baseline_mean": "Mean strength score before",
    "end_mean": "Mean strength score after",
    "diff_mean_mssum": "Strength: mean (change on IVIG - change on placebo)",
    "p_mssum": "P, strength difference",
    "diff_mean_nsstot": "Symptoms: mean (change on IVIG - change on placebo)",
    "p_nsstot": "P, symptom difference",
    "fibdiam_pre_mean": "Fibre diameter before, mean",
    "fibdiam_post_mean": "Fibre diameter after, mean",
    "p_fibdiam_t": "P, fibre diameter",
    "capdens_pre_mean": "Capillary density before, mean",
    "capdens_post_mean": "Capillary density after, mean",
    "p_capdens_t": "P, capillary density",
    "capdiam_pre_mean": "Capillary diameter before, mean",
    "capdiam_post_mean": "Capillary diameter after, mean",
    "p_capdiam_t": "P, capillary diameter",
    "mac_resolved": "Patients whose capillary MAC deposits resolved",
    "prednisone_mean_mg_per_day": "Mean prednisone dose, mg/day",
    "n_ivig_arm": "Randomised to IVIG",
    "n_placebo_arm": "Randomised to placebo",
    "age_min": "Youngest, years",
    "age_max": "Oldest, years",
    "n_ivig_to_placebo": "Crossed over IVIG -> placebo",
    "n_placebo_to_ivig": "Crossed over placebo -> IVIG",
    "ivig_courses": "IVIG courses",
    "placebo_courses": "Placebo courses",
}

#: Labels that depend on the endpoint (E4's `n` counts courses, E6's `n` patients with biopsies).
ENDPOINT_LABELS: dict[tuple[str, str], str] = {
    ("E4", "n"): "IVIG courses with major improvement analysed",
    ("E5", "n"): "Crossover patients analysed (strength)",
    ("E6", "n"): "Patients with a biopsy before and after IVIG",
}

#: Labels for the extra values an endpoint reports beside the spec's names.
SUPPLEMENTARY_LABELS: dict[str, str] = {
    "baseline_mean_ivig": "mean baseline, IVIG arm",
    "baseline_mean_placebo": "mean baseline, placebo arm",
    "end_mean_ivig": "mean at end, IVIG arm",
    "end_mean_placebo": "mean at end, placebo arm",
    "change_sd_ivig": "SD of change, IVIG arm",
    "change_sd_placebo": "SD of change, placebo arm",
    "n_first_period_not_randomised_treatment": "patients whose first period was not their "
    "randomised treatment",
    "ivig_periods": "IVIG courses with a response",
    "placebo_periods": "placebo courses with a response",
    "change_mean": "mean change",
    "major_ivig_periods": "IVIG courses rated major improvement",
    "n_crossover": "patients who received both treatments",
    "n_mssum": "pairs for strength",
    "n_nsstot": "pairs for symptoms",
    "n_fibdiam": "pairs for fibre diameter",
    "n_capdens": "pairs for capillary density",
    "n_capdiam": "pairs for capillary diameter",
    "p_fibdiam_wilcoxon": "P fibre diameter, Wilcoxon",
    "p_capdens_wilcoxon": "P capillary density, Wilcoxon",
    "p_capdiam_wilcoxon": "P capillary diameter, Wilcoxon",
    "mac_present_before": "patients with capillary MAC before",
    "icam1_reduced": "ICAM-1 expression reduced",
    "icam1_graded_pairs": "ICAM-1 graded pairs",
    "mhc1_reduced": "MHC-I expression reduced",
    "mhc1_graded_pairs": "MHC-I graded pairs",
    "n": "patients analysed",
    "subject_mean_min": "lowest patient mean, mg/day",
    "subject_mean_max": "highest patient mean, mg/day",
    "age_mean": "mean age, years",
    "n_subjects": "patients in DM",
    "n_actarmcd_not_as_in_se": "patients whose DM.ACTARMCD differs from their SE periods",
}

#: Longer exclusion lists are summarised by reason in the report (results.json keeps them all).
_LIST_EXCLUSIONS_UP_TO = 30

#: The report's figures by file stem: how each is drawn, the endpoint it is shown under, its caption.
_FIGURES: dict[str, tuple[Callable[[Results], Figure], str, str]] = {
    "strength_trajectories": (
        figures.strength_trajectories,
        "E1",
        "Strength score of every patient at every visit",
    ),
    "change_by_arm": (
        figures.change_by_arm,
        "E2",
        "First-period change from baseline by randomised arm",
    ),
    "responder_bars": (figures.responder_bars, "E3", "Clinical response per treatment course"),
    "biopsy_pairs": (figures.biopsy_pairs, "E6", "Repeat biopsies before and after IVIG"),
}


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True)
class _Paragraph:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class _Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class _Bullets:
    items: list[str]


@dataclass(frozen=True)
class _Image:
    name: str
    caption: str
    png: bytes


_Block = _Heading | _Paragraph | _Table | _Bullets | _Image


def _format(name: str, value: Value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    if name.startswith("p_"):
        return "<0.001" if value < 0.001 else f"{value:.4f}"
    return f"{value:.2f}"


def _format_published(figure: PublishedFigure | None) -> str:
    if figure is None:
        return ""
    parts = []
    if figure.relation is not None and figure.value is not None:
        number = figure.value
        if figure.decimals is not None:
            shown = f"{number:.{figure.decimals}f}"
        elif float(number).is_integer():
            shown = f"{int(number)}"
        else:
            shown = f"{number:g}"
        parts.append(shown if figure.relation == "=" else f"{figure.relation} {shown}")
    elif figure.relation is not None and figure.than is not None:
        parts.append(f"{figure.relation} {VALUE_LABELS.get(figure.than, figure.than).lower()}")
    if figure.text:
        parts.append(figure.text)
    return " — ".join(parts)


def _agreement(flag: bool | None) -> str:
    return {True: "yes", False: "NO", None: ""}[flag]


def _endpoint_blocks(result: EndpointResult) -> list[_Block]:
    agreement = result.agreement()
    rows = []
    for name, value in result.values.items():
        rows.append(
            [
                ENDPOINT_LABELS.get((result.endpoint, name), VALUE_LABELS.get(name, name)),
                f"`{name}`",
                _format_published(result.published.get(name)),
                _format(name, value)
                if value is not None
                else f"n/a ({result.null_reasons.get(name, 'no data')})",
                result.methods.get(name, ""),
                _agreement(agreement.get(name)),
            ]
        )
    blocks: list[_Block] = [_Heading(2, f"{result.endpoint}. {result.title}")]
    if result.missing_inputs:
        blocks.append(
            _Paragraph(
                "Not computable from these data: the trial lacks "
                + "; ".join(result.missing_inputs)
                + ". Values below that could not be computed are n/a.",
                strong=True,
            )
        )
    blocks.append(
        _Table(["Measure", "Value name", "Published", "Reanalysis", "Method", "Consistent"], rows)
    )
    extra = {k: v for k, v in result.supplementary.items() if k not in result.values}
    if extra:
        items = []
        for name, extra_value in extra.items():
            shown = extra_value if isinstance(extra_value, str) else _format(name, extra_value)
            method = result.methods.get(name)
            label = SUPPLEMENTARY_LABELS.get(name, name)
            items.append(f"{label}: {shown}" + (f" ({method})" if method else ""))
        blocks.append(_Paragraph("Also computed: " + "; ".join(items) + "."))
    if result.excluded:
        count = len({e.usubjid for e in result.excluded})
        blocks.append(_Paragraph(f"Not in this endpoint ({count} patients), and why:"))
        exclusions = sorted(set(result.excluded))
        if len(exclusions) <= _LIST_EXCLUSIONS_UP_TO:
            blocks.append(_Bullets([f"{e.usubjid}: {e.reason}" for e in exclusions]))
        else:
            reasons = Counter(e.reason for e in exclusions)
            blocks.append(
                _Bullets(
                    [f"{reason} ({n})" for reason, n in sorted(reasons.items())]
                    + ["each patient and reason is listed in results.json"]
                )
            )
    return blocks


def _coverage_blocks(results: Results) -> list[_Block]:
    """What could and could not be checked: every endpoint, computable or what it lacks."""
    computable = results.computable
    blocks: list[_Block] = [_Heading(2, "What could be checked")]
    if not computable:
        blocks.append(
            _Paragraph(
                "No endpoint can be computed from these data: each lacks a domain, variable, "
                "test code or period it needs (listed below). Nothing was compared with the "
                "published figures.",
                strong=True,
            )
        )
    rows = [
        [
            key,
            "yes" if result.computable else "no",
            "; ".join(result.missing_inputs) if result.missing_inputs else "nothing",
        ]
        for key, result in sorted(results.endpoints.items())
    ]
    blocks.append(_Table(["Endpoint", "Computable", "Missing inputs"], rows))
    return blocks


def _demographics_table(dataset: Dataset | None) -> _Table | None:
    if dataset is None or not dataset.rows:
        return None

    def num(value: Cell, digits: int = 1) -> str:
        if not isinstance(value, int | float) or value != value:  # None (no data) or NaN
            return "n/a"
        return f"{value:.{digits}f}"

    rows = []
    for row in dataset.rows:
        rows.append(
            [
                str(row["group"]),
                str(row["n"]),
                f"{num(row['age_mean'])} ({num(row['age_sd'])})",
                f"{num(row['age_min'], 0)}-{num(row['age_max'], 0)}",
                f"{row['female']} / {row['male']}",
                num(row["weight_mean_kg"]),
            ]
        )
    return _Table(
        [
            "Group",
            "Patients",
            "Age, mean (SD)",
            "Age range",
            "Female / male",
            "Baseline weight, mean kg",
        ],
        rows,
    )


def build_figures(results: Results) -> dict[str, Figure]:
    """The report's figures by file stem (see `figures`), not yet saved."""
    return {name: draw(results) for name, (draw, _, _) in _FIGURES.items()}


def _blocks(results: Results, images: dict[str, bytes]) -> list[_Block]:
    definition = results.definition
    blocks: list[_Block] = [_Heading(1, f"Reanalysis: {results.title}")]
    if results.reconstructed:
        blocks.append(
            _Paragraph(
                "RECONSTRUCTED cohort / reanalysis. The patient-level data analysed here are a "
                "reconstruction made to agree with the published summary figures; they are not the "
                "trial's own patient data. Every P value below is a reanalysis of these data, shown "
                "beside the published figure.",
                strong=True,
            )
        )
    else:
        blocks.append(
            _Paragraph(
                "Reanalysis. Every P value below is computed from the data given, shown beside the "
                "published figure; the published tests were not stated.",
                strong=True,
            )
        )
    blocks.append(
        _Paragraph(f"Study: {definition.citation or results.study}. Data source: {results.source}.")
    )
    directions = "; ".join(
        f"{score.label} ({code}): {'higher' if score.higher_is_better else 'lower'} is better"
        + (f", maximum {score.maximum:g}" if score.maximum is not None else "")
        for code, score in definition.scores.items()
    )
    blocks.append(
        _Paragraph(
            "Reading the tables: 'Published' is the figure in the paper's abstract; 'Reanalysis' is "
            "computed here; 'Consistent' says whether the reanalysis satisfies the published "
            "figure. Changes are end of period minus baseline. Scores: "
            f"{directions}. Tests are two-sided; each P value names the test that produced it."
        )
    )
    blocks.append(_Heading(2, "At a glance"))
    glance = []
    for key in sorted(results.endpoints):
        summary = results.endpoints[key]
        flags = [f for f in summary.agreement().values() if f is not None]
        glance.append(
            [
                key,
                summary.title,
                f"{sum(flags)} of {len(flags)}" if flags else "none published",
                str(len({e.usubjid for e in summary.excluded})),
            ]
        )
    blocks.append(
        _Table(["Endpoint", "What", "Published figures matched", "Patients left out"], glance)
    )
    blocks.extend(_coverage_blocks(results))
    blocks.append(_Heading(2, "Cohort"))
    table = _demographics_table(results.datasets.get("demographics"))
    if table is not None:
        blocks.append(_Paragraph("Patients by randomised arm:"))
        blocks.append(table)
    order = ["E8", "E1", "E2", "E3", "E4", "E5", "E6", "E7"]
    for endpoint in order:
        if endpoint not in results.endpoints:
            continue
        body = _endpoint_blocks(results.endpoints[endpoint])
        if endpoint == "E8":
            body = body[1:]  # the cohort heading is already there
        blocks.extend(body)
        for name, (_, anchor, caption) in _FIGURES.items():
            if anchor == endpoint and name in images:
                blocks.append(_Image(name, caption, images[name]))
    blocks.extend(_method_blocks(results))
    return blocks


def _method_blocks(results: Results) -> list[_Block]:
    """How the numbers were made, in words (the full text is docs/analysis.md)."""
    return [
        _Heading(2, "How the reanalysis was done"),
        _Bullets(
            [
                "Treatment period: each subject element (SE) other than screening; its first dose is "
                "the earliest study-drug administration (EX) of that epoch.",
                "Baseline: the patient's last score dated on or before the period's first dose. End: "
                "the last score after the first dose and on or before the period's end date. "
                "Partial dates count from their first possible day; a time of day is compared only "
                "when both dates have one.",
                "Tests by default (the study definition may choose others; each P value names "
                "the test that produced it): within-arm and crossover changes, Wilcoxon "
                "signed-rank; between arms, Mann-Whitney U and Welch t-test; response "
                "proportions, Fisher exact. Exact P values where the data have no ties or zero "
                "differences, otherwise scipy's default method.",
                "Biopsies: before = the last biopsy before the first IVIG dose, after = the last "
                "biopsy after it; paired t-test on the per-patient values. With 5 pairs the exact "
                "Wilcoxon test cannot give P below 0.0625, so published P<0.04 and P<0.01 must come "
                "from a parametric test; the Wilcoxon value is shown beside it.",
                "Prednisone: per patient, total mg between the first and last study dates (both "
                "included) divided by the number of days; daily records count each day inside that "
                "window, single doses count if dated inside it; then the mean over patients.",
                "Patients without what an endpoint needs are left out of that endpoint only, and "
                "listed with the reason; a value the data cannot give is shown as n/a with why.",
            ]
        ),
    ]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _render_markdown(blocks: list[_Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, _Paragraph):
            out.append(f"**{block.text}**" if block.strong else block.text)
        elif isinstance(block, _Table):
            out.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            out.append("|" + "---|" * len(block.header))
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows)
        elif isinstance(block, _Bullets):
            out.extend(f"- {item}" for item in block.items)
        else:
            out.append(f"![{block.caption}](figures/{block.name}.png)")
        out.append("")
    return "\n".join(out)


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 70rem;
       margin: 2rem auto; padding: 0 1rem; color: #1d1d1d; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem;
  border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .92rem; }
th, td { border: 1px solid #ccc; padding: .3rem .55rem; text-align: left; vertical-align: top; }
th { background: #f2f4f7; }
code { font-size: .85rem; color: #555; }
.banner { background: #fff4d6; border: 2px solid #d9a400; padding: .7rem 1rem; font-weight: 600; }
figure { margin: 1rem 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; }
td.no { color: #b00020; font-weight: 600; } td.yes { color: #1b7f3b; }
"""


def _html_cell(text: str) -> str:
    escaped = html.escape(text)
    if escaped.startswith("`") and escaped.endswith("`"):
        return f"<code>{escaped[1:-1]}</code>"
    return escaped


def _render_html(blocks: list[_Block], title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
    ]
    for block in blocks:
        if isinstance(block, _Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, _Paragraph):
            css = ' class="banner"' if block.strong else ""
            out.append(f"<p{css}>{html.escape(block.text)}</p>")
        elif isinstance(block, _Table):
            out.append(
                "<table><thead><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
                + "</tr></thead><tbody>"
            )
            for row in block.rows:
                cells = []
                for cell in row:
                    css = {"yes": ' class="yes"', "NO": ' class="no"'}.get(cell, "")
                    cells.append(f"<td{css}>{_html_cell(cell)}</td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
        elif isinstance(block, _Bullets):
            out.append(
                "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>"
            )
        else:
            data = base64.b64encode(block.png).decode("ascii")
            out.append(
                f'<figure><img src="data:image/png;base64,{data}" '
                f'alt="{html.escape(block.caption)}">'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
            )
    out.extend(["</body>", "</html>", ""])
    return "\n".join(out)


def write_outputs(results: Results, out_dir: str | Path) -> list[Path]:
    """Write results.json, report.md, report.html, figures/*.png and datasets/*.csv; return paths.

    Everything written comes from `results`: nothing is recomputed from the trial."""
    root = Path(out_dir)
    (root / "figures").mkdir(parents=True, exist_ok=True)
    (root / "datasets").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    images: dict[str, bytes] = {}
    for name, figure in build_figures(results).items():
        images[name] = figures.png_bytes(figure)
        path = root / "figures" / f"{name}.png"
        path.write_bytes(images[name])
        written.append(path)
    for name, dataset in sorted(results.datasets.items()):
        path = root / "datasets" / f"{name}.csv"
        path.write_text(dataset.to_csv(), encoding="utf-8", newline="\n")
        written.append(path)
    blocks = _blocks(results, images)
    outputs = {
        "results.json": results.to_json(),
        "report.md": _render_markdown(blocks),
        "report.html": _render_html(blocks, f"Reanalysis: {results.title}"),
    }
    for filename, text in outputs.items():
        path = root / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
