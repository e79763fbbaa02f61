"""The report's figures, built as matplotlib Figure objects (Agg canvas, no pyplot state), from the
results alone: every series a figure plots is in `Results` (trajectories, datasets, values).

Each builder returns a Figure whose artists carry a `gid` naming what they draw ("subject", "mean",
"bar", "pair"), so a test can count what a figure shows before it is saved.
"""

from __future__ import annotations

import io

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adapter.analysis.definition import ROLES, Role
from adapter.analysis.endpoints import CATEGORIES
from adapter.analysis.results import Cell, Results

__all__ = [
    "TREATMENT_COLOURS",
    "biopsy_pairs",
    "change_by_arm",
    "png_bytes",
    "responder_bars",
    "strength_trajectories",
]

TREATMENT_COLOURS: dict[str, str] = {"ivig": "#1f5fa8", "placebo": "#e07b00", "off": "#9a9a9a"}
_CATEGORY_LABELS = {
    "major": "Major improvement",
    "mild": "Mild improvement",
    "none": "No change",
    "worse": "Worsening",
}


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return figure, axes


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes (no timestamp or software metadata, so reruns give the same file)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def p_label(p: object) -> str:
    """A P value as a clinician reads it: P=0.012, P<0.001, or P n/a."""
    if not isinstance(p, float):
        return "P n/a"
    return "P<0.001" if p < 0.001 else f"P={p:.3f}" if p < 0.1 else f"P={p:.2f}"


def _float(cell: Cell) -> float:
    """A numeric dataset cell as float (the datasets the figures plot hold numbers there)."""
    assert isinstance(cell, int | float), cell
    return float(cell)


def _empty(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="0.4")
    axes.set_xticks([])
    axes.set_yticks([])


