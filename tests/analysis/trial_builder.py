"""Hand-made trials for the analysis tests: SDTM-shaped string tables built row by row."""

from __future__ import annotations

from collections import defaultdict

from mappings.sdtm import Table, Trial

STUDYID = "TEST01"

_KEYS = ["STUDYID", "DOMAIN", "USUBJID"]
COLUMNS: dict[str, list[str]] = {
    "DM": [
        *_KEYS,
        "SUBJID",
        "SITEID",
        "AGE",
        "AGEU",
        "SEX",
        "ARMCD",
        "ARM",
        "ACTARMCD",
        "ACTARM",
        "RFSTDTC",
        "RFENDTC",
    ],
    "SE": [*_KEYS, "SESEQ", "ETCD", "ELEMENT", "EPOCH", "SESTDTC", "SEENDTC"],
    "EX": [
        *_KEYS,
        "EXSEQ",
        "EXTRT",
        "EXDOSE",
        "EXDOSU",
        "EXDOSFRM",
        "EXROUTE",
        "EXSTDTC",
        "EXENDTC",
        "EPOCH",
    ],
    "QS": [
        *_KEYS,
        "QSSEQ",
        "QSCAT",
        "QSTESTCD",
        "QSTEST",
        "QSORRES",
        "QSSTRESN",
        "VISITNUM",
        "VISIT",
        "QSDTC",
        "EPOCH",
    ],
    "RS": [*_KEYS, "RSSEQ", "RSTESTCD", "RSTEST", "RSORRES", "RSDTC", "EPOCH"],
    "PR": [*_KEYS, "PRSEQ", "PRTRT", "PRLOC", "PRSTDTC", "PRREFID", "EPOCH"],
    "MI": [
        *_KEYS,
        "MISEQ",
        "MIREFID",
        "MITESTCD",
        "MITEST",
        "MIORRES",
        "MIORRESU",
        "MISTRESN",
        "MISTRESC",
        "MISPEC",
        "MILOC",
        "MIDTC",
        "EPOCH",
    ],
    "CM": [
        *_KEYS,
        "CMSEQ",
        "CMTRT",
        "CMDOSE",
        "CMDOSU",
        "CMDOSFRQ",
        "CMROUTE",
        "CMSTDTC",
        "CMENDTC",
    ],
    "VS": [
        *_KEYS,
        "VSSEQ",
        "VSTESTCD",
        "VSTEST",
        "VSORRES",
        "VSORRESU",
        "VSSTRESN",
        "VSSTRESU",
        "VSDTC",
    ],
    "TS": ["STUDYID", "DOMAIN", "TSSEQ", "TSPARMCD", "TSPARM", "TSVAL"],
}


