"""A folder mixing the adapter's own resources with FHIR written by others: which resource is which,
how hospital data finds the trial's subjects, and how own and foreign rows of a domain become one table.

    is_own(resource)                      # the adapter's own: its lossless path (mappings.trial)
    keys = trial_subject_keys(own)        # reference key -> (STUDYID, USUBJID) of the own subjects
    trial = combine(own_trial, mapping.tables)

Pure (no I/O). Rules: docs/foreign-fhir.md, "Mixed folders".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final
from urllib.parse import unquote

from mappings.errors import ExitCode, TrialfhirError
from mappings.foreign.mapping import Table as ForeignTable
from mappings.identity import SID_RESEARCH_SUBJECT, SID_USUBJID
from mappings.sdtm import DOMAINS, Table, Trial
from mappings.terminology import CANONICAL_BASE

__all__ = ["OWN_PREFIX", "SubjectCollision", "combine", "is_own", "trial_subject_keys"]

JSON = dict[str, Any]

OWN_PREFIX: Final = CANONICAL_BASE + "/"
"""What marks the adapter's own resources: an identifier system (or a `url`, or a `meta.profile`)
under this base (`https://trialfhir.org/fhir/sid/...`, its CodeSystem, its StructureDefinitions)."""


def is_own(resource: Mapping[str, Any]) -> bool:
    """True when `resource` was written by the adapter: an identifier's system, its `url`, a
    `meta.profile`, or the url of one of its top-level extensions lies under `OWN_PREFIX` (the
    extensions catch an own resource whose identifier was damaged: it is then refused by the strict
    path, naming the element, instead of being read as someone else's). Everything else is FHIR
    written by others."""
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):  # R4's 0..1 Identifier (AdverseEvent, QuestionnaireResponse)
        identifiers = [identifiers]
    if isinstance(identifiers, list):
        for identifier in identifiers:
            system = identifier.get("system") if isinstance(identifier, dict) else None
            if isinstance(system, str) and system.startswith(OWN_PREFIX):
                return True
    url = resource.get("url")
    if isinstance(url, str) and url.startswith(OWN_PREFIX):
        return True
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    if isinstance(profiles, list):  # loops, not generators: this runs for every resource read
        for profile in profiles:
            if isinstance(profile, str) and profile.startswith(OWN_PREFIX):
                return True
    extensions = resource.get("extension")
    if isinstance(extensions, list):
        for extension in extensions:
            url = extension.get("url") if isinstance(extension, dict) else None
            if isinstance(url, str) and url.startswith(OWN_PREFIX):
                return True
    return False


def _first_value(resource: JSON, system: str) -> str | None:
    identifiers = resource.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else ():
        if isinstance(identifier, dict) and identifier.get("system") == system:
            value = identifier.get("value")
            return value if isinstance(value, str) and value else None
    return None


def trial_subject_keys(own: Iterable[JSON]) -> dict[str, tuple[str, str]]:
    """The own subjects as the profile-free mapping looks them up: every key an event's `subject` may
    use for the Patient a ResearchSubject points at (`Patient/<id>`, `identifier|<usubjid system>|
    <USUBJID>`) -> (STUDYID, USUBJID). A Patient two ResearchSubjects point at keeps the first by
    (STUDYID, USUBJID), so the answer does not depend on input order."""
    resources = list(own)
    usubjid_of: dict[str, str] = {}  # Patient/<id> -> its USUBJID identifier
    for resource in resources:
        if resource.get("resourceType") == "Patient" and isinstance(resource.get("id"), str):
            value = _first_value(resource, SID_USUBJID)
            if value is not None:
                usubjid_of[f"Patient/{resource['id']}"] = value
    found: dict[str, tuple[str, str]] = {}
    pairs: list[tuple[tuple[str, str], str]] = []
    for resource in resources:
        if resource.get("resourceType") != "ResearchSubject":
            continue
        key = _first_value(resource, SID_RESEARCH_SUBJECT)
        parts = [unquote(p) for p in key.split("/")] if key is not None else []
        individual = resource.get("individual")
        reference = individual.get("reference") if isinstance(individual, dict) else None
        if len(parts) == 2 and isinstance(reference, str) and reference.startswith("Patient/"):
            pairs.append(((parts[0], parts[1]), reference))
    for subject, reference in sorted(pairs):
        found.setdefault(reference, subject)
        usubjid = usubjid_of.get(reference)
        if usubjid is not None:
            found.setdefault(f"identifier|{SID_USUBJID}|{usubjid}", subject)
    return found


class SubjectCollision(TrialfhirError, ValueError):
    """A Patient written by others, not linked to a trial subject, gets the USUBJID of one: its rows
    would be read as that subject's. Nothing is written; the message names the source resources (never
    values) and how to tell the subjects apart."""

    code: ClassVar[str] = "foreign_subject_collision"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        shown = ", ".join(sources[:10]) + (
            f" and {len(sources) - 10} more" if len(sources) > 10 else ""
        )
        super().__init__(
            f"{len(sources)} Patient(s) written by others are not linked to a trial subject but get "
            f"a trial subject's USUBJID ({shown}); link them through a ResearchSubject, or choose "
            "another --study or --subjid so that their USUBJIDs differ"
        )


def subjects_of(foreign: dict[str, ForeignTable]) -> set[tuple[str, str]]:
    """The (STUDYID, USUBJID) of every subject the profile-free rows belong to, in any domain: in a
    mixed folder, the trial subjects the hospital data joined and the hospital's own subjects."""
    found: set[tuple[str, str]] = set()
    for table in foreign.values():
        if "STUDYID" in table.columns and "USUBJID" in table.columns:
            study, subject = table.columns.index("STUDYID"), table.columns.index("USUBJID")
            found.update((row[study], row[subject]) for row in table.rows)
    return found


