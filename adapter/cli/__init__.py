"""The `trialfhir` command line: one click group; each family of commands lives in its own module."""

from __future__ import annotations

import click


@click.group(name="trialfhir")
@click.version_option(package_name="trialfhir")
def main() -> None:
    """Trial tables (SDTM) <-> FHIR R4: convert, push, pull, analyse."""


def _register() -> None:
    """Attach the command families that exist (each module adds one command or group)."""
    import importlib

    for module_name, attr in (
        ("adapter.cli.convert_cmd", "convert"),
        ("adapter.cli.transfer_cmd", "push"),
        ("adapter.cli.transfer_cmd", "pull"),
        ("adapter.cli.analyze_cmd", "analyze"),
        ("adapter.cli.run_cmd", "run"),
        ("adapter.cli.hapi_cmd", "hapi"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        main.add_command(getattr(module, attr))


_register()
