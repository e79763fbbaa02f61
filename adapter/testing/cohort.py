"""Reconstructed cohort of Dalakas et al., NEJM 1993 (IVIG in dermatomyositis), as SDTM-shaped tables.

RECONSTRUCTED from the published aggregates; not patient data. `generate(seed)` builds the 15-subject
fixture so that every published figure holds when computed as the study spec's endpoints define it
(`check` verifies this); `generate_scaled(n, seed)` builds the same shapes at benchmark size.
`python -m adapter.testing.cohort --out adapter/studies/dalakas1993 [--scale N] [--check]` writes the CSV folder.

`clinical_tables(tables, seed)` adds laboratory results, adverse events and medical history (LB, AE, MH)
for the subjects of any such tables (`generate_scaled(..., clinical=True)`, `--clinical`). They are
INVENTED for the tests and benchmarks (the paper reports no per-subject values for them), drawn from
their own random stream, so the other tables stay byte-identical with or without them; the shipped
cohort has none.

Scales (study definition): MSSUM = muscle-strength sum score, sum over 10 muscle groups of the mean of
the left and right Kendall 0-10 grades (0-100, half points, higher = better); NSSTOT = neuromuscular
symptom score, 20 items graded 0-3 (0-60, higher = better function); RASHGR = rash grade 0-4
(lower = better). EX: one row per infusion day, EXDOSE 1 g/kg (2 g/kg per monthly course over 2 days);
placebo rows EXDOSE 0 g/kg.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "COLUMNS",
    "STUDYID",
    "Tables",
    "check",
    "clinical_tables",
    "generate",
    "generate_scaled",
    "main",
    "write_csv_folder",
]

Row = dict[str, str]
Tables = dict[str, list[Row]]

STUDYID = "DALAKAS1993"
SCALED_STUDYID = "DALAKAS1993SC"
DATASRC = "RECONSTRUCTED from published aggregates; not patient data"

IVIG_TRT = "IMMUNE GLOBULIN INTRAVENOUS (HUMAN)"
ARMS = {"IVIG": "Immune globulin IV 2 g/kg monthly", "PBO": "Placebo monthly"}
ACTARMS = {
    "IVIG": "Immune globulin IV 2 g/kg monthly",
    "PBO": "Placebo monthly",
    "IVIG-PBO": "Immune globulin IV 2 g/kg monthly, then placebo",
    "PBO-IVIG": "Placebo monthly, then immune globulin IV 2 g/kg",
}
ELEMENTS = {"SCRN": "Screening", "IVIG": "Immune globulin IV 2 g/kg", "PBO": "Placebo"}
EPOCHS = ("TREATMENT 1", "TREATMENT 2")
MAJOR, MILD, NONE, WORSE = "MAJOR IMPROVEMENT", "MILD IMPROVEMENT", "NO CHANGE", "WORSENING"

#: Column order of every domain (SDTM order: identifiers, topic, qualifiers, timing).
# fmt: off
COLUMNS: dict[str, tuple[str, ...]] = {
    "TS": ("STUDYID", "DOMAIN", "TSSEQ", "TSPARMCD", "TSPARM", "TSVAL"),
    "TA": ("STUDYID", "DOMAIN", "ARMCD", "ARM", "TAETORD", "ETCD", "ELEMENT", "TATRANS", "EPOCH"),
    "DM": (
        "STUDYID", "DOMAIN", "USUBJID", "SUBJID", "RFSTDTC", "RFENDTC", "SITEID", "BRTHDTC",
        "AGE", "AGEU", "SEX", "ARMCD", "ARM", "ACTARMCD", "ACTARM", "COUNTRY",
    ),
    "SE": (
        "STUDYID", "DOMAIN", "USUBJID", "SESEQ", "ETCD", "ELEMENT", "EPOCH", "SESTDTC", "SEENDTC",
    ),
    "VS": (
        "STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "VSTESTCD", "VSTEST", "VSORRES", "VSORRESU",
        "VSSTRESN", "VSSTRESU", "VISITNUM", "VISIT", "EPOCH", "VSDTC",
    ),
    "EX": (
        "STUDYID", "DOMAIN", "USUBJID", "EXSEQ", "EXTRT", "EXDOSE", "EXDOSU", "EXDOSFRM",
        "EXROUTE", "EPOCH", "EXSTDTC", "EXENDTC",
    ),
    "CM": (
        "STUDYID", "DOMAIN", "USUBJID", "CMSEQ", "CMTRT", "CMDECOD", "CMINDC", "CMDOSE", "CMDOSU",
        "CMDOSFRQ", "CMROUTE", "CMSTDTC", "CMENDTC",
    ),
    "QS": (
        "STUDYID", "DOMAIN", "USUBJID", "QSSEQ", "QSTESTCD", "QSTEST", "QSCAT", "QSORRES",
        "QSSTRESN", "VISITNUM", "VISIT", "EPOCH", "QSDTC", "XXNOTE",
    ),
    "RS": ("STUDYID", "DOMAIN", "USUBJID", "RSSEQ", "RSTESTCD", "RSTEST", "RSORRES", "EPOCH", "RSDTC"),
    "PR": ("STUDYID", "DOMAIN", "USUBJID", "PRSEQ", "PRREFID", "PRTRT", "PRLOC", "EPOCH", "PRSTDTC"),
    "MI": (
        "STUDYID", "DOMAIN", "USUBJID", "MISEQ", "MIREFID", "MITESTCD", "MITEST", "MIORRES",
        "MIORRESU", "MISTRESC", "MISTRESN", "MISPEC", "MILOC", "EPOCH", "MIDTC",
    ),
    "LB": (
        "STUDYID", "DOMAIN", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBLOINC",
        "LBORRES", "LBORRESU", "LBORNRLO", "LBORNRHI", "LBSTRESC", "LBSTRESN", "LBSTRESU",
        "LBNRIND", "LBSTAT", "LBREASND", "LBSPEC", "LBMETHOD", "LBBLFL", "VISITNUM", "VISIT",
        "EPOCH", "LBDTC", "XXNOTE",
    ),
    "AE": (
        "STUDYID", "DOMAIN", "USUBJID", "AESEQ", "AESPID", "AETERM", "AEDECOD", "AEBODSYS",
        "AESEV", "AESER", "AEACN", "AEREL", "AEOUT", "EPOCH", "AESTDTC", "AEENDTC",
    ),
    "MH": (
        "STUDYID", "DOMAIN", "USUBJID", "MHSEQ", "MHTERM", "MHDECOD", "MHCAT", "MHENRF", "EPOCH",
        "MHDTC", "MHSTDTC", "MHENDTC", "XXNOTE",
    ),
}
# fmt: on
_SEQ = {d: f"{d}SEQ" for d in ("SE", "VS", "EX", "CM", "QS", "RS", "PR", "MI", "LB", "AE", "MH")}

QS_TESTS = {
    "MSSUM": ("Muscle Strength Sum Score", "MUSCLE STRENGTH"),
    "NSSTOT": ("Neuromuscular Symptom Score Total", "NEUROMUSCULAR SYMPTOMS"),
    "RASHGR": ("Rash Grade", "SKIN RASH"),
}
#: Per-muscle items (scaled cohort only): Kendall 0-10 grade, left and right.
# fmt: off
MUSCLE_GROUPS = (
    ("NF", "Neck Flexors"), ("DE", "Deltoid"), ("BI", "Biceps"), ("TR", "Triceps"),
    ("WE", "Wrist Extensors"), ("IP", "Iliopsoas"), ("GM", "Gluteus Medius"),
    ("QU", "Quadriceps"), ("HA", "Hamstrings"), ("AD", "Ankle Dorsiflexors"),
)
# fmt: on
MI_TESTS = {
    "FIBDIAM": ("Mean Muscle Fiber Diameter", "um"),
    "CAPDENS": ("Capillary Density", "/mm2"),
    "CAPDIAM": ("Mean Capillary Diameter", "um"),
    "MACCAP": ("Membrane Attack Complex on Capillaries", ""),
    "ICAM1": ("ICAM-1 Expression", ""),
    "MHC1": ("MHC Class I Expression", ""),
    "MICONCL": ("Pathologist Conclusion", ""),
}
GRADES = ("NONE", "FOCAL", "WIDESPREAD")
VISITS = ("SCREENING", "BASELINE", "MONTH 1", "MONTH 2", "MONTH 3", "MONTH 4", "MONTH 5", "MONTH 6")


class _AddRow(Protocol):
    def __call__(self, domain: str, **values: str) -> None: ...


# --------------------------------------------------------------------------------------------
# Subject plans


@dataclass
class Period:
    """One treatment period (SE element) as designed: what was given and where the scores end."""

    treatment: str  # IVIG or PBO
    response: str
    mssum_end: float
    nsstot_end: int
    rash_end: int
    offsets: tuple[int, int, int] = (28, 56, 84)  # course 2, course 3, end visit (days from start)


@dataclass
class Biopsy:
    """Findings of one muscle biopsy."""

    fibdiam: float
    capdens: int
    capdiam: float
    mac: str
    icam1: str
    mhc1: str
    conclusion: str


@dataclass
class Prednisone:
    """Background prednisone: dose, optional taper, hospital eMAR single doses."""

    dose: int
    taper_to: int | None = None
    switch: int = 0  # day index in the RFSTDTC..RFENDTC window at which the taper starts
    emar_infusion_days: bool = False
    start_before: int = 120  # days before first dose the current regimen began
    partial_start: bool = False
    tail: int = 30  # days the last row runs beyond RFENDTC
    daily_emar: bool = False  # scaled cohort: every in-window dose as a single-dose row


@dataclass
class Subject:
    """Everything needed to write one subject's rows."""

    subjid: str
    usubjid: str
    siteid: str
    arm: str
    sex: str
    age: int
    birth: dt.date
    birth_partial: bool
    weights: list[float]
    screen: dt.date
    first_dose: dt.date
    timed: bool
    mssum_screen: float
    mssum_base: float
    nsstot_screen: int
    nsstot_base: int
    rash_screen: int
    rash_base: int
    periods: list[Period]
    muscle: str
    biopsy_pre: Biopsy
    biopsy_post: Biopsy | None
    prednisone: Prednisone
    notes: dict[int, str] = field(default_factory=dict)  # VISITNUM -> XXNOTE
    items: bool = False
    mid_scores: dict[tuple[int, int], tuple[float, int, int]] = field(default_factory=dict)

    @property
    def actarm(self) -> str:
        return "-".join(p.treatment for p in self.periods)

    def period_starts(self) -> list[dt.date]:
        starts = [self.first_dose]
        for p in self.periods[:-1]:
            starts.append(starts[-1] + dt.timedelta(days=p.offsets[2]))
        return starts

    def period_end(self, index: int) -> dt.date:
        return self.period_starts()[index] + dt.timedelta(days=self.periods[index].offsets[2])

    @property
    def last_day(self) -> dt.date:
        return self.period_end(len(self.periods) - 1)