def _seq_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def combine(own: Trial, foreign: dict[str, ForeignTable]) -> Trial:
    """The own trial's tables with the profile-free rows added, domain by domain.

    - Columns: the own table's columns in their order, then the foreign columns it lacks (in the
      profile-free order); a cell a row does not have is empty (own rows have no --SRCID: their
      source is the adapter's own resource, named by its identifiers).
    - --SEQ: own rows keep theirs (the lossless path); a subject's foreign rows are numbered on after
      the subject's highest own --SEQ of the domain, in the profile-free order (date, test or term,
      source id).
    - Rows: ordered by USUBJID, then --SEQ as a number (the domain's sort order), DM by USUBJID;
      STUDYID first when several studies are present.
    - A Patient written by others that gets an own subject's (STUDYID, USUBJID) without being linked
      to it is refused (`SubjectCollision`), before anything is combined.
    - A foreign domain without rows is added only when there is no own table at all (a pure foreign
      input writes all its domains, header only when empty, as `adapter.foreign.convert_foreign`).
    """
    own_dm = own.get("DM")
    if own_dm is not None and "DM" in foreign:
        subjects = {(r.get("STUDYID", ""), r.get("USUBJID", "")) for r in own_dm.rows}
        columns = foreign["DM"].columns
        clashes = sorted(
            row["DMSRCID"]
            for row in (dict(zip(columns, values, strict=True)) for values in foreign["DM"].rows)
            if (row.get("STUDYID", ""), row.get("USUBJID", "")) in subjects
        )
        if clashes:
            raise SubjectCollision(clashes)
    trial: Trial = {code: Table(code, list(t.columns), list(t.rows)) for code, t in own.items()}
    for code, table in foreign.items():
        if not table.rows and own:
            continue
        rows = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
        target = trial.get(code)
        if target is None:
            trial[code] = Table(code, list(table.columns), rows)
            continue
        known = set(target.columns)
        target.columns.extend(c for c in table.columns if c not in known)
        spec = DOMAINS.get(code)
        seq = spec.seq if spec is not None else None
        if seq is not None:
            highest: dict[tuple[str, str], int] = {}
            for row in target.rows:
                key = (row.get("STUDYID", ""), row.get("USUBJID", ""))
                highest[key] = max(highest.get(key, 0), _seq_number(row.get(seq, "")))
            for row in rows:
                key = (row.get("STUDYID", ""), row.get("USUBJID", ""))
                row[seq] = str(highest.get(key, 0) + int(row[seq]))
        target.rows.extend(rows)
        for row in target.rows:
            for column in target.columns:
                row.setdefault(column, "")
        studies = {row.get("STUDYID", "") for row in target.rows}
        head = (lambda r: (r.get("STUDYID", ""),)) if len(studies) > 1 else (lambda r: ())
        if seq is not None:
            target.rows.sort(key=lambda r: (*head(r), r["USUBJID"], _seq_number(r[seq])))
        elif spec is not None and spec.subject_level:
            target.rows.sort(key=lambda r: (*head(r), r["USUBJID"]))
    return trial
