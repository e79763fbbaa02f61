"""The code tables of the profile-free path: LOINC -> VSTESTCD / LBTESTCD, units and their exact
conversions, and the FHIR code -> CDISC submission value tables (sex, race, ethnicity, AE terms).

The LB table is the data file `lb_loinc.csv` beside this module (read once, at import, from the
package: no user file is read here). Everything is documented in docs/foreign-fhir.md.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from importlib import resources
from typing import Final, NamedTuple


class TestCode(NamedTuple):
    testcd: str
    test: str
    category: str
    specimen: str


VS_LOINC: Final[dict[str, TestCode]] = {
    "8302-2": TestCode("HEIGHT", "Height", "", ""),
    "8306-3": TestCode("HEIGHT", "Height", "", ""),
    "29463-7": TestCode("WEIGHT", "Weight", "", ""),
    "3141-9": TestCode("WEIGHT", "Weight", "", ""),
    "39156-5": TestCode("BMI", "Body Mass Index", "", ""),
    "8480-6": TestCode("SYSBP", "Systolic Blood Pressure", "", ""),
    "8462-4": TestCode("DIABP", "Diastolic Blood Pressure", "", ""),
    "8867-4": TestCode("HR", "Heart Rate", "", ""),
    "9279-1": TestCode("RESP", "Respiratory Rate", "", ""),
    "8310-5": TestCode("TEMP", "Temperature", "", ""),
    "8331-1": TestCode("TEMP", "Temperature", "", ""),
    "2708-6": TestCode("OXYSAT", "Oxygen Saturation", "", ""),
    "59408-5": TestCode("OXYSAT", "Oxygen Saturation", "", ""),
    "9843-4": TestCode("HDCIRC", "Head Circumference", "", ""),
}
"""Vital-sign LOINC -> VSTESTCD / VSTEST (CDISC CT submission values)."""

VS_PANELS: Final = frozenset({"85353-1", "85354-9", "55284-4", "35094-2"})
"""Vital-sign panels: each `component` becomes a row (the panel itself is no test)."""


def _load_lb_table() -> dict[str, TestCode]:
    text = resources.files("mappings.foreign").joinpath("lb_loinc.csv").read_text(encoding="utf-8")
    table: dict[str, TestCode] = {}
    for row in csv.DictReader(io.StringIO(text)):
        table[row["LOINC"]] = TestCode(row["LBTESTCD"], row["LBTEST"], row["LBCAT"], row["LBSPEC"])
    return table


LB_LOINC: Final[dict[str, TestCode]] = _load_lb_table()
"""Laboratory LOINC -> LBTESTCD / LBTEST / LBCAT / LBSPEC (the data file lb_loinc.csv)."""


def fallback_testcd(loinc: str) -> str:
    """The --TESTCD of a LOINC not in the tables: `L` + the LOINC code without its hyphen (`2339-0` ->
    `L23390`): at most 8 characters, starts with a letter, and the LOINC is recoverable from it."""
    return "L" + loinc.replace("-", "")


# --- units -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """`standard = value * factor + offset` (exact decimals, except a factor given as a fraction)."""

    unit: str
    factor: Decimal = Decimal(1)
    divisor: Decimal = Decimal(1)
    offset: Decimal = Decimal(0)

    @property
    def identity(self) -> bool:
        return self.factor == 1 and self.divisor == 1 and self.offset == 0


_LENGTH_CM: Final = {
    "cm": Conversion("cm"),
    "m": Conversion("cm", Decimal(100)),
    "mm": Conversion("cm", Decimal(1), Decimal(10)),
    "[in_i]": Conversion("cm", Decimal("2.54")),
    "in": Conversion("cm", Decimal("2.54")),
    "[ft_i]": Conversion("cm", Decimal("30.48")),
}
_MASS_KG: Final = {
    "kg": Conversion("kg"),
    "g": Conversion("kg", Decimal(1), Decimal(1000)),
    "[lb_av]": Conversion("kg", Decimal("0.45359237")),
    "lb": Conversion("kg", Decimal("0.45359237")),
    "lbs": Conversion("kg", Decimal("0.45359237")),
}
_BEATS: Final = {
    u: Conversion("beats/min") for u in ("/min", "{beats}/min", "{Beats}/min", "beats/min", "bpm")
}
_BREATHS: Final = {u: Conversion("breaths/min") for u in ("/min", "{breaths}/min", "breaths/min")}

VS_UNITS: Final[dict[str, dict[str, Conversion]]] = {
    "HEIGHT": _LENGTH_CM,
    "HDCIRC": _LENGTH_CM,
    "WEIGHT": _MASS_KG,
    "BMI": {"kg/m2": Conversion("kg/m2"), "kg/m^2": Conversion("kg/m2")},
    "SYSBP": {"mm[Hg]": Conversion("mmHg"), "mmHg": Conversion("mmHg")},
    "DIABP": {"mm[Hg]": Conversion("mmHg"), "mmHg": Conversion("mmHg")},
    "HR": _BEATS,
    "PULSE": _BEATS,
    "RESP": _BREATHS,
    "TEMP": {
        "Cel": Conversion("C"),
        "C": Conversion("C"),
        "[degF]": Conversion("C", Decimal(5), Decimal(9), Decimal(-160) / Decimal(9)),
        "degF": Conversion("C", Decimal(5), Decimal(9), Decimal(-160) / Decimal(9)),
    },
    "OXYSAT": {"%": Conversion("%")},
}
"""Per VSTESTCD: the written unit (UCUM code, else the unit text) -> its CDISC standard unit."""

LB_UNITS: Final[dict[str, Conversion]] = {
    "g/dL": Conversion("g/L", Decimal(10)),
    "10*3/uL": Conversion("10^9/L"),
    "10^3/uL": Conversion("10^9/L"),
    "10*6/uL": Conversion("10^12/L"),
    "10^6/uL": Conversion("10^12/L"),
    "mL/min/{1.73_m2}": Conversion("mL/min/1.73m2"),
    "s": Conversion("sec"),
    "{INR}": Conversion(""),
    "{ratio}": Conversion(""),
}
"""Laboratory units converted or renamed (exact factors only). Any other unit is kept as written
(LBSTRESU = LBORRESU, LBSTRESN = LBORRES): molar conversions (mg/dL -> mmol/L) need a molar mass,
which is not exact, so none is made."""


def significant_digits(text: str) -> int:
    return max(1, len(Decimal(text).as_tuple().digits))


def convert(written: str, conversion: Conversion) -> str:
    """The standard value of `written`: exactly `written` when the conversion is the identity, else
    computed in decimal arithmetic and rounded half-even to the written value's number of significant
    digits, never rounding into the integer part (`150` lb -> `68.0`; `98.6` [degF] -> `37.0`;
    `70` [in_i] -> `178`)."""
    if conversion.identity:
        return written
    value = Decimal(written)
    exact = value * conversion.factor / conversion.divisor + conversion.offset
    if exact == 0:
        return "0"
    integer_digits = exact.adjusted() + 1 if exact.adjusted() >= 0 else 0
    digits = max(significant_digits(written), integer_digits)
    rounded = Context(prec=digits, rounding=ROUND_HALF_EVEN).plus(exact)
    exponent = min(0, rounded.adjusted() - digits + 1)
    return format(rounded.quantize(Decimal(1).scaleb(exponent)), "f")  # trailing zeros kept


def is_number(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


# --- DM ----------------------------------------------------------------------------------------------

SEX: Final = {"male": "M", "female": "F", "unknown": "U", "other": "U"}

US_CORE_RACE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"

RACE: Final = {
    "1002-5": "AMERICAN INDIAN OR ALASKA NATIVE",
    "2028-9": "ASIAN",
    "2054-5": "BLACK OR AFRICAN AMERICAN",
    "2076-8": "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER",
    "2106-3": "WHITE",
    "UNK": "UNKNOWN",
    "ASKU": "NOT REPORTED",
}
ETHNIC: Final = {
    "2135-2": "HISPANIC OR LATINO",
    "2186-5": "NOT HISPANIC OR LATINO",
    "UNK": "UNKNOWN",
    "ASKU": "NOT REPORTED",
}
COUNTRY: Final = {
    "US": "USA",
    "GB": "GBR",
    "CA": "CAN",
    "DE": "DEU",
    "FR": "FRA",
    "NL": "NLD",
    "BE": "BEL",
    "AU": "AUS",
    "NZ": "NZL",
    "IT": "ITA",
    "ES": "ESP",
    "CH": "CHE",
    "AT": "AUT",
    "SE": "SWE",
}
"""ISO 3166 alpha-2 -> alpha-3 (SDTM COUNTRY) for the countries met most; three letters stay as written."""

# --- events ------------------------------------------------------------------------------------------

AESER: Final = {"serious": "Y", "non-serious": "N"}
AESEV: Final = {"mild": "MILD", "moderate": "MODERATE", "severe": "SEVERE"}
AEOUT: Final = {
    "resolved": "RECOVERED/RESOLVED",
    "recovering": "RECOVERING/RESOLVING",
    "ongoing": "NOT RECOVERED/NOT RESOLVED",
    "resolvedwithsequelae": "RECOVERED/RESOLVED WITH SEQUELAE",
    "fatal": "FATAL",
    "unknown": "UNKNOWN",
}
CONDITION_AE_CATEGORIES: Final = frozenset({"adverse-event", "adverse event", "adverseevent"})
"""A Condition is an adverse event (AE, not MH) when a `category` coding's code or the category's text
is one of these (case-insensitive): R4 has no such code, so this is the adapter's explicit rule
(docs/foreign-fhir.md); a Condition an AdverseEvent names in `resultingCondition` is that event's."""
CONDITION_SEVERITY: Final = {
    "24484000": "SEVERE",
    "6736007": "MODERATE",
    "255604002": "MILD",
    "severe": "SEVERE",
    "moderate": "MODERATE",
    "mild": "MILD",
}
"""Condition.severity (SNOMED CT 24484000 / 6736007 / 255604002, or the word) -> AESEV."""
CONDITION_AEOUT: Final = {
    "resolved": "RECOVERED/RESOLVED",
    "active": "NOT RECOVERED/NOT RESOLVED",
    "recurrence": "NOT RECOVERED/NOT RESOLVED",
    "relapse": "NOT RECOVERED/NOT RESOLVED",
}
"""Condition.clinicalStatus -> AEOUT (inactive and remission say nothing about the outcome: empty)."""
NRIND: Final = {
    "H": "HIGH",
    "HH": "HIGH",
    "HU": "HIGH",
    ">": "HIGH",
    "L": "LOW",
    "LL": "LOW",
    "LU": "LOW",
    "<": "LOW",
    "N": "NORMAL",
    "A": "ABNORMAL",
    "AA": "ABNORMAL",
}
FREQUENCY: Final = {
    ("1", "1", "d"): "QD",
    ("2", "1", "d"): "BID",
    ("3", "1", "d"): "TID",
    ("4", "1", "d"): "QID",
    ("1", "1", "wk"): "QW",
    ("1", "1", "mo"): "QM",
    ("1", "1", "h"): "Q1H",
}
"""(frequency, period, periodUnit) of a Timing.repeat -> CDISC frequency."""

MEDICATION_SYSTEMS: Final = (
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://www.whocc.no/atc",
    "http://snomed.info/sct",
)
CONDITION_SYSTEMS: Final = (
    "http://snomed.info/sct",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-10",
)
