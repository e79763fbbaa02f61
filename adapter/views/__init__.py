"""The SDTM domains as SQL-on-FHIR v2 ViewDefinitions (package data), the SQL step a view cannot
express, and a runner for them on Pathling.

Data files beside this module: `<name>.ViewDefinition.json` (one or more per domain), `<domain>.sql`
(Spark SQL over the views, registered under their `name`) and `domains.json` (per domain: its views,
its SQL file, the exactness of every output column and of the row order). How to run them elsewhere,
and what each column keeps: docs/views.md. `_generate.py` made the files.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["domains", "files", "view_definitions", "write_views"]


def _folder() -> Any:
    return resources.files(__name__)


def domains() -> dict[str, dict[str, Any]]:
    """Domain -> {"views": [names], "sql": file name, "columns": {column: exactness}, "row_order"}."""
    data: dict[str, dict[str, Any]] = json.loads(
        (_folder() / "domains.json").read_text(encoding="utf-8")
    )
    return data


def view_definitions() -> dict[str, dict[str, Any]]:
    """View name -> its ViewDefinition."""
    found: dict[str, dict[str, Any]] = {}
    for spec in domains().values():
        for name in spec["views"]:
            text = (_folder() / f"{name}.ViewDefinition.json").read_text(encoding="utf-8")
            found[name] = json.loads(text)
    return found


def sql(domain: str) -> str:
    """The SQL step of `domain`."""
    text: str = (_folder() / domains()[domain]["sql"]).read_text(encoding="utf-8")
    return text


def files() -> list[str]:
    """The names of every data file `write_views` copies."""
    names = ["domains.json"]
    for spec in domains().values():
        names.extend(f"{view}.ViewDefinition.json" for view in spec["views"])
        names.append(spec["sql"])
    return names


def write_views(out: Path) -> list[Path]:
    """Copy every ViewDefinition, SQL step and `domains.json` into `out` (created); returns the
    paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in files():
        target = out / name
        with resources.as_file(_folder() / name) as source:
            shutil.copyfile(source, target)
        written.append(target)
    return written
