"""What each endpoint needs from the trial, and what of it the trial lacks.

`missing_inputs(trial, definition, endpoint)` names every missing input of one endpoint at once: a domain
(`QS: no qs.csv`), a variable (`DM.ARMCD: variable missing`), a test code (`QS: no row with QSTESTCD
MSSUM`), a treatment or background medication, or a period (`SE: no treatment period`). An endpoint with
a missing input is not computed (its values are null, the reasons say why), and `analyze` exits 13
(adapter/cli/_common.py) when no endpoint can be computed. The checks read the same tables and
variables the endpoints read (endpoints.py, periods.py); nothing here reads files or logs patient data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from adapter.analysis.definition import ROLES, StudyDefinition
from mappings.sdtm import DOMAINS, Trial

__all__ = ["NEEDS", "missing_inputs"]


def _table(trial: Trial, code: str, columns: Iterable[str]) -> list[str]:
    """The domain and its variables an endpoint reads: what is absent."""
    table = trial.get(code)
    if table is None:
        title = DOMAINS[code].title if code in DOMAINS else code
        return [f"{code}: no {code.lower()}.csv ({title}) in the trial"]
    present = set(table.columns)
    return [f"{code}.{column}: variable missing" for column in columns if column not in present]


def _rows_with(trial: Trial, code: str, variable: str, wanted: Iterable[str]) -> list[str]:
    """One line per wanted value (compared without case or surrounding space) that no row has."""
    table = trial.get(code)
    if table is None or variable not in table.columns:
        return []  # already named by _table
    found = {row.get(variable, "").strip().upper() for row in table.rows}
    return [
        f"{code}: no row with {variable} {value}"
        for value in dict.fromkeys(wanted)
        if value.strip().upper() not in found
    ]


def _arms(trial: Trial, definition: StudyDefinition) -> list[str]:
    missing = _table(trial, "DM", ("USUBJID", "ARMCD"))
    if missing:
        return missing
    if not any(definition.role_of_arm(row.get("ARMCD", "")) for row in trial["DM"].rows):
        arms = ", ".join(sorted(definition.arm_roles))
        return [f"DM.ARMCD: no subject randomised to a study arm ({arms})"]
    return []


def _periods(
    trial: Trial, definition: StudyDefinition, crossover: bool = False, doses: bool = True
) -> list[str]:
    """SE treatment periods; with `doses`, the EX doses that date them (a period's baseline and end
    are placed around its first dose); with `crossover`, a subject who had a period of each
    treatment."""
    missing = _table(trial, "SE", ("USUBJID", "ETCD", "EPOCH", "SESTDTC", "SEENDTC"))
    if doses:
        missing += _table(trial, "EX", ("USUBJID", "EPOCH", "EXSTDTC"))
    if "SE" in trial and not any(m.startswith("SE.") for m in missing):
        roles: dict[str, set[str]] = {}
        for row in trial["SE"].rows:
            etcd = row.get("ETCD", "")
            role = definition.role_of_element(etcd)
            if role is not None and etcd not in definition.screening_elements:
                roles.setdefault(row.get("USUBJID", ""), set()).add(role)
        elements = ", ".join(sorted(definition.element_roles))
        if not roles:
            missing.append(f"SE: no treatment period (no row with ETCD {elements})")
        elif crossover and not any(r >= set(ROLES) for r in roles.values()):
            missing.append("SE: no subject with a period of each treatment (crossover)")
    dated = doses and "EX" in trial and "EX.EXSTDTC" not in " ".join(missing)
    if dated and not any(row.get("EXSTDTC", "") for row in trial["EX"].rows):
        missing.append("EX: no dated study-drug dose (EXSTDTC)")
    return missing


def _score(
    trial: Trial, definition: StudyDefinition, endpoint: str, slot: str = "score"
) -> list[str]:
    code = definition.score(endpoint, slot).code
    return _table(trial, "QS", ("USUBJID", "QSTESTCD", "QSDTC")) + _rows_with(
        trial, "QS", "QSTESTCD", [code]
    )


def _response(trial: Trial, definition: StudyDefinition) -> list[str]:
    return _table(trial, "RS", ("USUBJID", "RSTESTCD", "RSORRES", "EPOCH")) + _rows_with(
        trial, "RS", "RSTESTCD", [definition.response_testcd]
    )


def _e1_e2(endpoint: str) -> Callable[[Trial, StudyDefinition], list[str]]:
    return lambda t, d: _arms(t, d) + _periods(t, d) + _score(t, d, endpoint)


def _e6(trial: Trial, definition: StudyDefinition) -> list[str]:
    codes = [m.testcd for m in definition.biopsy_measures]
    return (
        _periods(trial, definition)
        + _table(trial, "MI", ("USUBJID", "MITESTCD", "MIDTC"))
        + _rows_with(trial, "MI", "MITESTCD", codes)
    )


def _e7(trial: Trial, definition: StudyDefinition) -> list[str]:
    return (
        _table(trial, "DM", ("USUBJID", "RFSTDTC", "RFENDTC"))
        + _table(trial, "CM", ("USUBJID", "CMTRT", "CMDOSE", "CMDOSFRQ", "CMSTDTC"))
        + _rows_with(trial, "CM", "CMTRT", [definition.background_cmtrt])
    )


NEEDS: dict[str, Callable[[Trial, StudyDefinition], list[str]]] = {
    "E1": _e1_e2("E1"),
    "E2": _e1_e2("E2"),
    "E3": lambda t, d: _arms(t, d) + _periods(t, d, doses=False) + _response(t, d),
    "E4": lambda t, d: _periods(t, d) + _score(t, d, "E4") + _response(t, d),
    "E5": lambda t, d: (
        _periods(t, d, crossover=True) + _score(t, d, "E5", "mssum") + _score(t, d, "E5", "nsstot")
    ),
    "E6": _e6,
    "E7": _e7,
    "E8": lambda t, d: _arms(t, d) + _table(t, "DM", ("AGE",)) + _periods(t, d, doses=False),
}
"""Endpoint -> what it reads, as a check giving the missing inputs (empty: everything is there)."""


def missing_inputs(trial: Trial, definition: StudyDefinition, endpoint: str) -> list[str]:
    """Every input `endpoint` needs that `trial` lacks (domain, variable, test code, treatment,
    period), each once, in the order the endpoint reads them."""
    return list(dict.fromkeys(NEEDS[endpoint](trial, definition)))
