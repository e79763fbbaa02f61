"""The study definition: every study constant the analysis needs, read from a JSON file beside the data.

Codes (arms, elements, epochs, score and finding test codes), score directions and maxima, response
categories, which test runs for which P value, and the published figures all live in the file; the code
holds only the value names the spec fixes (`p_within_ivig`, ...). `load_definition` reports every
problem in the file at once (`DefinitionError.problems`: the one `Problem` type, its `variable` the
JSON path of the element, such as `endpoints.E1.tests`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from mappings.errors import ExitCode, Problem, TrialfhirError

__all__ = [
    "TESTS_BY_KIND",
    "BiopsyMeasure",
    "DefinitionError",
    "Problem",
    "PublishedFigure",
    "Score",
    "StudyDefinition",
    "load_definition",
    "parse_definition",
]

Role = Literal["ivig", "placebo"]
ROLES: tuple[Role, Role] = ("ivig", "placebo")

#: Which tests may be chosen for which kind of comparison (the study definition picks one per P value).
TESTS_BY_KIND: dict[str, frozenset[str]] = {
    "paired": frozenset({"wilcoxon", "paired_t"}),
    "between": frozenset({"mannwhitneyu", "welch_t", "student_t"}),
    "table": frozenset({"fisher_exact", "chi2"}),
}

#: The P values of each endpoint (names fixed by the spec) and the kind of comparison behind each.
P_VALUE_KINDS: dict[str, dict[str, str]] = {
    "E1": {
        "p_within_ivig": "paired",
        "p_within_placebo": "paired",
        "p_between_mwu": "between",
        "p_between_welch": "between",
    },
    "E2": {
        "p_within_ivig": "paired",
        "p_within_placebo": "paired",
        "p_between_mwu": "between",
        "p_between_welch": "between",
    },
    "E3": {"p_fisher_major": "table"},
    "E4": {},
    "E5": {"p_mssum": "paired", "p_nsstot": "paired"},
    "E6": {"p_fibdiam_t": "paired", "p_capdens_t": "paired", "p_capdiam_t": "paired"},
    "E7": {},
    "E8": {},
}

_RELATIONS = frozenset({"<", "<=", "=", ">=", ">"})


class DefinitionError(TrialfhirError, ValueError):
    """The study definition file cannot be used; `problems` lists every reason at once."""

    code: ClassVar[str] = "bad_definition"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "; ".join(f"{p.variable}: {p.reason}" for p in problems)
        super().__init__(f"study definition {source}: {lines}")


@dataclass(frozen=True)
class Score:
    """A questionnaire/score code (QSTESTCD): its name, which direction is better, its maximum."""

    code: str
    label: str
    higher_is_better: bool
    maximum: float | None


@dataclass(frozen=True)
class BiopsyMeasure:
    """A numeric biopsy finding (MITESTCD) compared before vs after IVIG in E6."""

    key: str
    testcd: str
    label: str
    unit: str


@dataclass(frozen=True)
class PublishedFigure:
    """A published figure for one value: a relation to a number (`P<0.018`, `=74.5`), or to another
    value of the same endpoint (`fibdiam_post_mean > fibdiam_pre_mean`), and/or the paper's words."""

    relation: str | None
    value: float | None
    decimals: int | None
    text: str | None
    than: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, omitting what is not given."""
        out: dict[str, Any] = {}
        if self.relation is not None and self.value is not None:
            out["relation"] = self.relation
            out["value"] = int(self.value) if self.value.is_integer() else self.value
        elif self.relation is not None and self.than is not None:
            out["relation"] = self.relation
            out["than"] = self.than
        if self.decimals is not None:
            out["decimals"] = self.decimals
        if self.text is not None:
            out["text"] = self.text
        return out

    def agrees_with(
        self, computed: float | int | None, other: float | int | None = None
    ) -> bool | None:
        """Whether a reanalysis value satisfies the published relation (None if not checkable).

        `other` is the endpoint's value named by `than`, for a relation between two values.
        """
        target = self.value if self.than is None else other
        if computed is None or self.relation is None or target is None:
            return None
        left, right = float(computed), float(target)
        if self.relation == "=" and self.decimals is not None:
            return round(left, self.decimals) == round(right, self.decimals)
        checks = {
            "<": left < right,
            "<=": left <= right,
            "=": left == right,
            ">=": left >= right,
            ">": left > right,
        }
        return checks[self.relation]


@dataclass(frozen=True)
class StudyDefinition:
    """Everything study-specific the analysis reads: codes, scores, tests, published figures."""

    study_id: str
    title: str
    citation: str
    reconstructed_ts_parameters: tuple[str, ...]
    reconstructed_marker: str
    arm_roles: Mapping[str, Role]
    element_roles: Mapping[str, Role]
    role_labels: Mapping[Role, str]
    screening_elements: frozenset[str]
    treatment_epochs: tuple[str, ...]
    scores: Mapping[str, Score]
    response_testcd: str
    response_categories: Mapping[str, str]
    biopsy_measures: tuple[BiopsyMeasure, ...]
    mac_testcd: str
    mac_present: str
    mac_absent: str
    graded_findings: tuple[str, ...]
    grade_order: tuple[str, ...]
    background_cmtrt: str
    weight_testcd: str
    background_unit: str
    daily_frequencies: Mapping[str, float]
    single_dose_frequencies: frozenset[str]
    significance_level: float
    endpoint_titles: Mapping[str, str]
    endpoint_scores: Mapping[str, Mapping[str, str]]
    tests: Mapping[str, Mapping[str, str]]
    published: Mapping[str, Mapping[str, PublishedFigure]] = field(default_factory=dict)

    def role_of_arm(self, armcd: str) -> Role | None:
        """The treatment role (`ivig` / `placebo`) of a randomised arm code, or None."""
        return self.arm_roles.get(armcd)

    def role_of_element(self, etcd: str) -> Role | None:
        """The treatment role of an SE/TA element code, or None for screening and unknown elements."""
        return self.element_roles.get(etcd)

    def score(self, endpoint: str, slot: str = "score") -> Score:
        """The score an endpoint analyses (`slot` names it when an endpoint has several)."""
        return self.scores[self.endpoint_scores[endpoint][slot]]


class _Reader:
    """Walks the raw JSON, collecting problems instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def fail(self, loc: str, msg: str) -> None:
        self.problems.append(Problem(self.source, None, loc, msg))

    def obj(self, raw: Any, loc: str) -> dict[str, Any]:
        if isinstance(raw, dict):
            return raw
        self.fail(loc, "expected an object")
        return {}

    def text(self, raw: Mapping[str, Any], key: str, loc: str, default: str | None = None) -> str:
        value = raw.get(key, default)
        if isinstance(value, str):
            return value
        self.fail(f"{loc}.{key}", "expected a string")
        return ""

    def texts(self, raw: Mapping[str, Any], key: str, loc: str) -> list[str]:
        value = raw.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        self.fail(f"{loc}.{key}", "expected a list of strings")
        return []

    def number(self, raw: Mapping[str, Any], key: str, loc: str) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{loc}.{key}", "expected a number or null")
            return None
        return float(value)