class TrialBuilder:
    """Collects rows per domain; `trial()` returns them as a Trial (string cells, "" = missing)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.seq: dict[tuple[str, str], int] = defaultdict(int)

    def _add(self, code: str, usubjid: str | None, **values: object) -> None:
        row = {"STUDYID": STUDYID, "DOMAIN": code}
        if usubjid is not None:
            row["USUBJID"] = usubjid
            self.seq[(code, usubjid)] += 1
            row[f"{code}SEQ"] = str(self.seq[(code, usubjid)])
        row.update({k: "" if v is None else str(v) for k, v in values.items()})
        self.rows[code].append(row)

    def subject(
        self,
        usubjid: str,
        arm: str,
        age: object = 40,
        sex: str = "F",
        rfst: str = "1991-01-01",
        rfen: str = "1991-06-30",
    ) -> TrialBuilder:
        self._add(
            "DM",
            usubjid,
            SUBJID=usubjid[-3:],
            SITEID="01",
            AGE=age,
            AGEU="YEARS",
            SEX=sex,
            ARMCD=arm,
            ARM=arm,
            ACTARMCD=arm,
            ACTARM=arm,
            RFSTDTC=rfst,
            RFENDTC=rfen,
        )
        return self

    def period(self, usubjid: str, etcd: str, epoch: str, start: str, end: str) -> TrialBuilder:
        self._add("SE", usubjid, ETCD=etcd, ELEMENT=etcd, EPOCH=epoch, SESTDTC=start, SEENDTC=end)
        return self

    def dose(self, usubjid: str, epoch: str, when: str, treatment: str = "IVIG") -> TrialBuilder:
        self._add(
            "EX",
            usubjid,
            EXTRT=treatment,
            EXDOSE="1",
            EXDOSU="g/kg",
            EXDOSFRM="SOLUTION",
            EXROUTE="INTRAVENOUS",
            EXSTDTC=when,
            EXENDTC=when,
            EPOCH=epoch,
        )
        return self

    def score(
        self, usubjid: str, testcd: str, when: str, value: object, epoch: str = ""
    ) -> TrialBuilder:
        self._add(
            "QS",
            usubjid,
            QSCAT=testcd,
            QSTESTCD=testcd,
            QSTEST=testcd,
            QSORRES=value,
            QSSTRESN=value,
            VISITNUM="",
            VISIT="",
            QSDTC=when,
            EPOCH=epoch,
        )
        return self

    def response(self, usubjid: str, epoch: str, term: str, when: str = "") -> TrialBuilder:
        self._add(
            "RS",
            usubjid,
            RSTESTCD="CLINRESP",
            RSTEST="Clinical response",
            RSORRES=term,
            RSDTC=when,
            EPOCH=epoch,
        )
        return self

    def biopsy(
        self, usubjid: str, refid: str, when: str, findings: dict[str, object]
    ) -> TrialBuilder:
        self._add(
            "PR",
            usubjid,
            PRTRT="MUSCLE BIOPSY",
            PRLOC="QUADRICEPS",
            PRSTDTC=when,
            PRREFID=refid,
            EPOCH="",
        )
        for testcd, value in findings.items():
            numeric = isinstance(value, int | float)
            self._add(
                "MI",
                usubjid,
                MIREFID=refid,
                MITESTCD=testcd,
                MITEST=testcd,
                MIORRES=value,
                MIORRESU="",
                MISTRESN=value if numeric else "",
                MISTRESC="" if numeric else value,
                MISPEC="SKELETAL MUSCLE",
                MILOC="QUADRICEPS",
                MIDTC=when,
                EPOCH="",
            )
        return self

    def prednisone(
        self,
        usubjid: str,
        dose: object,
        frequency: str,
        start: str,
        end: str = "",
        unit: str = "mg",
    ) -> TrialBuilder:
        self._add(
            "CM",
            usubjid,
            CMTRT="PREDNISONE",
            CMDOSE=dose,
            CMDOSU=unit,
            CMDOSFRQ=frequency,
            CMROUTE="ORAL",
            CMSTDTC=start,
            CMENDTC=end,
        )
        return self

    def weight(self, usubjid: str, kg: object, when: str) -> TrialBuilder:
        self._add(
            "VS",
            usubjid,
            VSTESTCD="WEIGHT",
            VSTEST="Weight",
            VSORRES=kg,
            VSORRESU="kg",
            VSSTRESN=kg,
            VSSTRESU="kg",
            VSDTC=when,
        )
        return self

    def trial_summary(self, parmcd: str, value: str) -> TrialBuilder:
        self._add(
            "TS",
            None,
            TSSEQ=str(len(self.rows["TS"]) + 1),
            TSPARMCD=parmcd,
            TSPARM=parmcd,
            TSVAL=value,
        )
        return self

    def trial(self) -> Trial:
        out: Trial = {}
        for code, columns in COLUMNS.items():
            rows = [{c: row.get(c, "") for c in columns} for row in self.rows.get(code, [])]
            out[code] = Table(code, list(columns), rows)
        return out


def simple_subject(
    trial: TrialBuilder,
    usubjid: str,
    arm: str,
    changes: dict[str, float],
    *,
    second: str | None = None,
    second_changes: dict[str, float] | None = None,
    responses: tuple[str, ...] = (),
    base: float = 60.0,
) -> TrialBuilder:
    """One subject: screening, a first period on `arm` (Feb-Apr 1991) and optionally a second.

    Scores (MSSUM, NSSTOT) at screening (1991-01-15) = base - 5, on the first-dose day
    (1991-02-01, no time: counts as baseline against the 10:00 dose) = base, at the end of period 1
    (1991-04-20) = base + change, and at the end of period 2 (1991-07-20) = that + second change.
    """
    trial.subject(usubjid, arm, rfst="1991-01-15", rfen="1991-07-31" if second else "1991-04-30")
    trial.period(usubjid, "SCRN", "SCREENING", "1991-01-15", "1991-01-31")
    trial.period(usubjid, arm, "TREATMENT 1", "1991-02-01", "1991-04-30")
    trial.dose(usubjid, "TREATMENT 1", "1991-02-01T10:00")
    trial.dose(usubjid, "TREATMENT 1", "1991-03-01")
    for testcd, change in changes.items():
        trial.score(usubjid, testcd, "1991-01-15", base - 5)
        trial.score(usubjid, testcd, "1991-02-01", base)
        trial.score(usubjid, testcd, "1991-04-20", base + change)
    if second is not None:
        trial.period(usubjid, second, "TREATMENT 2", "1991-05-01", "1991-07-31")
        trial.dose(usubjid, "TREATMENT 2", "1991-05-02")
        for testcd, change in (second_changes or {}).items():
            trial.score(usubjid, testcd, "1991-07-20", base + changes[testcd] + change)
    epochs = ("TREATMENT 1", "TREATMENT 2") if second is not None else ("TREATMENT 1",)
    for epoch, term in zip(epochs, responses, strict=False):
        trial.response(usubjid, epoch, term)
    return trial
