"""The tabular side: SDTM-shaped domains, their rules, and the in-memory table every mapping reads or writes.

A cell is always the string exactly as written in the file ("" = missing). Numbers and dates are checked
against the grammar here but never converted on the way through, so `74.50` stays `74.50`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mappings.errors import Problem as Problem  # one Problem type; importable from here as before

COMMON = ("STUDYID", "DOMAIN")


@dataclass(frozen=True)
class DomainSpec:
    """The rules of one SDTM domain as the trial-export contract states them."""

    code: str
    title: str
    required: tuple[str, ...]
    """Required variables in their conventional SDTM order (STUDYID, DOMAIN, USUBJID included)."""
    optional: tuple[str, ...] = ()
    """Known optional variables (mapped to FHIR elements when present), conventional order."""
    numeric: frozenset[str] = frozenset()
    """Variables whose non-empty cells must be decimal numbers (FHIR/JSON decimal grammar)."""
    non_negative: frozenset[str] = frozenset()
    integer: frozenset[str] = frozenset()
    dates: frozenset[str] = frozenset()
    """ISO 8601 date/times, possibly partial."""
    seq: str | None = None
    """The --SEQ variable, unique per subject within the domain."""
    subject_level: bool = True
    sort_key: tuple[str, ...] = ()
    """The SDTM sort order rows are written back in (--SEQ compared as a number); empty for the
    study-level domains TS and TA, which come back in the order they were written."""

    @property
    def known(self) -> tuple[str, ...]:
        return self.required + tuple(v for v in self.optional if v not in self.required)


def _spec(
    code: str,
    title: str,
    required: str,
    optional: str = "",
    numeric: str = "",
    non_negative: str = "",
    integer: str = "",
    dates: str = "",
    seq: str | None = None,
    subject_level: bool = True,
    sort_key: str = "",
) -> DomainSpec:
    head = COMMON + (("USUBJID",) if subject_level else ())
    return DomainSpec(
        code=code,
        title=title,
        required=head + tuple(required.split()),
        optional=tuple(optional.split()),
        numeric=frozenset(numeric.split()),
        non_negative=frozenset(non_negative.split()),
        integer=frozenset(integer.split()),
        dates=frozenset(dates.split()),
        seq=seq,
        subject_level=subject_level,
        sort_key=tuple(sort_key.split()),
    )


DOMAINS: dict[str, DomainSpec] = {
    s.code: s
    for s in (
        _spec(
            "TS",
            "Trial Summary",
            "TSSEQ TSPARMCD TSPARM TSVAL",
            optional="TSGRPID TSVALNF TSVALCD TSVCDREF TSVCDVER",
            numeric="TSSEQ",
            integer="TSSEQ",
            subject_level=False,
            seq="TSSEQ",
        ),
        _spec(
            "TA",
            "Trial Arms",
            "ARMCD ARM TAETORD ETCD ELEMENT EPOCH",
            optional="TABRANCH TATRANS",
            numeric="TAETORD",
            integer="TAETORD",
            subject_level=False,
        ),
        _spec(
            "DM",
            "Demographics",
            "SUBJID SITEID AGE AGEU SEX ARMCD ARM ACTARMCD ACTARM RFSTDTC RFENDTC",
            optional="BRTHDTC RACE ETHNIC COUNTRY DMDTC",
            numeric="AGE",
            non_negative="AGE",
            dates="RFSTDTC RFENDTC BRTHDTC DMDTC",
            sort_key="USUBJID",
        ),
        _spec(
            "SE",
            "Subject Elements",
            "SESEQ ETCD ELEMENT EPOCH SESTDTC SEENDTC",
            optional="TAETORD SEUPDES",
            numeric="SESEQ TAETORD",
            integer="SESEQ TAETORD",
            dates="SESTDTC SEENDTC",
            seq="SESEQ",
            sort_key="USUBJID SESEQ",
        ),
        _spec(
            "VS",
            "Vital Signs",
            "VSSEQ VSTESTCD VSTEST VSORRES VSORRESU VSSTRESN VSSTRESU VSDTC",
            optional="VSSTRESC VSSTAT VSREASND VSPOS VSLOC VSBLFL VISITNUM VISIT EPOCH",
            numeric="VSSEQ VSSTRESN VISITNUM",
            integer="VSSEQ",
            dates="VSDTC",
            seq="VSSEQ",
            sort_key="USUBJID VSSEQ",
        ),
        _spec(
            "EX",
            "Exposure",
            "EXSEQ EXTRT EXDOSE EXDOSU EXDOSFRM EXROUTE EXSTDTC EXENDTC EPOCH",
            optional="EXDOSFRQ EXLOT EXADJ VISITNUM VISIT",
            numeric="EXSEQ EXDOSE VISITNUM",
            non_negative="EXDOSE",
            integer="EXSEQ",
            dates="EXSTDTC EXENDTC",
            seq="EXSEQ",
            sort_key="USUBJID EXSEQ",
        ),
        _spec(
            "CM",
            "Concomitant Medications",
            "CMSEQ CMTRT CMDOSE CMDOSU CMDOSFRQ CMROUTE CMSTDTC CMENDTC",
            optional="CMDECOD CMINDC CMCAT CMDOSFRM EPOCH",
            numeric="CMSEQ CMDOSE",
            non_negative="CMDOSE",
            integer="CMSEQ",
            dates="CMSTDTC CMENDTC",
            seq="CMSEQ",
            sort_key="USUBJID CMSEQ",
        ),
        _spec(
            "QS",
            "Questionnaires",
            "QSSEQ QSCAT QSTESTCD QSTEST QSORRES QSSTRESN QSDTC VISITNUM VISIT EPOCH",
            optional="QSSCAT QSSTRESC QSSTAT QSREASND QSBLFL QSEVAL",
            numeric="QSSEQ QSSTRESN VISITNUM",
            integer="QSSEQ",
            dates="QSDTC",
            seq="QSSEQ",
            sort_key="USUBJID QSSEQ",
        ),
        _spec(
            "RS",
            "Disease Response",
            "RSSEQ RSTESTCD RSTEST RSORRES RSDTC EPOCH",
            optional="RSCAT RSSTRESC RSEVAL VISITNUM VISIT",
            numeric="RSSEQ VISITNUM",
            integer="RSSEQ",
            dates="RSDTC",
            seq="RSSEQ",
            sort_key="USUBJID RSSEQ",
        ),
        _spec(
            "PR",
            "Procedures",
            "PRSEQ PRTRT PRLOC PRSTDTC PRREFID EPOCH",
            optional="PRLAT PRENDTC PRCAT VISITNUM VISIT",
            numeric="PRSEQ VISITNUM",
            integer="PRSEQ",
            dates="PRSTDTC PRENDTC",
            seq="PRSEQ",
            sort_key="USUBJID PRSEQ",
        ),
        _spec(
            "MI",
            "Microscopic Findings",
            "MISEQ MIREFID MITESTCD MITEST MIORRES MIORRESU MISTRESN MISTRESC MISPEC MILOC MIDTC EPOCH",
            optional="MISTRESU MISPCCND MILAT MIMETHOD VISITNUM VISIT",
            numeric="MISEQ MISTRESN VISITNUM",
            integer="MISEQ",
            dates="MIDTC",
            seq="MISEQ",
            sort_key="USUBJID MISEQ",
        ),
        _spec(
            "LB",
            "Laboratory Test Results",
            "LBSEQ LBTESTCD LBTEST LBCAT LBORRES LBORRESU LBSTRESC LBSTRESN LBSTRESU LBDTC",
            optional="LBSCAT LBLOINC LBORNRLO LBORNRHI LBNRIND LBSPEC LBMETHOD LBSTAT LBREASND "
            "LBBLFL LBFAST VISITNUM VISIT EPOCH",
            numeric="LBSEQ LBSTRESN VISITNUM",
            integer="LBSEQ",
            dates="LBDTC",
            seq="LBSEQ",
            sort_key="USUBJID LBSEQ",
        ),
        _spec(
            "AE",
            "Adverse Events",
            "AESEQ AETERM AEDECOD AESTDTC",
            optional="AESPID AECAT AEBODSYS AESER AESEV AEREL AEACN AEOUT AESCONG AESDISAB AESDTH "
            "AESHOSP AESLIFE AESMIE AEDTC AEENDTC EPOCH",
            numeric="AESEQ",
            integer="AESEQ",
            dates="AESTDTC AEENDTC AEDTC",
            seq="AESEQ",
            sort_key="USUBJID AESEQ",
        ),
        _spec(
            "MH",
            "Medical History",
            "MHSEQ MHTERM MHSTDTC",
            optional="MHDECOD MHCAT MHSCAT MHBODSYS MHPRESP MHOCCUR MHDTC MHENDTC MHENRF EPOCH",
            numeric="MHSEQ",
            integer="MHSEQ",
            dates="MHSTDTC MHENDTC MHDTC",
            seq="MHSEQ",
            sort_key="USUBJID MHSEQ",
        ),
    )
}
"""Every domain of the trial-export contract, keyed by its upper-case code."""


@dataclass
class Table:
    """One domain's rows exactly as written: `columns` in file order, every cell a string."""

    domain: str
    columns: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)

    @property
    def spec(self) -> DomainSpec:
        return DOMAINS[self.domain]

    @property
    def extra_columns(self) -> list[str]:
        """Columns the contract does not know: kept and carried through FHIR as extensions."""
        known = set(self.spec.known)
        return [c for c in self.columns if c not in known]