def _roles(reader: _Reader, raw: Any, loc: str) -> dict[str, Role]:
    out: dict[str, Role] = {}
    for code, role in reader.obj(raw, loc).items():
        if role not in ROLES:
            reader.fail(f"{loc}.{code}", f"role must be one of {list(ROLES)}, got {role!r}")
        else:
            out[code] = role
    if set(out.values()) != set(ROLES):
        reader.fail(loc, f"needs a code for each role {list(ROLES)}")
    return out


def _published(reader: _Reader, raw: Any, loc: str) -> dict[str, PublishedFigure]:
    figures: dict[str, PublishedFigure] = {}
    for name, spec in reader.obj(raw, loc).items():
        here = f"{loc}.{name}"
        entry = reader.obj(spec, here)
        relation = entry.get("relation")
        if relation is not None and relation not in _RELATIONS:
            reader.fail(f"{here}.relation", f"must be one of {sorted(_RELATIONS)}")
            relation = None
        value = reader.number(entry, "value", here)
        than = entry.get("than")
        if than is not None and not isinstance(than, str):
            reader.fail(f"{here}.than", "expected a value name")
            than = None
        if relation is not None and (value is None) == (than is None):
            reader.fail(f"{here}.value", "a relation needs a number (value) or a value name (than)")
        decimals = entry.get("decimals")
        if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int)):
            reader.fail(f"{here}.decimals", "expected an integer")
            decimals = None
        text = entry.get("text")
        if text is not None and not isinstance(text, str):
            reader.fail(f"{here}.text", "expected a string")
            text = None
        if relation is None and text is None:
            reader.fail(here, "needs a relation and value, or a text")
        figures[name] = PublishedFigure(relation, value, decimals, text, than)
    return figures


