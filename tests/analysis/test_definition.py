"""The study definition file: read from JSON, every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.analysis import DefinitionError, load_definition, parse_definition

from .conftest import FIXTURE


def _raw() -> dict[str, object]:
    loaded = json.loads((FIXTURE / "study.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_fixture_definition_holds_the_study_constants() -> None:
    definition = load_definition(FIXTURE / "study.json")
    assert definition.arm_roles == {"IVIG": "ivig", "PBO": "placebo"}
    assert definition.scores["MSSUM"].higher_is_better
    assert definition.scores["NSSTOT"].higher_is_better
    assert not definition.scores["RASHGR"].higher_is_better
    assert definition.response_categories["MAJOR IMPROVEMENT"] == "major"
    assert definition.tests["E6"]["p_fibdiam_t"] == "paired_t"
    assert definition.published["E4"]["baseline_mean"].agrees_with(74.51) is True
    assert definition.published["E4"]["baseline_mean"].agrees_with(74.56) is False
    assert definition.published["E1"]["p_within_ivig"].agrees_with(0.0078) is True
    assert definition.published["E1"]["p_within_ivig"].agrees_with(0.018) is False
    narrower = definition.published["E6"]["capdiam_post_mean"]
    assert narrower.than == "capdiam_pre_mean"
    assert narrower.agrees_with(6.9, 9.5) is True
    assert narrower.agrees_with(9.9, 9.5) is False


def test_every_problem_is_reported_at_once() -> None:
    raw = _raw()
    raw["arms"] = {"IVIG": "ivig", "PBO": "dummy"}
    endpoints = raw["endpoints"]
    assert isinstance(endpoints, dict)
    endpoints["E1"]["tests"]["p_within_ivig"] = "sign_test"
    endpoints["E6"]["tests"]["p_extra"] = "paired_t"
    endpoints["E4"]["published"]["n"] = {"relation": "~", "value": 9}
    del endpoints["E5"]["scores"]["nsstot"]
    with pytest.raises(DefinitionError) as caught:
        parse_definition(raw, "edited.json")
    locations = {problem.variable for problem in caught.value.problems}
    assert {
        "arms.PBO",
        "endpoints.E1.tests.p_within_ivig",
        "endpoints.E6.tests.p_extra",
        "endpoints.E4.published.n.relation",
        "endpoints.E5.scores.nsstot",
    } <= locations
    assert "edited.json" in str(caught.value)


def test_an_unreadable_file_is_a_definition_error(tmp_path: Path) -> None:
    path = tmp_path / "study.json"
    path.write_text("{not json")
    with pytest.raises(DefinitionError, match=r"study\.json"):
        load_definition(path)
