"""trialfhir adapter: the edges (files, servers, analysis, command line).

`adapter.search_table(server, query)` (a FHIR search as a pandas DataFrame) is the one name here, loaded
on first use (`adapter.search_tables`), so importing the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapter.search_tables import search_table

__all__ = ["search_table"]


def __getattr__(name: str) -> Any:
    if name == "search_table":
        from adapter.search_tables import search_table

        return search_table
    raise AttributeError(f"module 'adapter' has no attribute {name!r}")
