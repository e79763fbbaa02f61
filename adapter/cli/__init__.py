"""The `trialfhir` command line: one click group; each family of commands lives in its own module.

Commands import their heavy dependencies (pandas, scipy, matplotlib, httpx) only when they run, so
`trialfhir --help` and every command start fast.
"""

from __future__ import annotations

import click

from adapter.cli.analyze_cmd import analyze
from adapter.cli.convert_cmd import convert
from adapter.cli.export_cmd import export
from adapter.cli.hapi_cmd import hapi
from adapter.cli.pull_cmd import pull
from adapter.cli.run_cmd import run
from adapter.cli.search_cmd import search
from adapter.cli.studies_cmd import studies
from adapter.cli.transfer_cmd import push
from adapter.cli.views_cmd import views


@click.group(name="trialfhir")
@click.version_option(package_name="trialfhir")
def main() -> None:
    """Trial tables (SDTM) <-> FHIR R4: convert, push, pull, analyse."""


for command in (run, convert, push, pull, search, export, analyze, studies, views, hapi):
    main.add_command(command)