def strength_trajectories(results: Results) -> Figure:
    """Each subject's strength score across visits and periods, one panel per randomised arm.

    x = days from the subject's first study-drug dose; one grey line per subject (gid "subject");
    each reading is coloured by the treatment period it falls in (after that period's first dose, on
    or before its end), grey when off treatment (screening / baseline).
    """
    definition = results.definition
    trajectories = results.trajectories
    score = definition.scores[trajectories.testcd]
    figure, axes = _figure(11, 4.6, ncols=2)
    if trajectories.missing is not None:
        for ax in axes:
            _empty(ax, f"not available: {trajectories.missing}")
        return figure
    drawn: dict[Role, int] = dict.fromkeys(ROLES, 0)
    # many patients: thinner, fainter marks so the cloud stays readable
    fade = min(1.0, max(0.15, 40 / max(1, trajectories.scored_subjects)))
    for panel, role in zip(axes, ROLES, strict=True):
        for subject in trajectories.subjects:
            if subject.arm != role:
                continue
            xs = [point.day for point in subject.points]
            ys = [point.value for point in subject.points]
            panel.plot(xs, ys, color="0.7", linewidth=fade, alpha=fade, zorder=1, gid="subject")
            colours = [TREATMENT_COLOURS[point.treatment or "off"] for point in subject.points]
            panel.scatter(xs, ys, c=colours, s=22 * fade, alpha=fade, zorder=2, gid="reading")
            drawn[role] += 1
        panel.axvline(0, color="0.3", linestyle=":", linewidth=1)
        panel.set_title(f"Randomised to {definition.role_labels[role]} ({drawn[role]} patients)")
        panel.set_xlabel("Days from first study-drug dose")
        panel.grid(alpha=0.3)
    direction = "higher = stronger" if score.higher_is_better else "lower = better"
    axes[0].set_ylabel(f"{score.label} ({score.code}; {direction})")
    handles = [
        axes[0].scatter([], [], c=TREATMENT_COLOURS[key], s=22, label=label)
        for key, label in (
            ("ivig", f"on {definition.role_labels['ivig']}"),
            ("placebo", f"on {definition.role_labels['placebo']}"),
            ("off", "baseline / off study drug"),
        )
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    figure.suptitle(f"{score.label}: every patient, every visit")
    return figure


def change_by_arm(results: Results) -> Figure:
    """First-period change from baseline of E1's and E2's scores, by randomised arm.

    One point per subject (gid "subject"), the arm mean as a bar (gid "mean"), zero as a dashed line.
    """
    definition = results.definition
    figure, axes = _figure(10, 4.4, ncols=2)
    for panel, endpoint in zip(axes, ("E1", "E2"), strict=True):
        data = results.datasets.get(f"{endpoint}_changes")
        score = definition.score(endpoint)
        if data is None or not data.rows:
            _empty(panel, "no changes to show")
            continue
        by_arm = {
            role: [_float(row["CHANGE"]) for row in data.rows if row["ARM_ROLE"] == role]
            for role in ROLES
        }
        for i, role in enumerate(ROLES):
            values = by_arm[role]
            offsets = [((j % 5) - 2) * 0.05 for j in range(len(values))]
            panel.scatter(
                [i + o for o in offsets],
                values,
                color=TREATMENT_COLOURS[role],
                s=30,
                zorder=3,
                gid="subject",
            )
            if values:
                mean = sum(values) / len(values)
                panel.hlines(mean, i - 0.25, i + 0.25, color="black", linewidth=2, gid="mean")
        panel.axhline(0, color="0.5", linestyle="--", linewidth=1)
        outcome = results.endpoints[endpoint]
        panel.set_xticks(
            range(len(ROLES)),
            [
                f"{definition.role_labels[r]} (n={len(by_arm[r])})\n"
                f"change within arm {p_label(outcome.values.get(f'p_within_{r}'))}"
                for r in ROLES
            ],
        )
        better = "higher" if score.higher_is_better else "lower"
        test = outcome.methods.get("p_between_mwu", "").split(",")[0]
        p_text = f"between arms ({test}) {p_label(outcome.values.get('p_between_mwu'))}"
        panel.set_title(f"{score.label}\n{p_text}")
        panel.set_ylabel(f"Change, end - baseline ({better} = better)")
        panel.grid(axis="y", alpha=0.3)
    figure.suptitle("First treatment period: change from baseline by randomised arm (bar = mean)")
    return figure


def responder_bars(results: Results) -> Figure:
    """Clinical response of every treatment period, by treatment received (gid "bar" per bar)."""
    definition = results.definition
    values = results.endpoints["E3"].values
    figure, (panel,) = _figure(8, 4.2)
    width = 0.38
    for j, role in enumerate(ROLES):
        counts = [values.get(f"{role}_{c}") or 0 for c in CATEGORIES]
        xs = [i + (j - 0.5) * width for i in range(len(CATEGORIES))]
        total = sum(int(c) for c in counts)
        bars = panel.bar(
            xs,
            counts,
            width,
            color=TREATMENT_COLOURS[role],
            label=f"{definition.role_labels[role]} ({total} courses)",
        )
        for bar in bars:
            bar.set_gid("bar")
        panel.bar_label(bars, padding=2)
    panel.set_xticks(range(len(CATEGORIES)), [_CATEGORY_LABELS[c] for c in CATEGORIES])
    panel.set_ylabel("Treatment courses")
    panel.legend(frameon=False)
    panel.grid(axis="y", alpha=0.3)
    panel.set_ylim(
        0, max([1.0, *[float(v or 0) for v in values.values() if isinstance(v, int)]]) * 1.2
    )
    test = results.endpoints["E3"].methods.get("p_fisher_major", "")
    panel.set_title(
        "Clinical response per treatment course (crossovers included)\n"
        f"major improvement, IVIG vs placebo: {test} {p_label(values.get('p_fisher_major'))}"
    )
    return figure


def biopsy_pairs(results: Results) -> Figure:
    """Each measured biopsy finding before vs after IVIG, one line per patient (gid "pair")."""
    definition = results.definition
    data = results.datasets.get("E6_biopsies")
    measures = definition.biopsy_measures
    figure, axes = _figure(3.6 * len(measures), 4.2, ncols=len(measures))
    for panel, measure in zip(axes, measures, strict=True):
        rows = [] if data is None else [r for r in data.rows if r["TESTCD"] == measure.testcd]
        if not rows:
            _empty(panel, "no paired biopsies")
            panel.set_title(measure.label)
            continue
        for pre, post in ((_float(r["PRE"]), _float(r["POST"])) for r in rows):
            panel.plot(
                [0, 1],
                [pre, post],
                marker="o",
                color=TREATMENT_COLOURS["ivig"],
                alpha=0.8,
                gid="pair",
            )
        p = results.endpoints["E6"].values.get(f"p_{measure.key}_t")
        test = results.endpoints["E6"].methods.get(f"p_{measure.key}_t", "").split(",")[0]
        p_text = f"{test} {p_label(p)}"
        panel.set_xticks([0, 1], ["Before IVIG", "After IVIG"])
        panel.set_xlim(-0.3, 1.3)
        panel.set_title(f"{measure.label}\n({len(rows)} patients, {p_text})")
        panel.set_ylabel(measure.unit)
        panel.grid(axis="y", alpha=0.3)
    figure.suptitle("Repeat muscle biopsies, paired by patient")
    return figure