Trial = dict[str, Table]
"""A trial: domain code -> table. A folder may hold only some domains."""


# --- value grammar -----------------------------------------------------------------------------

DECIMAL_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
"""FHIR's decimal grammar (also JSON's number grammar): what a numeric cell must look like."""

ISO_DTC_RE = re.compile(
    r"(?P<year>[0-9]{4})"
    r"(?:-(?P<month>[0-9]{2})"
    r"(?:-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2})"
    r"(?::(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?)?)?)?)?)?"
)
"""ISO 8601 as SDTM writes it: left-truncated partial dates, optional time, no time zone."""


CONTROL_CHARACTER_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
"""A character FHIR strings cannot carry (below U+0020 except tab, line feed and carriage return):
NUL and the other C0 controls. A cell holding one is refused on the way in, whatever its column."""


def control_character_problem(text: str) -> str | None:
    """Why `text` cannot become a FHIR string (it holds a control character, named by code point), or
    None. The text itself is not repeated (it may be patient data)."""
    found = CONTROL_CHARACTER_RE.search(text)
    if found is None:
        return None
    return (
        f"holds the control character U+{ord(found.group()):04X} at position {found.start() + 1}, "
        "which FHIR strings cannot carry"
    )


def is_decimal(text: str) -> bool:
    return DECIMAL_RE.fullmatch(text) is not None


def check_dtc(text: str) -> str | None:
    """Return None when `text` is a valid (possibly partial) SDTM date/time, else the reason."""
    m = ISO_DTC_RE.fullmatch(text)
    if m is None:
        return f"{text!r} is not an ISO 8601 date/time (YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss])"
    year = int(m["year"])
    if year == 0:
        return f"{text!r}: year 0000 does not exist (FHIR dates start at year 0001)"
    if m["month"] is not None:
        month = int(m["month"])
        if not 1 <= month <= 12:
            return f"{text!r}: month {month} does not exist"
        if m["day"] is not None:
            import calendar

            day = int(m["day"])
            last = calendar.monthrange(year, month)[1]
            if not 1 <= day <= last:
                return f"{text!r}: day {day} does not exist in {year:04d}-{month:02d}"
    if m["hour"] is not None and int(m["hour"]) > 23:
        return f"{text!r}: hour out of range"
    if m["minute"] is not None and int(m["minute"]) > 59:
        return f"{text!r}: minute out of range"
    if m["second"] is not None and int(m["second"]) > 59:
        return f"{text!r}: second out of range"
    return None
