"""TS and TA <-> ResearchStudy, the table layouts it carries, and the project CodeSystem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.fhir_files import dumps, loads
from mappings import study
from mappings.identity import SID_STUDY, study_id
from mappings.sdtm import Table, Trial
from mappings.terminology import (
    ARM_TYPE,
    EXT_ARM_CODE,
    EXT_ARM_ELEMENT,
    EXT_SDTM_TABLE,
    EXT_TRIAL_SUMMARY,
    ICD10CM,
    PROJECT_CODESYSTEM,
    PROJECT_CODESYSTEM_ID,
    PROJECT_CONCEPTS,
    SNOMED,
)
from mappings.trial import fhir_to_trial, trial_to_fhir

Validate = Callable[[dict[str, Any]], None]

TS_COLUMNS = ["STUDYID", "DOMAIN", "TSSEQ", "TSPARMCD", "TSPARM", "TSVAL", "TSVALCD", "SPONSORNOTE"]
TA_COLUMNS = ["STUDYID", "DOMAIN", "ARMCD", "ARM", "TAETORD", "ETCD", "ELEMENT", "TATRANS", "EPOCH"]


def table(domain: str, columns: list[str], rows: list[list[str]]) -> Table:
    return Table(domain, list(columns), [dict(zip(columns, row, strict=True)) for row in rows])


def example_trial() -> Trial:
    ts = table(
        "TS",
        TS_COLUMNS,
        [
            ["S-1", "TS", "1", "TITLE", "Trial Title", 'IVIG, "high-dose", in DM', "", ""],
            ["S-1", "TS", "2", "INDIC", "Trial Indication", "Dermatomyositis", "396230008", ""],
            ["S-1", "TS", "3", "AGEMIN", "Planned Minimum Age", "P18Y", "", "née, Zürich"],
            ["S-1", "TS", "10", "PLANSUB", "Planned Number of Subjects", "15", "", ""],
        ],
    )
    # written by element order, so the two arms interleave
    ta = table(
        "TA",
        TA_COLUMNS,
        [
            ["S-1", "TA", "IVIG", "Immune globulin", "1", "SCRN", "Screening", "", "SCREENING"],
            ["S-1", "TA", "PBO", "Placebo monthly", "1", "SCRN", "Screening", "", "SCREENING"],
            [
                "S-1",
                "TA",
                "IVIG",
                "Immune globulin",
                "2",
                "IVIG",
                "IVIG 2 g/kg",
                "cross",
                "TREATMENT 1",
            ],
            ["S-1", "TA", "PBO", "Placebo monthly", "2", "PBO", "Placebo", "cross", "TREATMENT 1"],
        ],
    )
    return {"TS": ts, "TA": ta}


def the_study(trial: Trial) -> dict[str, Any]:
    studies = [r for r in trial_to_fhir(trial) if r["resourceType"] == "ResearchStudy"]
    assert len(studies) == 1
    return studies[0]


def test_ts_and_ta_come_back_as_written() -> None:
    trial = example_trial()
    back = fhir_to_trial(trial_to_fhir(trial))
    assert set(back) == {"TS", "TA"}
    for domain in ("TS", "TA"):
        assert back[domain].columns == trial[domain].columns
        assert back[domain].rows == trial[domain].rows


def test_research_study_says_what_the_trial_is(validate: Validate) -> None:
    resource = the_study(example_trial())
    validate(resource)
    assert resource["id"] == study_id("S-1")
    assert resource["identifier"] == [{"system": SID_STUDY, "value": "S-1"}]
    assert resource["title"] == 'IVIG, "high-dose", in DM'
    assert resource["status"] == "completed"
    assert resource["primaryPurposeType"]["coding"][0]["code"] == "treatment"
    codings = {(c["system"], c["code"]) for c in resource["condition"][0]["coding"]}
    assert codings == {(SNOMED, "396230008"), (ICD10CM, "M33.12")}


def test_one_arm_per_armcd_with_its_type_and_code() -> None:
    arms = the_study(example_trial())["arm"]
    assert [a["name"] for a in arms] == ["Immune globulin", "Placebo monthly"]
    assert [a["type"]["coding"][0] for a in arms] == [
        {"system": ARM_TYPE, "code": "experimental", "display": "Experimental"},
        {"system": ARM_TYPE, "code": "placebo-comparator", "display": "Placebo Comparator"},
    ]
    codes = [[e["valueCode"] for e in a["extension"] if e["url"] == EXT_ARM_CODE] for a in arms]
    assert codes == [["IVIG"], ["PBO"]]
    elements = [[e for e in a["extension"] if e["url"] == EXT_ARM_ELEMENT] for a in arms]
    assert [len(e) for e in elements] == [2, 2]


def test_every_ts_row_rides_in_its_own_extension_in_order() -> None:
    resource = the_study(example_trial())
    summaries = [e for e in resource["extension"] if e["url"] == EXT_TRIAL_SUMMARY]
    parmcds = [
        next(p["valueString"] for p in e["extension"] if p["url"] == "TSPARMCD") for e in summaries
    ]
    assert parmcds == ["TITLE", "INDIC", "AGEMIN", "PLANSUB"]


def test_a_study_is_made_from_any_table_naming_a_studyid() -> None:
    dm = table("DM", ["STUDYID", "DOMAIN", "USUBJID"], [["S-9", "DM", "S-9-001"]])
    resource = the_study({"DM": dm})
    assert resource["identifier"][0]["value"] == "S-9"
    assert "arm" not in resource
    assert "title" not in resource


def test_layout_of_every_table_rides_on_the_study_even_without_rows() -> None:
    trial = example_trial()
    trial["VS"] = Table("VS", ["STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "MYCOL"], [])
    resource = the_study(trial)
    layouts = [e for e in resource["extension"] if e["url"] == EXT_SDTM_TABLE]
    assert [e["extension"][0]["valueCode"] for e in layouts] == ["TS", "TA", "VS"]
    back = study.StudyReader()
    assert back.feed(resource)
    assert back.columns["VS"] == ["STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "MYCOL"]


def test_ids_are_deterministic_and_differ_between_studies() -> None:
    first = the_study(example_trial())
    again = the_study(example_trial())
    assert first == again
    other = example_trial()
    for row in other["TS"].rows + other["TA"].rows:
        row["STUDYID"] = "S-2"
    assert the_study(other)["id"] != first["id"]


def test_codesystem_publishes_every_project_concept(validate: Validate) -> None:
    resource = study.codesystem()
    validate(resource)
    assert resource["id"] == PROJECT_CODESYSTEM_ID
    assert resource["url"] == PROJECT_CODESYSTEM
    assert (resource["status"], resource["content"], resource["caseSensitive"]) == (
        "active",
        "complete",
        True,
    )
    assert resource["version"]
    assert {c["code"]: c["display"] for c in resource["concept"]} == PROJECT_CONCEPTS
    assert resource["count"] == len(PROJECT_CONCEPTS)


def test_study_reader_takes_the_codesystem_and_leaves_foreign_resources() -> None:
    reader = study.StudyReader()
    assert reader.feed(study.codesystem())
    assert not reader.feed({"resourceType": "CodeSystem", "url": "http://example.org/cs"})
    assert not reader.feed({"resourceType": "Patient", "id": "x"})
    assert reader.rows() == {}


# --- properties ------------------------------------------------------------------------------------

TRICKY = st.sampled_from([",", '"', "'", "/", "%", "|", "\n", " ", "é", "ß", "µ", "中", "😀", "\\"])
TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), TRICKY
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() != "")
CELL = st.one_of(st.just(""), TEXT, st.sampled_from([" ", "  ", "\n", "\t "]))
INT_TEXT = st.integers(min_value=1, max_value=999).map(str)
EXTRA_NAME = st.from_regex(r"X[A-Z0-9]{1,7}", fullmatch=True)


@st.composite
def ts_ta_trials(draw: st.DrawFn) -> Trial:
    studyid = draw(TEXT)
    ts_extras = draw(st.lists(EXTRA_NAME, max_size=2, unique=True))
    ts_optional = draw(st.lists(st.sampled_from(["TSVALCD", "TSVCDREF", "TSGRPID"]), unique=True))
    ts_columns = ["STUDYID", "DOMAIN", "TSSEQ", "TSPARMCD", "TSPARM", "TSVAL"]
    ts_columns += draw(st.permutations(ts_optional + ts_extras))
    seqs = draw(st.lists(INT_TEXT, max_size=6, unique=True))
    ts_rows = []
    for seq in seqs:
        row = {"STUDYID": studyid, "DOMAIN": "TS", "TSSEQ": seq}
        row["TSPARMCD"] = draw(st.sampled_from(["TITLE", "INDIC", "AGEMIN", "PLANSUB", "TRT"]))
        row.update({c: draw(CELL) for c in ts_columns if c not in row})
        ts_rows.append({c: row[c] for c in ts_columns})
    ta_extras = draw(st.lists(EXTRA_NAME, max_size=2, unique=True))
    ta_columns = [
        "STUDYID",
        "DOMAIN",
        *draw(
            st.permutations(
                ["ARMCD", "ARM", "TAETORD", "ETCD", "ELEMENT", "EPOCH", "TATRANS", *ta_extras]
            )
        ),
    ]
    ta_rows = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        row = {"STUDYID": studyid, "DOMAIN": "TA"}
        row["ARMCD"] = draw(st.one_of(st.sampled_from(["IVIG", "PBO", "A  B"]), TEXT))
        row.update({c: draw(CELL) for c in ta_columns if c not in row})
        ta_rows.append({c: row[c] for c in ta_columns})
    return {"TS": Table("TS", ts_columns, ts_rows), "TA": Table("TA", ta_columns, ta_rows)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trial=ts_ta_trials())
def test_any_ts_and_ta_round_trip_exactly(trial: Trial, validate: Validate) -> None:
    resources = list(trial_to_fhir(trial))
    for resource in resources:
        validate(resource)
    # through the JSON wire format, as a file or a server would carry them
    back = fhir_to_trial(loads(dumps(resource)) for resource in resources)
    if not trial["TS"].rows and not trial["TA"].rows:
        # no row names a STUDYID: there is no study to carry the (empty) tables' layout
        assert back == {}
        return
    for domain in ("TS", "TA"):
        assert back[domain].columns == trial[domain].columns
        assert back[domain].rows == trial[domain].rows


def test_a_row_of_empty_cells_still_comes_back(validate: Validate) -> None:
    columns = ["STUDYID", "DOMAIN", "TSSEQ", "TSPARMCD", "TSPARM", "TSVAL"]
    ts = Table("TS", columns, [dict.fromkeys(columns, "") | {"STUDYID": "S", "DOMAIN": "TS"}])
    resources = list(trial_to_fhir({"TS": ts}))
    for resource in resources:
        validate(resource)
    assert fhir_to_trial(resources)["TS"].rows == ts.rows


def test_an_arm_is_a_placebo_comparator_when_it_starts_on_placebo() -> None:
    rows = [
        ["S", "TA", armcd, arm, "1", "E", "Element", "", "TREATMENT 1"]
        for armcd, arm in [
            ("IVIG-PBO", "IVIG, then placebo"),
            ("PBO-IVIG", "Placebo, then IVIG"),
            ("A", "placebo monthly"),
            ("B", "Immune globulin"),
        ]
    ]
    arms = the_study({"TA": table("TA", TA_COLUMNS, rows)})["arm"]
    types = {a["name"]: a["type"]["coding"][0]["code"] for a in arms}
    assert types == {
        "IVIG, then placebo": "experimental",
        "Placebo, then IVIG": "placebo-comparator",
        "placebo monthly": "placebo-comparator",
        "Immune globulin": "experimental",
    }


def test_a_research_study_of_someone_else_is_not_taken() -> None:
    foreign = {
        "resourceType": "ResearchStudy",
        "id": "other",
        "status": "active",
        "identifier": [{"system": "http://example.org/trials", "value": "NCT0"}],
    }
    assert not study.StudyReader().feed(foreign)