def parse_definition(raw: Any, source: str = "<definition>") -> StudyDefinition:
    """Build a StudyDefinition from parsed JSON, or raise DefinitionError listing every problem."""
    r = _Reader(source)
    top = r.obj(raw, "$")
    study = r.obj(top.get("study"), "study")
    marker = r.obj(top.get("reconstructed", {}), "reconstructed")
    treatments = r.obj(top.get("treatments"), "treatments")
    role_labels: dict[Role, str] = {}
    for role in ROLES:
        role_labels[role] = r.text(
            r.obj(treatments.get(role), f"treatments.{role}"), "label", f"treatments.{role}"
        )
    epochs = r.obj(top.get("epochs"), "epochs")
    scores_raw = r.obj(top.get("scores"), "scores")
    scores: dict[str, Score] = {}
    for code, spec in scores_raw.items():
        loc = f"scores.{code}"
        entry = r.obj(spec, loc)
        direction = entry.get("direction")
        if direction not in ("higher_better", "lower_better"):
            r.fail(f"{loc}.direction", "must be 'higher_better' or 'lower_better'")
        scores[code] = Score(
            code=code,
            label=r.text(entry, "label", loc),
            higher_is_better=direction == "higher_better",
            maximum=r.number(entry, "maximum", loc),
        )
    response = r.obj(top.get("response"), "response")
    categories = r.obj(response.get("categories"), "response.categories")
    allowed_categories = {"major", "mild", "none", "worse"}
    for term, category in categories.items():
        if category not in allowed_categories:
            r.fail(f"response.categories.{term}", f"must be one of {sorted(allowed_categories)}")
    biopsy = r.obj(top.get("biopsy"), "biopsy")
    measures: list[BiopsyMeasure] = []
    measures_raw = r.obj(biopsy.get("measures"), "biopsy.measures")
    for key in ("fibdiam", "capdens", "capdiam"):
        loc = f"biopsy.measures.{key}"
        entry = r.obj(measures_raw.get(key), loc)
        measures.append(
            BiopsyMeasure(
                key,
                r.text(entry, "testcd", loc),
                r.text(entry, "label", loc),
                r.text(entry, "unit", loc, ""),
            )
        )
    mac = r.obj(biopsy.get("mac"), "biopsy.mac")
    background = r.obj(top.get("background_medication"), "background_medication")
    daily_raw = r.obj(
        background.get("daily_frequencies"), "background_medication.daily_frequencies"
    )
    daily: dict[str, float] = {}
    for code in daily_raw:
        per_day = r.number(daily_raw, code, "background_medication.daily_frequencies")
        if per_day is not None:
            daily[code] = per_day
    endpoints_raw = r.obj(top.get("endpoints"), "endpoints")
    titles: dict[str, str] = {}
    endpoint_scores: dict[str, dict[str, str]] = {}
    tests: dict[str, dict[str, str]] = {}
    published: dict[str, dict[str, PublishedFigure]] = {}
    for endpoint, kinds in P_VALUE_KINDS.items():
        loc = f"endpoints.{endpoint}"
        entry = r.obj(endpoints_raw.get(endpoint), loc)
        titles[endpoint] = r.text(entry, "title", loc)
        endpoint_scores[endpoint] = {}
        for slot, code in r.obj(entry.get("scores", {}), f"{loc}.scores").items():
            if code not in scores:
                r.fail(f"{loc}.scores.{slot}", f"unknown score code {code!r}")
            endpoint_scores[endpoint][slot] = code
        chosen = r.obj(entry.get("tests", {}), f"{loc}.tests")
        tests[endpoint] = {}
        for name, kind in kinds.items():
            test = chosen.get(name)
            if test not in TESTS_BY_KIND[kind]:
                r.fail(f"{loc}.tests.{name}", f"must be one of {sorted(TESTS_BY_KIND[kind])}")
            else:
                tests[endpoint][name] = test
        for name in chosen:
            if name not in kinds:
                r.fail(f"{loc}.tests.{name}", "not a P value of this endpoint")
        published[endpoint] = _published(r, entry.get("published", {}), f"{loc}.published")
    for endpoint, slots in (
        ("E1", ("score",)),
        ("E2", ("score",)),
        ("E4", ("score",)),
        ("E5", ("mssum", "nsstot")),
    ):
        for slot in slots:
            if slot not in endpoint_scores.get(endpoint, {}):
                r.fail(f"endpoints.{endpoint}.scores.{slot}", "missing")
    alpha = r.number(top, "significance_level", "$")
    definition = StudyDefinition(
        study_id=r.text(study, "id", "study"),
        title=r.text(study, "title", "study"),
        citation=r.text(study, "citation", "study", ""),
        reconstructed_ts_parameters=tuple(r.texts(marker, "tsparmcd", "reconstructed"))
        if marker
        else (),
        reconstructed_marker=r.text(marker, "marker", "reconstructed", "RECONSTRUCTED"),
        arm_roles=_roles(r, top.get("arms"), "arms"),
        element_roles=_roles(r, top.get("elements"), "elements"),
        role_labels=role_labels,
        screening_elements=frozenset(r.texts(top, "screening_elements", "$")),
        treatment_epochs=tuple(r.texts(epochs, "treatment", "epochs")),
        scores=scores,
        response_testcd=r.text(response, "testcd", "response"),
        response_categories={k: v for k, v in categories.items() if isinstance(v, str)},
        biopsy_measures=tuple(measures),
        mac_testcd=r.text(mac, "testcd", "biopsy.mac"),
        mac_present=r.text(mac, "present", "biopsy.mac"),
        mac_absent=r.text(mac, "absent", "biopsy.mac"),
        graded_findings=tuple(r.texts(biopsy, "graded_findings", "biopsy")),
        grade_order=tuple(r.texts(biopsy, "grade_order", "biopsy")),
        background_cmtrt=r.text(background, "cmtrt", "background_medication"),
        weight_testcd=r.text(
            r.obj(top.get("vital_signs", {}), "vital_signs"),
            "weight_testcd",
            "vital_signs",
            "WEIGHT",
        ),
        background_unit=r.text(background, "unit", "background_medication"),
        daily_frequencies=daily,
        single_dose_frequencies=frozenset(
            r.texts(background, "single_dose_frequencies", "background_medication")
        ),
        significance_level=alpha if alpha is not None else 0.05,
        endpoint_titles=titles,
        endpoint_scores=endpoint_scores,
        tests=tests,
        published=published,
    )
    if r.problems:
        raise DefinitionError(source, r.problems)
    return definition


def load_definition(path: str | Path) -> StudyDefinition:
    """Read a study definition JSON file (see adapter/studies/dalakas1993/study.json)."""
    file = Path(path)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DefinitionError(str(file), [Problem(str(file), None, "$", str(exc))]) from exc
    return parse_definition(raw, str(file))