# --------------------------------------------------------------------------------------------
# The fixture's design: every endpoint-relevant value is chosen here, by hand, so the published
# figures hold by construction; the random generator only adds dates, weights, ages and noise.

# subject: randomised arm, (MSSUM screening, baseline), NSSTOT baseline, rash baseline,
#          periods as (treatment, response, MSSUM end, NSSTOT change, rash end)
# fmt: off
_DESIGN: tuple[tuple[str, float, int, int, tuple[tuple[str, str, float, int, int], ...]], ...] = (
    ("IVIG", 80.5, 31, 3, (("IVIG", MAJOR, 91.0, 9, 1),)),                             # 001 bx
    ("PBO", 71.0, 36, 2, (("PBO", MILD, 73.5, 2, 2),)),                                # 002
    ("IVIG", 68.0, 28, 3, (("IVIG", MAJOR, 76.5, 6, 2), ("PBO", WORSE, 69.5, -6, 3))),  # 003
    ("PBO", 80.0, 34, 2, (("PBO", WORSE, 76.0, -5, 3), ("IVIG", MAJOR, 89.5, 10, 1))),  # 004 bx
    ("IVIG", 78.0, 27, 4, (("IVIG", MAJOR, 90.5, 12, 2),)),                            # 005 bx
    ("PBO", 69.0, 33, 3, (("PBO", NONE, 69.5, 1, 3), ("IVIG", MAJOR, 79.0, 8, 1))),     # 006
    ("IVIG", 64.0, 25, 3, (("IVIG", NONE, 65.5, 3, 3), ("PBO", MILD, 67.5, 2, 2))),     # 007
    ("PBO", 75.5, 38, 2, (("PBO", WORSE, 69.0, -7, 3),)),                              # 008
    ("IVIG", 72.0, 30, 2, (("IVIG", MILD, 75.5, 5, 2),)),                              # 009
    ("IVIG", 70.5, 29, 3, (("IVIG", MAJOR, 78.0, 7, 2), ("PBO", WORSE, 73.0, -4, 3))),  # 010
    ("PBO", 84.5, 40, 2, (("PBO", WORSE, 79.0, -6, 3), ("IVIG", MAJOR, 90.0, 11, 1))),  # 011 bx
    ("IVIG", 82.5, 35, 3, (("IVIG", MAJOR, 92.5, 10, 1),)),                            # 012 bx
    ("PBO", 67.0, 32, 3, (("PBO", MILD, 70.0, 4, 2),)),                                # 013
    ("IVIG", 66.5, 26, 4, (("IVIG", MAJOR, 75.5, 8, 2), ("PBO", NONE, 75.0, -1, 2))),   # 014
    ("PBO", 62.0, 30, 3, (("PBO", NONE, 61.0, -3, 3), ("IVIG", MILD, 65.0, 5, 2))),     # 015
)
# fmt: on
_REPEAT_BIOPSY = {"001", "004", "005", "011", "012"}
_AGES = (41, 34, 55, 47, 29, 52, 38, 18, 44, 36, 50, 27, 45, 33, 40)
_SEXES = "FFMFFMFFMFFFMFM"
_TIMED = {"004", "009", "011"}  # EXSTDTC/EXENDTC carry times
_EMAR = {"002", "006", "011"}  # prednisone on infusion days recorded from the hospital eMAR
_PRED_DOSES = (20, 30, 15, 40, 25, 20, 35, 10, 30, 30, 25, 40, 20, 30, 30)
_PRED_TAPER = {"002": 10, "004": 5, "007": 5, "010": 5, "012": 10, "015": 5, "011": 5}
_FIRST_DOSE_FIXED = {"011": dt.date(1991, 4, 17)}
_PARTIAL_BIRTH = "007"
_PARTIAL_CM_START = "010"
_TRAP_CONCLUSION = 'Perifascicular atrophy, "marked"; fibre Ø reduced'
E7_TARGET = Fraction(25)


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _half(value: float) -> float:
    return math.floor(value * 2 + 0.5) / 2


def _iso(day: dt.date) -> str:
    return day.isoformat()


def _birth_for(age: int, on: dt.date, rng: random.Random) -> dt.date:
    """A birth date giving exactly `age` full years on `on`."""
    latest = dt.date(on.year - age, on.month, min(on.day, 28))
    return latest - dt.timedelta(days=rng.randint(20, 330))


