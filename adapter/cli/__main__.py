"""`python -m adapter.cli`: the same as the `trialfhir` command."""

from adapter.cli import main

main()
