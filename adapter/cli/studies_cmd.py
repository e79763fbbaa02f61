"""`trialfhir studies`: the studies the package ships, whose names `analyze --definition NAME` takes.

    trialfhir studies
    NAME         STUDY        TITLE
    dalakas1993  DALAKAS1993  A controlled trial of high-dose intravenous immune globulin ...

STUDY is the study identifier (STUDYID, the ResearchStudy's identifier): `analyze --server URL --study
DALAKAS1993` finds the shipped definition by it. Uses only :mod:`adapter.studies`.
"""

from __future__ import annotations

import click

__all__ = ["studies"]


@click.command(name="studies")
@click.option("--paths", is_flag=True, help="Also print each study's folder (its SDTM CSVs).")
def studies(paths: bool) -> None:
    """List the studies the package ships: name, study identifier, title."""
    from adapter.studies import shipped_studies

    rows = [("NAME", "STUDY", "TITLE")]
    rows += [(s.name, s.identifier, s.title) for s in shipped_studies()]
    name_width = max(len(r[0]) for r in rows)
    id_width = max(len(r[1]) for r in rows)
    for name, identifier, title in rows:
        click.echo(f"{name:<{name_width}}  {identifier:<{id_width}}  {title}".rstrip())
    if paths:
        for study in shipped_studies():
            click.echo(f"{study.name}: {study.folder}")