def _age_on(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _pre_biopsy(rng: random.Random, mac: str, conclusion: str) -> Biopsy:
    return Biopsy(
        fibdiam=round(rng.uniform(36.0, 46.0), 1),
        capdens=rng.randint(150, 240),
        capdiam=round(rng.uniform(8.2, 10.2), 2),
        mac=mac,
        icam1=rng.choice(("FOCAL", "WIDESPREAD")),
        mhc1="WIDESPREAD",
        conclusion=conclusion,
    )


def _post_biopsy(pre: Biopsy, rng: random.Random) -> Biopsy:
    """Repeat biopsy after IVIG: fibres larger, capillaries more numerous and narrower, MAC gone."""
    return Biopsy(
        fibdiam=round(pre.fibdiam + rng.uniform(4.5, 8.5), 1),
        capdens=pre.capdens + rng.randint(60, 110),
        capdiam=round(pre.capdiam - rng.uniform(2.0, 3.4), 2),
        mac="ABSENT",
        icam1=GRADES[GRADES.index(pre.icam1) - 1],
        mhc1="FOCAL",
        conclusion="Fibre size near normal; capillary network restored; no MAC deposits on capillaries",
    )


_PRE_CONCLUSIONS = (
    "Perifascicular atrophy; perivascular inflammation; capillary depletion",
    "Perifascicular atrophy with endomysial capillary loss; consistent with dermatomyositis",
    "Perimysial inflammation, perifascicular atrophy; consistent with dermatomyositis",
)


def generate(seed: int = 1993) -> Tables:
    """The 15-subject reconstructed fixture; the same seed gives the same tables."""
    rng = random.Random(seed)
    subjects: list[Subject] = []
    enrol = dt.date(1990, 4, 2)
    for i, (arm, mss_base, nss_base, rash_base, design) in enumerate(_DESIGN):
        subjid = f"{i + 1:03d}"
        enrol += dt.timedelta(days=rng.randint(25, 45))
        enrol = first = _FIRST_DOSE_FIXED.get(subjid, enrol)
        periods = []
        nss = nss_base
        for treatment, response, mss_end, nss_change, rash_end in design:
            nss += nss_change
            offsets = (28 + rng.randint(-2, 2), 56 + rng.randint(-2, 2), 84 + rng.randint(-3, 3))
            periods.append(Period(treatment, response, mss_end, nss, rash_end, offsets))
        sex = _SEXES[i]
        birth = _birth_for(_AGES[i], first, rng)
        pre = _pre_biopsy(
            rng,
            "PRESENT" if subjid in _REPEAT_BIOPSY or rng.random() < 0.7 else "ABSENT",
            _TRAP_CONCLUSION if subjid == "003" else rng.choice(_PRE_CONCLUSIONS),
        )
        post = _post_biopsy(pre, rng) if subjid in _REPEAT_BIOPSY else None
        weight = rng.uniform(52.0, 78.0) if sex == "F" else rng.uniform(68.0, 94.0)
        weights = [round(weight * 4) / 4]
        if len(periods) == 2:
            weights.append(weights[0] + rng.choice((-1.5, -0.75, 0.5, 1.25)))
        pred = Prednisone(
            dose=_PRED_DOSES[i],
            taper_to=(_PRED_DOSES[i] - _PRED_TAPER[subjid]) if subjid in _PRED_TAPER else None,
            emar_infusion_days=subjid in _EMAR,
            start_before=rng.randint(60, 240),
            partial_start=subjid == _PARTIAL_CM_START,
            tail=rng.choice((0, 14, 30, 45)),
        )
        subjects.append(
            Subject(
                subjid=subjid,
                usubjid=f"{STUDYID}-01-{subjid}",
                siteid="01",
                arm=arm,
                sex=sex,
                age=_AGES[i],
                birth=birth,
                birth_partial=subjid == _PARTIAL_BIRTH,
                weights=weights,
                screen=first - dt.timedelta(days=rng.randint(14, 28)),
                first_dose=first,
                timed=subjid in _TIMED,
                mssum_screen=mss_base + rng.choice((-1.5, -1.0, 1.0, 1.5)),
                mssum_base=mss_base,
                nsstot_screen=nss_base + rng.choice((-2, -1, 1, 2)),
                nsstot_base=nss_base,
                rash_screen=rash_base,
                rash_base=rash_base,
                periods=periods,
                muscle="DELTOID" if rng.random() < 0.3 else "QUADRICEPS",
                biopsy_pre=pre,
                biopsy_post=post,
                prednisone=pred,
                notes={3: "Assessed by physical therapist, patient febrile (38.2 °C)"}
                if subjid == "008"
                else {},
            )
        )
    _tune_prednisone(subjects, rng)
    return _build_tables(subjects, STUDYID, len(subjects))


def _tune_prednisone(subjects: list[Subject], rng: random.Random) -> None:
    """Place each taper so that the E7 mean daily prednisone is 25.0 mg (to one decimal)."""

    def window(s: Subject) -> int:
        return (s.last_day - s.first_dose).days + 1

    def mean_of(s: Subject) -> Fraction:
        return _subject_prednisone_mean(s)

    tapering = [s for s in subjects if s.prednisone.taper_to is not None]
    for s in tapering:
        s.prednisone.switch = rng.randint(window(s) // 3, 2 * window(s) // 3)
    target_total = E7_TARGET * len(subjects)
    for s in tapering:
        others = sum((mean_of(o) for o in subjects if o is not s), Fraction(0))
        best = min(
            range(window(s) // 4, 3 * window(s) // 4 + 1),
            key=lambda k: (abs(_with_switch(s, k) + others - target_total), k),
        )
        s.prednisone.switch = best


def _with_switch(s: Subject, k: int) -> Fraction:
    old = s.prednisone.switch
    s.prednisone.switch = k
    try:
        return _subject_prednisone_mean(s)
    finally:
        s.prednisone.switch = old


def _subject_prednisone_mean(s: Subject) -> Fraction:
    p = s.prednisone
    days = (s.last_day - s.first_dose).days + 1
    if p.taper_to is None:
        return Fraction(p.dose)
    return Fraction(p.dose * p.switch + p.taper_to * (days - p.switch), days)


# --------------------------------------------------------------------------------------------
# Scaled cohort (benchmarks): same shapes, random values, many more rows.


def generate_scaled(n_subjects: int, seed: int, clinical: bool = False) -> Tables:
    """`n_subjects` random subjects in the fixture's shapes; published figures need not hold.

    Adds per-muscle QS items at baseline and end-of-period visits and every in-window prednisone
    dose as a single-dose (eMAR) CM row: about 200 rows per subject. `clinical`: also LB, AE and MH
    (`clinical_tables`, about 17 more rows per subject); the other tables are the same either way.
    """
    if n_subjects < 1:
        raise ValueError("n_subjects must be at least 1")
    rng = random.Random(seed)
    subjects: list[Subject] = []
    span = (dt.date(1991, 12, 31) - dt.date(1990, 1, 8)).days
    for i in range(n_subjects):
        site = i // 100 + 1
        subjid = f"{i + 1:04d}"
        arm = rng.choice(("IVIG", "PBO"))
        treatments = [arm]
        if rng.random() < 0.55:
            treatments.append("PBO" if arm == "IVIG" else "IVIG")
        first = dt.date(1990, 1, 8) + dt.timedelta(days=rng.randint(0, span))
        mss = _half(rng.uniform(55, 88))
        nss = rng.randint(22, 42)
        rash = rng.randint(1, 4)
        mss_base, nss_base, rash_base = mss, nss, rash
        periods = []
        for treatment in treatments:
            if treatment == "IVIG":
                response = rng.choices((MAJOR, MILD, NONE, WORSE), (9, 2, 1, 0.5))[0]
            else:
                response = rng.choices((MAJOR, MILD, NONE, WORSE), (0.2, 3, 3, 5))[0]
            delta = {MAJOR: (7, 14), MILD: (2, 5), NONE: (-1.5, 1.5), WORSE: (-8, -3)}[response]
            mss = min(100.0, max(0.0, _half(mss + rng.uniform(*delta))))
            nss = min(60, max(0, nss + round(rng.uniform(*delta) * 0.8)))
            rash = min(4, max(0, rash + {MAJOR: -1, MILD: -1, NONE: 0, WORSE: 1}[response]))
            offsets = (28 + rng.randint(-2, 2), 56 + rng.randint(-2, 2), 84 + rng.randint(-3, 3))
            periods.append(Period(treatment, response, mss, nss, rash, offsets))
        sex = "F" if rng.random() < 0.65 else "M"
        age = rng.randint(18, 55)
        ivig_end = next((p for p in periods if p.treatment == "IVIG"), None)
        pre = _pre_biopsy(
            rng, rng.choice(("PRESENT", "PRESENT", "ABSENT")), rng.choice(_PRE_CONCLUSIONS)
        )
        post = _post_biopsy(pre, rng) if ivig_end is not None and ivig_end.mssum_end >= 88 else None
        weight = rng.uniform(50.0, 80.0) if sex == "F" else rng.uniform(62.0, 100.0)
        weights = [round(weight * 4) / 4] * len(periods)
        dose = rng.choice((10, 15, 20, 25, 30, 40))
        subjects.append(
            Subject(
                subjid=subjid,
                usubjid=f"{SCALED_STUDYID}-{site:02d}-{subjid}",
                siteid=f"{site:02d}",
                arm=arm,
                sex=sex,
                age=age,
                birth=_birth_for(age, first, rng),
                birth_partial=rng.random() < 0.02,
                weights=weights,
                screen=first - dt.timedelta(days=rng.randint(14, 28)),
                first_dose=first,
                timed=rng.random() < 0.3,
                mssum_screen=mss_base,
                mssum_base=mss_base,
                nsstot_screen=nss_base,
                nsstot_base=nss_base,
                rash_screen=rash_base,
                rash_base=rash_base,
                periods=periods,
                muscle=rng.choice(("QUADRICEPS", "DELTOID")),
                biopsy_pre=pre,
                biopsy_post=post,
                prednisone=Prednisone(
                    dose=dose,
                    start_before=rng.randint(30, 300),
                    daily_emar=True,
                    partial_start=rng.random() < 0.02,
                    tail=rng.randint(0, 60),
                ),
                items=True,
            )
        )
    tables = _build_tables(subjects, SCALED_STUDYID, n_subjects)
    if clinical:
        tables.update(clinical_tables(tables, seed))
    return tables


# --------------------------------------------------------------------------------------------
# Laboratory, adverse events, medical history (INVENTED for the tests and benchmarks)

# (LBTESTCD, LBTEST, LBCAT, LBLOINC, unit, low, high, LBSPEC, LBMETHOD); limits as written
# fmt: off
_LAB_TESTS = (
    ("CK", "Creatine Kinase", "CHEMISTRY", "2157-6", "U/L", "26", "192", "SERUM", ""),
    ("ALDOLASE", "Aldolase", "CHEMISTRY", "", "U/L", "1.0", "7.5", "SERUM", ""),
    ("AST", "Aspartate Aminotransferase", "CHEMISTRY", "1920-8", "U/L", "10", "40", "SERUM", ""),
    ("CRP", "C Reactive Protein", "CHEMISTRY", "1988-5", "mg/L", "", "5.0", "SERUM", ""),
    ("HGB", "Hemoglobin", "HEMATOLOGY", "718-7", "g/dL", "12.0", "15.5", "BLOOD", ""),
    ("ANA", "Antinuclear Antibodies", "IMMUNOLOGY", "", "titer", "", "<1:40", "SERUM",
     "INDIRECT IMMUNOFLUORESCENCE"),
    ("UCOLOR", "Color", "URINALYSIS", "5778-6", "", "", "", "URINE", "VISUAL"),
)
# (AETERM, AEDECOD, AEBODSYS, serious)
_ADVERSE_EVENTS = (
    ("Headache", "Headache", "NERVOUS SYSTEM DISORDERS", False),
    ("Fever", "Pyrexia", "GENERAL DISORDERS AND ADMINISTRATION SITE CONDITIONS", False),
    ("Chills, during infusion", "Chills", "GENERAL DISORDERS AND ADMINISTRATION SITE CONDITIONS",
     False),
    ("Nausea", "Nausea", "GASTROINTESTINAL DISORDERS", False),
    ("Rash, maculopapular", "Rash maculo-papular", "SKIN AND SUBCUTANEOUS TISSUE DISORDERS", False),
    ("Aseptic meningitis", "Meningitis aseptic", "NERVOUS SYSTEM DISORDERS", True),
    ("Deep vein thrombosis", "Deep vein thrombosis", "VASCULAR DISORDERS", True),
)
# (MHTERM, MHDECOD, MHCAT, how long before screening in years, lasted days or None if ongoing)
_HISTORY = (
    ("Hypertension", "Hypertension", "GENERAL MEDICAL HISTORY", 6, None),
    ("Appendectomy", "Appendicectomy", "SURGICAL HISTORY", 20, 0),
    ("Hypothyroidism, on levothyroxine", "Hypothyroidism", "GENERAL MEDICAL HISTORY", 4, None),
    ("Pneumonia", "Pneumonia", "GENERAL MEDICAL HISTORY", 2, 12),
)
# fmt: on
_Epoch = Callable[[dt.date], str]
_AddClinical = Callable[[str, Row], None]


def _day(text: str) -> dt.date:
    """The first day of a (possibly partial) ISO 8601 date."""
    return _first_instant(text[:10]).date()


def clinical_tables(tables: Tables, seed: int) -> Tables:
    """LB, AE and MH rows for every DM row of `tables` (EPOCH from its SE rows), INVENTED values
    drawn from their own random stream (`seed`): 14 laboratory results per subject (screening and
    end of study: CK, aldolase, AST, CRP, hemoglobin, ANA titer, urine color), 0 to 3 adverse
    events while on study and 1 or 2 medical history rows. They exercise what the mappings carry:
    partial dates, times without seconds, written precision (`13.20`, `7.0`), results in words or
    with a sign (`<5`, `1:160`, `YELLOW`), a limit that is no number, a test not done, free text
    with commas and a sponsor column (XXNOTE in LB and MH)."""
    rng = random.Random(f"clinical-{seed}")
    periods: dict[str, list[tuple[dt.date, dt.date, str]]] = {}
    for se in tables.get("SE", []):
        periods.setdefault(se["USUBJID"], []).append(
            (_day(se["SESTDTC"]), _day(se["SEENDTC"]), se["EPOCH"])
        )
    out: Tables = {"LB": [], "AE": [], "MH": []}
    for dm in tables["DM"]:
        first, last = _day(dm["RFSTDTC"]), _day(dm["RFENDTC"])
        spans = periods.get(dm["USUBJID"], [])

        def epoch(day: dt.date, spans: list[tuple[dt.date, dt.date, str]] = spans) -> str:
            found = [e for start, end, e in spans if start <= day <= end]
            return found[-1] if found else ""

        counters: dict[str, int] = {}

        def add(
            domain: str, values: Row, dm: Row = dm, counters: dict[str, int] = counters
        ) -> None:
            counters[domain] = counters.get(domain, 0) + 1
            row = {"STUDYID": dm["STUDYID"], "DOMAIN": domain, "USUBJID": dm["USUBJID"]}
            row[_SEQ[domain]] = str(counters[domain])
            row.update(values)
            out[domain].append({col: row.get(col, "") for col in COLUMNS[domain]})

        _lab_rows(rng, first, last, epoch, add)
        _event_rows(rng, first, last, epoch, add)
        _history_rows(rng, first, add)
    return out


def _lab_rows(
    rng: random.Random, first: dt.date, last: dt.date, epoch: _Epoch, add: _AddClinical
) -> None:
    timed = rng.random() < 0.4
    screen = first - dt.timedelta(days=rng.randint(7, 14))
    visits = ((1, "SCREENING", screen, "SCREENING"), (9, "END OF STUDY", last, epoch(last)))
    severity = rng.uniform(0.3, 1.0)  # how active the myositis is at screening
    for visit_index, (visitnum, visit, day, visit_epoch) in enumerate(visits):
        when = _iso(day)
        if timed:
            when += f"T{rng.randint(7, 11):02d}:{rng.choice((0, 15, 30, 45)):02d}"
        elif visit_index == 0 and rng.random() < 0.05:
            when = when[:7]  # only the month known
        level = severity * (1.0 if visit_index == 0 else rng.uniform(0.2, 0.9))
        for code, name, category, loinc, unit, low, high, spec, method in _LAB_TESTS:
            values = {
                "LBTESTCD": code, "LBTEST": name, "LBCAT": category, "LBLOINC": loinc,
                "LBORRESU": unit, "LBSTRESU": unit, "LBORNRLO": low, "LBORNRHI": high,
                "LBSPEC": spec, "LBMETHOD": method, "VISITNUM": str(visitnum), "VISIT": visit,
                "EPOCH": visit_epoch, "LBDTC": when,
                "LBBLFL": "Y" if visit_index == 0 else "",
            }  # fmt: skip
            if code == "AST" and visit_index == 1 and rng.random() < 0.1:
                values.update(LBSTAT="NOT DONE", LBREASND="Sample haemolysed, not repeated")
                values.update(LBORRESU="", LBSTRESU="")
                add("LB", values)
                continue
            result, number, flag = _lab_result(rng, code, level)
            values.update(LBORRES=result, LBSTRESC=result, LBSTRESN=number, LBNRIND=flag)
            if code == "HGB":  # reported in g/dL, standardised to g/L
                values.update(LBSTRESC=_fmt(float(result) * 10, 1), LBSTRESU="g/L")
                values["LBSTRESN"] = values["LBSTRESC"]
            if rng.random() < 0.02:
                values["XXNOTE"] = "Repeat sample, the first one clotted"
            add("LB", values)


def _lab_result(rng: random.Random, code: str, level: float) -> tuple[str, str, str]:
    """(LBORRES, LBSTRESN, LBNRIND) of one test."""
    if code in ("CK", "AST"):
        top = 192 if code == "CK" else 40
        units = round(rng.uniform(0.6, 1.1) * top * (1 + level * (30 if code == "CK" else 4)))
        return str(units), str(units), "HIGH" if units > top else "NORMAL"
    if code == "ALDOLASE":
        value = rng.uniform(3, 9) * (1 + 3 * level)
        text = _fmt(value, 1)
        return text, text, "HIGH" if float(text) > 7.5 else "NORMAL"
    if code == "CRP":
        value = rng.uniform(0, 30) * level
        if value < 5:
            return "<5", "", "NORMAL"
        text = _fmt(value, 1)
        return text, text, "HIGH"
    if code == "HGB":
        text = _fmt(rng.uniform(11.0, 15.0), 2)
        return text, text, "LOW" if float(text) < 12.0 else "NORMAL"
    if code == "ANA":
        titer = rng.choice(("NEGATIVE", "NEGATIVE", "1:80", "1:160", "1:320"))
        return titer, "", "NORMAL" if titer == "NEGATIVE" else "ABNORMAL"
    return rng.choice(("YELLOW", "YELLOW", "STRAW", "AMBER")), "", ""


def _event_rows(
    rng: random.Random, first: dt.date, last: dt.date, epoch: _Epoch, add: _AddClinical
) -> None:
    span = max((last - first).days, 1)
    starts = sorted(rng.randint(0, span) for _ in range(rng.choice((0, 1, 1, 2, 3))))
    for n, offset in enumerate(starts, start=1):
        term, decod, bodsys, serious = rng.choice(_ADVERSE_EVENTS)
        day = first + dt.timedelta(days=offset)
        start = _iso(day)
        if rng.random() < 0.3:
            start += f"T{rng.randint(9, 16):02d}:{rng.randint(0, 59):02d}"  # during an infusion
        elif rng.random() < 0.05:
            start = start[:7]
        outcome = rng.choices(
            ("RECOVERED/RESOLVED", "RECOVERING/RESOLVING", "NOT RECOVERED/NOT RESOLVED"),
            (8, 1, 1),
        )[0]
        end = (
            _iso(day + dt.timedelta(days=rng.randint(0, 10)))
            if outcome == "RECOVERED/RESOLVED"
            else ""
        )
        add(
            "AE",
            {
                "AESPID": str(n),
                "AETERM": term,
                "AEDECOD": decod,
                "AEBODSYS": bodsys,
                "AESEV": "SEVERE" if serious else rng.choice(("MILD", "MILD", "MODERATE")),
                "AESER": "Y" if serious else "N",
                "AEACN": "DRUG INTERRUPTED" if serious else "DOSE NOT CHANGED",
                "AEREL": rng.choice(("RELATED", "POSSIBLY RELATED", "NOT RELATED")),
                "AEOUT": outcome,
                "EPOCH": epoch(day),
                "AESTDTC": start,
                "AEENDTC": end,
            },
        )


def _history_rows(rng: random.Random, first: dt.date, add: _AddClinical) -> None:
    screen = first - dt.timedelta(days=14)
    onset = screen - dt.timedelta(days=rng.randint(60, 700))
    recorded = _iso(screen) + (f"T{rng.randint(8, 12):02d}:00" if rng.random() < 0.3 else "")
    rows = [
        {
            "MHTERM": "Dermatomyositis",
            "MHDECOD": "Dermatomyositis",
            "MHCAT": "PRIMARY DIAGNOSIS",
            "MHSTDTC": _iso(onset)[:7],
        }
    ]
    if rng.random() < 0.5:
        term, decod, category, years, lasted = rng.choice(_HISTORY)
        start = screen - dt.timedelta(days=365 * years + rng.randint(0, 300))
        row = {"MHTERM": term, "MHDECOD": decod, "MHCAT": category}
        if lasted is None:
            row["MHSTDTC"] = str(start.year)
            row["XXNOTE"] = "Year only, per patient report"
        else:
            row["MHSTDTC"] = _iso(start)
            row["MHENDTC"] = _iso(start + dt.timedelta(days=lasted))
            row["MHENRF"] = "BEFORE"
        rows.append(row)
    for row in rows:
        add("MH", {**row, "EPOCH": "SCREENING", "MHDTC": recorded})


# --------------------------------------------------------------------------------------------
# Rows


def _trial_tables(studyid: str, plansub: int) -> Tables:
    ts_rows = [
        (
            "TITLE",
            "Trial Title",
            "A controlled trial of high-dose intravenous immune globulin infusions as treatment "
            "for dermatomyositis",
        ),
        ("STYPE", "Study Type", "INTERVENTIONAL"),
        ("TBLIND", "Trial Blinding Schema", "DOUBLE BLIND"),
        ("TCNTRL", "Control Type", "PLACEBO"),
        ("RANDOM", "Trial is Randomized", "Y"),
        ("INDIC", "Trial Disease/Condition Indication", "Dermatomyositis"),
        ("TRT", "Investigational Therapy or Treatment", IVIG_TRT),
        ("AGEMIN", "Planned Minimum Age of Subjects", "P18Y"),
        ("AGEMAX", "Planned Maximum Age of Subjects", "P55Y"),
        ("PLANSUB", "Planned Number of Subjects", str(plansub)),
        ("DATASRC", "Data source", DATASRC),
    ]
    ts = [
        {
            "STUDYID": studyid,
            "DOMAIN": "TS",
            "TSSEQ": str(n),
            "TSPARMCD": cd,
            "TSPARM": name,
            "TSVAL": val,
        }
        for n, (cd, name, val) in enumerate(ts_rows, start=1)
    ]
    ta = []
    for armcd, other in (("IVIG", "PBO"), ("PBO", "IVIG")):
        for order, (etcd, epoch) in enumerate(
            (("SCRN", "SCREENING"), (armcd, EPOCHS[0]), (other, EPOCHS[1])), start=1
        ):
            ta.append(
                {
                    "STUDYID": studyid,
                    "DOMAIN": "TA",
                    "ARMCD": armcd,
                    "ARM": ARMS[armcd],
                    "TAETORD": str(order),
                    "ETCD": etcd,
                    "ELEMENT": ELEMENTS[etcd],
                    "TATRANS": "Optional crossover to the other therapy after 3 months"
                    if order == 2
                    else "",
                    "EPOCH": epoch,
                }
            )
    return {"TS": ts, "TA": ta}


def _build_tables(subjects: Sequence[Subject], studyid: str, plansub: int) -> Tables:
    tables: Tables = _trial_tables(studyid, plansub)
    for domain in ("DM", "SE", "VS", "EX", "CM", "QS", "RS", "PR", "MI"):
        tables[domain] = []
    for s in subjects:
        _subject_rows(s, studyid, tables)
    return tables


def _add(tables: Tables, domain: str, studyid: str, usubjid: str, values: dict[str, str]) -> None:
    rows = tables[domain]
    seq = values.pop("_seq", "")
    row = {"STUDYID": studyid, "DOMAIN": domain, "USUBJID": usubjid, _SEQ[domain]: seq}
    row.update(values)
    rows.append({col: row.get(col, "") for col in COLUMNS[domain]})


def _subject_rows(s: Subject, studyid: str, tables: Tables) -> None:
    counters: dict[str, int] = {}

    def add(domain: str, **values: str) -> None:
        counters[domain] = counters.get(domain, 0) + 1
        values["_seq"] = str(counters[domain])
        _add(tables, domain, studyid, s.usubjid, values)

    starts = s.period_starts()
    ends = [s.period_end(i) for i in range(len(s.periods))]
    birth = s.birth.isoformat()[:7] if s.birth_partial else s.birth.isoformat()
    tables["DM"].append(
        {
            col: v
            for col, v in {
                "STUDYID": studyid,
                "DOMAIN": "DM",
                "USUBJID": s.usubjid,
                "SUBJID": s.subjid,
                "RFSTDTC": _iso(s.first_dose),
                "RFENDTC": _iso(s.last_day),
                "SITEID": s.siteid,
                "BRTHDTC": birth,
                "AGE": str(s.age),
                "AGEU": "YEARS",
                "SEX": s.sex,
                "ARMCD": s.arm,
                "ARM": ARMS[s.arm],
                "ACTARMCD": s.actarm,
                "ACTARM": ACTARMS[s.actarm],
                "COUNTRY": "USA",
            }.items()
        }
    )

    # SE
    add(
        "SE",
        ETCD="SCRN",
        ELEMENT=ELEMENTS["SCRN"],
        EPOCH="SCREENING",
        SESTDTC=_iso(s.screen),
        SEENDTC=_iso(s.first_dose),
    )
    for i, p in enumerate(s.periods):
        add(
            "SE",
            ETCD=p.treatment,
            ELEMENT=ELEMENTS[p.treatment],
            EPOCH=EPOCHS[i],
            SESTDTC=_iso(starts[i]),
            SEENDTC=_iso(ends[i]),
        )

    # VS: weight at screening and, for a second period, at its start (dosing weight)
    for i, weight in enumerate(s.weights):
        if i == 0:
            visitnum, visit, epoch, day = 1, "SCREENING", "SCREENING", s.screen
        else:
            visitnum, visit, epoch, day = 5, "MONTH 3", EPOCHS[0], starts[i]
        add(
            "VS",
            VSTESTCD="WEIGHT",
            VSTEST="Weight",
            VSORRES=_fmt(weight, 2),
            VSORRESU="kg",
            VSSTRESN=_fmt(weight, 2),
            VSSTRESU="kg",
            VISITNUM=str(visitnum),
            VISIT=visit,
            EPOCH=epoch,
            VSDTC=_iso(day),
        )

    # EX: three monthly courses per period, 1 g/kg on each of 2 consecutive days
    for i, p in enumerate(s.periods):
        for course_offset in (0, p.offsets[0], p.offsets[1]):
            for day_offset in (0, 1):
                day = starts[i] + dt.timedelta(days=course_offset + day_offset)
                if s.timed:
                    start_time = ("09:30", "08:45", "10:15")[day_offset + (course_offset % 2)]
                    stdtc = f"{_iso(day)}T{start_time}"
                    endtc = f"{_iso(day)}T{('14:00', '13:20', '15:05')[day_offset + (course_offset % 2)]}"
                else:
                    stdtc = endtc = _iso(day)
                ivig = p.treatment == "IVIG"
                add(
                    "EX",
                    EXTRT=IVIG_TRT if ivig else "PLACEBO",
                    EXDOSE="1" if ivig else "0",
                    EXDOSU="g/kg",
                    EXDOSFRM="SOLUTION",
                    EXROUTE="INTRAVENOUS",
                    EPOCH=EPOCHS[i],
                    EXSTDTC=stdtc,
                    EXENDTC=endtc,
                )

    _prednisone_rows(s, add)
    _score_rows(s, starts, add)

    # RS: one clinical response per period, at its end visit
    for i, p in enumerate(s.periods):
        add(
            "RS",
            RSTESTCD="CLINRESP",
            RSTEST="Clinical Response",
            RSORRES=p.response,
            EPOCH=EPOCHS[i],
            RSDTC=_iso(ends[i]),
        )

    # PR + MI: baseline biopsy in screening, repeat biopsy near the end of the IVIG period
    biopsies: list[tuple[Biopsy, dt.date, str]] = [
        (s.biopsy_pre, s.screen + dt.timedelta(days=3 + int(s.subjid) % 5), "SCREENING")
    ]
    if s.biopsy_post is not None:
        i = next(i for i, p in enumerate(s.periods) if p.treatment == "IVIG")
        biopsies.append(
            (s.biopsy_post, ends[i] - dt.timedelta(days=2 + int(s.subjid) % 3), EPOCHS[i])
        )
    for n, (b, day, epoch) in enumerate(biopsies, start=1):
        refid = f"MB-{s.subjid}-{n}"
        add(
            "PR",
            PRREFID=refid,
            PRTRT="MUSCLE BIOPSY",
            PRLOC=s.muscle,
            EPOCH=epoch,
            PRSTDTC=_iso(day),
        )
        findings = (
            ("FIBDIAM", _fmt(b.fibdiam, 1), True),
            ("CAPDENS", str(b.capdens), True),
            ("CAPDIAM", _fmt(b.capdiam, 2), True),
            ("MACCAP", b.mac, False),
            ("ICAM1", b.icam1, False),
            ("MHC1", b.mhc1, False),
            ("MICONCL", b.conclusion, False),
        )
        for code, value, numeric in findings:
            name, unit = MI_TESTS[code]
            add(
                "MI",
                MIREFID=refid,
                MITESTCD=code,
                MITEST=name,
                MIORRES=value,
                MIORRESU=unit,
                MISTRESC=value,
                MISTRESN=value if numeric else "",
                MISPEC="SKELETAL MUSCLE",
                MILOC=s.muscle,
                EPOCH=epoch,
                MIDTC=_iso(day),
            )


def _prednisone_rows(s: Subject, add: _AddRow) -> None:
    p = s.prednisone
    first, last = s.first_dose, s.last_day
    begin = first - dt.timedelta(days=p.start_before)
    begin_text = begin.isoformat()[:7] if p.partial_start else _iso(begin)
    common = {
        "CMTRT": "PREDNISONE",
        "CMDECOD": "PREDNISONE",
        "CMINDC": "DERMATOMYOSITIS",
        "CMDOSU": "mg",
        "CMROUTE": "ORAL",
    }
    tail_end = _iso(last + dt.timedelta(days=p.tail))

    def period(dose: int, start: str, end: str) -> None:
        add("CM", CMDOSE=str(dose), CMDOSFRQ="QD", CMSTDTC=start, CMENDTC=end, **common)

    def single(dose: int, day: dt.date) -> None:
        add(
            "CM",
            CMDOSE=str(dose),
            CMDOSFRQ="ONCE",
            CMSTDTC=f"{_iso(day)}T08:00",
            CMENDTC=f"{_iso(day)}T08:00",
            **common,
        )

    if p.daily_emar:
        period(p.dose, begin_text, _iso(first - dt.timedelta(days=1)))
        day = first
        while day <= last:
            single(p.dose, day)
            day += dt.timedelta(days=1)
        if p.tail:
            period(p.dose, _iso(last + dt.timedelta(days=1)), tail_end)
        return
    cursor_text = begin_text
    if p.emar_infusion_days:
        period(p.dose, begin_text, _iso(first - dt.timedelta(days=1)))
        single(p.dose, first)
        single(p.dose, first + dt.timedelta(days=1))
        cursor_text = _iso(first + dt.timedelta(days=2))
    if p.taper_to is None:
        period(p.dose, cursor_text, tail_end)
        return
    switch = first + dt.timedelta(days=p.switch)
    period(p.dose, cursor_text, _iso(switch - dt.timedelta(days=1)))
    period(p.taper_to, _iso(switch), tail_end)


def _score_rows(s: Subject, starts: list[dt.date], add: _AddRow) -> None:
    """QS: screening, baseline (day 1, before dosing) and monthly visits to the last period's end."""
    visits: list[tuple[int, str, dt.date, float, int, int]] = [
        (1, "SCREENING", s.screen, s.mssum_screen, s.nsstot_screen, s.rash_screen),
        (2, "SCREENING", s.first_dose, s.mssum_base, s.nsstot_base, s.rash_base),
    ]
    mss, nss, rash = s.mssum_base, s.nsstot_base, s.rash_base
    for i, p in enumerate(s.periods):
        for m, offset in enumerate(p.offsets, start=1):
            if m < 3:
                frac = m / 3
                key = (i, m)
                if key not in s.mid_scores:
                    s.mid_scores[key] = (
                        _half(mss + (p.mssum_end - mss) * frac),
                        round(nss + (p.nsstot_end - nss) * frac),
                        rash if m == 1 else p.rash_end,
                    )
                values = s.mid_scores[key]
            else:
                values = (p.mssum_end, p.nsstot_end, p.rash_end)
            visits.append(
                (2 + 3 * i + m, EPOCHS[i], starts[i] + dt.timedelta(days=offset), *values)
            )
        mss, nss, rash = p.mssum_end, p.nsstot_end, p.rash_end
    for visitnum, epoch, day, m_value, n_value, r_value in visits:
        visit = VISITS[visitnum - 1]
        note = s.notes.get(visitnum, "")
        for code, text in (
            ("MSSUM", _fmt(m_value, 1)),
            ("NSSTOT", str(n_value)),
            ("RASHGR", str(r_value)),
        ):
            name, cat = QS_TESTS[code]
            add(
                "QS",
                QSTESTCD=code,
                QSTEST=name,
                QSCAT=cat,
                QSORRES=text,
                QSSTRESN=text,
                VISITNUM=str(visitnum),
                VISIT=visit,
                EPOCH=epoch,
                QSDTC=_iso(day),
                XXNOTE=note,
            )
        if s.items and (visitnum == 2 or visit in ("MONTH 3", "MONTH 6")):
            for (code, name), grade in zip(
                [
                    (f"MS{g}{side}", f"{n}, {'Left' if side == 'L' else 'Right'}")
                    for g, n in MUSCLE_GROUPS
                    for side in "LR"
                ],
                _items_for(m_value),
                strict=True,
            ):
                add(
                    "QS",
                    QSTESTCD=code,
                    QSTEST=name,
                    QSCAT="MUSCLE STRENGTH",
                    QSORRES=str(grade),
                    QSSTRESN=str(grade),
                    VISITNUM=str(visitnum),
                    VISIT=visit,
                    EPOCH=epoch,
                    QSDTC=_iso(day),
                    XXNOTE="",
                )


def _items_for(mssum: float) -> list[int]:
    """20 Kendall 0-10 grades (10 groups x left/right) whose half-sum is `mssum`."""
    total = round(mssum * 2)
    base, extra = divmod(total, 20)
    grades = [base + (1 if k < extra else 0) for k in range(20)]
    return [min(10, g) for g in grades]


# --------------------------------------------------------------------------------------------
# Writing


def write_csv_folder(tables: Tables, out_dir: str | Path) -> list[Path]:
    """Write each table as `<domain lower>.csv` (UTF-8, header, `\\n` line ends), sorted."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for domain, rows in tables.items():
        columns = list(COLUMNS.get(domain, ()))
        for row in rows:
            for col in row:
                if col not in columns:
                    columns.append(col)
        path = out / f"{domain.lower()}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            for row in sorted(rows, key=lambda r: _sort_key(domain, r)):
                writer.writerow([row.get(col, "") for col in columns])
        written.append(path)
    return written


def _sort_key(domain: str, row: Row) -> tuple[str | int, ...]:
    if domain == "TS":
        return (int(row["TSSEQ"]),)
    if domain == "TA":
        return (row["ARMCD"], int(row["TAETORD"]))
    seq = row.get(_SEQ.get(domain, ""), "")
    return (row.get("USUBJID", ""), int(seq) if seq.isdigit() else 0)


# --------------------------------------------------------------------------------------------
# Verification: the published figures, computed from the rows as the study spec defines them


def _first_instant(value: str) -> dt.datetime:
    """A (possibly partial) ISO 8601 date at its first possible instant."""
    if len(value) == 4:
        return dt.datetime(int(value), 1, 1)
    if len(value) == 7:
        return dt.datetime(int(value[:4]), int(value[5:7]), 1)
    return dt.datetime.fromisoformat(value)


def _by_subject(rows: list[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row["USUBJID"], []).append(row)
    return grouped


def _period_changes(tables: Tables, testcd: str) -> dict[tuple[str, str], tuple[str, float, float]]:
    """(USUBJID, EPOCH) -> (ETCD, baseline, end) for every treatment period."""
    ex = _by_subject(tables["EX"])
    qs = _by_subject([r for r in tables["QS"] if r["QSTESTCD"] == testcd])
    result = {}
    for se in tables["SE"]:
        if se["ETCD"] == "SCRN":
            continue
        subject, epoch = se["USUBJID"], se["EPOCH"]
        first = min(_first_instant(r["EXSTDTC"]) for r in ex[subject] if r["EPOCH"] == epoch)
        end_limit = _first_instant(se["SEENDTC"])
        scores = sorted(
            ((_first_instant(r["QSDTC"]), float(r["QSSTRESN"])) for r in qs[subject]),
            key=lambda item: item[0],
        )
        before = [v for d, v in scores if d <= first]
        after = [v for d, v in scores if first < d <= end_limit]
        result[(subject, epoch)] = (se["ETCD"], before[-1], after[-1])
    return result


def check(tables: Tables) -> tuple[dict[str, float], list[str]]:
    """Compute the published figures from `tables`; return (figures, failed constraints)."""
    from scipy import stats

    figures: dict[str, float] = {}
    failures: list[str] = []

    def require(name: str, ok: bool) -> None:
        if not ok:
            failures.append(name)

    dm = tables["DM"]
    arms = [r["ARMCD"] for r in dm]
    actarms = [r["ACTARMCD"] for r in dm]
    ages = [int(r["AGE"]) for r in dm]
    periods = [r for r in tables["SE"] if r["ETCD"] != "SCRN"]
    figures.update(
        n_subjects=len(dm),
        n_ivig_arm=arms.count("IVIG"),
        n_placebo_arm=arms.count("PBO"),
        n_ivig_to_placebo=actarms.count("IVIG-PBO"),
        n_placebo_to_ivig=actarms.count("PBO-IVIG"),
        n_periods=len(periods),
        ivig_courses=sum(r["ETCD"] == "IVIG" for r in periods),
        placebo_courses=sum(r["ETCD"] == "PBO" for r in periods),
        age_min=min(ages),
        age_max=max(ages),
    )
    expected = {
        "n_subjects": 15,
        "n_ivig_arm": 8,
        "n_placebo_arm": 7,
        "n_ivig_to_placebo": 4,
        "n_placebo_to_ivig": 4,
        "n_periods": 23,
        "ivig_courses": 12,
        "placebo_courses": 11,
    }
    for name, value in expected.items():
        require(f"{name} == {value}", figures[name] == value)
    require("ages within 18-55", figures["age_min"] >= 18 and figures["age_max"] <= 55)

    etcd = {(r["USUBJID"], r["EPOCH"]): r["ETCD"] for r in periods}
    responses: dict[str, int] = {}
    for r in tables["RS"]:
        key = f"{etcd[(r['USUBJID'], r['EPOCH'])].lower()}_{r['RSORRES'].split()[0].lower()}"
        responses[key] = responses.get(key, 0) + 1
    published_rs = {
        "ivig_major": 9,
        "ivig_mild": 2,
        "ivig_no": 1,
        "ivig_worsening": 0,
        "pbo_major": 0,
        "pbo_mild": 3,
        "pbo_no": 3,
        "pbo_worsening": 5,
    }
    for name, value in published_rs.items():
        figures[f"rs_{name}"] = responses.get(name, 0)
        require(f"RS {name} == {value}", responses.get(name, 0) == value)

    arm_of = {r["USUBJID"]: r["ARMCD"] for r in dm}
    for endpoint, testcd, bound in (("E1", "MSSUM", 0.018), ("E2", "NSSTOT", 0.035)):
        changes = _period_changes(tables, testcd)
        first = {
            s: end - base for (s, epoch), (_, base, end) in changes.items() if epoch == EPOCHS[0]
        }
        ivig = [c for s, c in first.items() if arm_of[s] == "IVIG"]
        pbo = [c for s, c in first.items() if arm_of[s] == "PBO"]
        p_ivig = float(stats.wilcoxon(ivig).pvalue)
        p_pbo = float(stats.wilcoxon(pbo).pvalue)
        p_mwu = float(stats.mannwhitneyu(ivig, pbo, alternative="two-sided").pvalue)
        p_welch = float(stats.ttest_ind(ivig, pbo, equal_var=False).pvalue)
        figures.update(
            {
                f"{endpoint}_change_mean_ivig": sum(ivig) / len(ivig),
                f"{endpoint}_change_mean_placebo": sum(pbo) / len(pbo),
                f"{endpoint}_p_within_ivig": p_ivig,
                f"{endpoint}_p_within_placebo": p_pbo,
                f"{endpoint}_p_between_mwu": p_mwu,
                f"{endpoint}_p_between_welch": p_welch,
            }
        )
        require(f"{endpoint} p_within_ivig <= {bound}", p_ivig <= bound)
        require(f"{endpoint} p_between_mwu <= {bound}", p_mwu <= bound)
        require(f"{endpoint} p_within_placebo > 0.05", p_pbo > 0.05)
        all_changes = ivig + pbo
        require(
            f"{endpoint} changes without ties or zeros",
            0 not in all_changes
            and len(set(all_changes)) == len(all_changes)
            and len({abs(c) for c in ivig}) == len(ivig)
            and len({abs(c) for c in pbo}) == len(pbo),
        )

    table = [
        [responses.get("ivig_major", 0), figures["ivig_courses"] - responses.get("ivig_major", 0)],
        [responses.get("pbo_major", 0), figures["placebo_courses"] - responses.get("pbo_major", 0)],
    ]
    figures["E3_p_fisher_major"] = float(stats.fisher_exact(table).pvalue)
    for testcd in ("MSSUM", "NSSTOT"):
        changes = _period_changes(tables, testcd)
        diffs = []
        for subject, actarm in zip(arm_of, actarms, strict=True):
            if "-" in actarm:
                on = {changes[(subject, e)][0]: changes[(subject, e)] for e in EPOCHS}
                diffs.append((on["IVIG"][2] - on["IVIG"][1]) - (on["PBO"][2] - on["PBO"][1]))
        figures[f"E5_diff_mean_{testcd.lower()}"] = sum(diffs) / len(diffs)
        figures[f"E5_p_{testcd.lower()}"] = float(stats.wilcoxon(diffs).pvalue)
    figures["E5_n"] = len(diffs)

    mssum = _period_changes(tables, "MSSUM")
    response = {(r["USUBJID"], r["EPOCH"]): r["RSORRES"] for r in tables["RS"]}
    major = [v for k, v in mssum.items() if v[0] == "IVIG" and response[k] == MAJOR]
    figures["E4_n"] = len(major)
    figures["E4_baseline_mean"] = sum(v[1] for v in major) / len(major)
    figures["E4_end_mean"] = sum(v[2] for v in major) / len(major)
    require("E4 baseline mean 74.5", f"{figures['E4_baseline_mean']:.1f}" == "74.5")
    require("E4 end mean 84.7", f"{figures['E4_end_mean']:.1f}" == "84.7")

    _check_biopsies(tables, figures, require)
    figures["E7_prednisone_mean"] = float(_prednisone_mean(tables))
    require("E7 prednisone 25.0", f"{figures['E7_prednisone_mean']:.1f}" == "25.0")
    return figures, failures


def _check_biopsies(tables: Tables, figures: dict[str, float], require: Any) -> None:
    from scipy import stats

    first_ivig: dict[str, dt.datetime] = {}
    for r in tables["EX"]:
        if r["EXTRT"] == IVIG_TRT:
            d = _first_instant(r["EXSTDTC"])
            first_ivig[r["USUBJID"]] = min(d, first_ivig.get(r["USUBJID"], d))
    findings: dict[str, dict[str, str]] = {}
    for r in tables["MI"]:
        findings.setdefault(r["MIREFID"], {})[r["MITESTCD"]] = r["MISTRESC"]
    pairs = []
    for subject, rows in _by_subject(tables["PR"]).items():
        if subject not in first_ivig:
            continue
        dated = sorted((_first_instant(r["PRSTDTC"]), r["PRREFID"]) for r in rows)
        before = [ref for d, ref in dated if d < first_ivig[subject]]
        after = [ref for d, ref in dated if d > first_ivig[subject]]
        if before and after:
            pairs.append((subject, findings[before[-1]], findings[after[-1]]))
    figures["E6_n"] = len(pairs)
    require("E6 five biopsy pairs", len(pairs) == 5)
    for code, bound, direction in (
        ("FIBDIAM", 0.04, 1),
        ("CAPDENS", 0.01, 1),
        ("CAPDIAM", 0.01, -1),
    ):
        pre = [float(b[code]) for _, b, _ in pairs]
        post = [float(a[code]) for _, _, a in pairs]
        p = float(stats.ttest_rel(pre, post).pvalue)
        figures[f"E6_{code.lower()}_pre_mean"] = sum(pre) / len(pre)
        figures[f"E6_{code.lower()}_post_mean"] = sum(post) / len(post)
        figures[f"E6_p_{code.lower()}_t"] = p
        require(f"E6 p_{code.lower()}_t < {bound}", p < bound)
        require(
            f"E6 {code} direction",
            all((a - b) * direction > 0 for b, a in zip(pre, post, strict=True)),
        )
    resolved = sum(b["MACCAP"] == "PRESENT" and a["MACCAP"] == "ABSENT" for _, b, a in pairs)
    figures["E6_mac_resolved"] = resolved
    require("E6 MAC resolved in all 5", resolved == 5)
    for code in ("ICAM1", "MHC1"):
        require(
            f"E6 {code} reduced",
            all(GRADES.index(a[code]) < GRADES.index(b[code]) for _, b, a in pairs),
        )


def _prednisone_mean(tables: Tables) -> Fraction:
    """E7: per subject total mg over RFSTDTC..RFENDTC / days in that window; mean over subjects."""
    cm = _by_subject([r for r in tables["CM"] if r["CMTRT"] == "PREDNISONE"])
    means = []
    for subject in tables["DM"]:
        start = _first_instant(subject["RFSTDTC"]).date()
        end = _first_instant(subject["RFENDTC"]).date()
        total = Fraction(0)
        for r in cm.get(subject["USUBJID"], []):
            dose = Fraction(r["CMDOSE"])
            row_start = _first_instant(r["CMSTDTC"]).date()
            if r["CMDOSFRQ"] == "QD":
                row_end = _first_instant(r["CMENDTC"]).date()
                days = (min(end, row_end) - max(start, row_start)).days + 1
                total += dose * max(0, days)
            elif start <= row_start <= end:
                total += dose
        means.append(total / ((end - start).days + 1))
    return sum(means, Fraction(0)) / len(means)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m adapter.testing.cohort --out DIR [--seed S] [--scale N [--clinical]] [--check]`."""
    parser = argparse.ArgumentParser(prog="python -m adapter.testing.cohort", description=__doc__)
    parser.add_argument("--out", type=Path, help="folder to write the CSV tables to")
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--scale", type=int, help="write a scaled cohort of N subjects instead")
    parser.add_argument(
        "--clinical", action="store_true", help="with --scale: also invented LB, AE and MH tables"
    )
    parser.add_argument("--check", action="store_true", help="verify the published figures")
    args = parser.parse_args(argv)
    if args.clinical and not args.scale:
        parser.error("--clinical applies to a scaled cohort (--scale N) only")
    tables = (
        generate_scaled(args.scale, args.seed, clinical=args.clinical)
        if args.scale
        else generate(args.seed)
    )
    if args.out is not None:
        write_csv_folder(tables, args.out)
        print(f"wrote {sum(len(r) for r in tables.values())} rows to {args.out}")
    if args.check:
        if args.scale:
            parser.error("--check applies to the 15-subject fixture only")
        figures, failures = check(tables)
        for name, value in figures.items():
            print(f"{name:32} {value:.6g}")
        for failure in failures:
            print(f"FAILED: {failure}", file=sys.stderr)
        return 1 if failures else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
