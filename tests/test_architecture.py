"""The house rules of docs/architecture.md, checked on the source: which package may import which, and
no import cycle between modules. Every import counts: at the top, inside a function (a lazy import)
and under `if TYPE_CHECKING:` (a type-only import is still an arrow a reader has to follow)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("adapter", "mappings")

ALLOWED: dict[str, set[str]] = {
    # unit: the other units it may import (docs/architecture.md, "What may import what")
    "mappings": {"mappings.errors"},
    # the error root (TrialfhirError, ExitCode, Problem): imports only the standard library, and every
    # unit may import it (docs/decisions.md, "Errors: one root, one Problem")
    "mappings.errors": set(),
    "adapter": {"adapter.search_tables", "mappings.errors"},  # its __init__: search_table, lazily
    "adapter.fhir_json": {"mappings.errors"},
    "adapter.fhir_query": {"mappings.errors"},
    "adapter.bundles": {"adapter.fhir_query", "mappings.errors"},
    "adapter.validation": {"mappings.errors"},
    "adapter.client": {
        "adapter.bundles",
        "adapter.fhir_json",
        "adapter.fhir_query",
        "mappings.errors",
    },
    "adapter.studies": {"mappings", "mappings.errors"},
    "adapter.tables": {"mappings", "mappings.errors"},
    "adapter.analysis": {"mappings", "mappings.errors"},
    "adapter.foreign": {"adapter.fhir_json", "mappings", "mappings.errors"},
    "adapter.fhir_files": {
        "adapter.bundles",
        "adapter.fhir_json",
        "adapter.studies",
        "mappings",
        "mappings.errors",
    },
    # foreign uploads: each resource's path, references, dependency order, transactions split
    "adapter.uploads": {
        "adapter.bundles",
        "adapter.fhir_files",
        "adapter.fhir_json",
        "mappings",
        "mappings.errors",
    },
    "adapter.transfer": {
        "adapter.bundles",
        "adapter.client",
        "adapter.fhir_files",
        "adapter.uploads",
        "mappings",
        "mappings.errors",
    },
    # pulls by patients, Group or searches (the study pull stays in transfer)
    "adapter.cohorts": {
        "adapter.bundles",
        "adapter.client",
        "adapter.fhir_files",
        "mappings.errors",
    },
    # a tidy table from a search, through the profile-free mapping rules
    "adapter.search_tables": {
        "adapter.client",
        "adapter.cohorts",
        "mappings",
        "mappings.errors",
    },
    "adapter.sources": {
        "adapter.fhir_files",
        "adapter.foreign",
        "adapter.tables",
        "adapter.transfer",
        "mappings",
        "mappings.errors",
    },
    "adapter.testing": {"mappings.errors"},
    # the Spark engine: the one split by subject, the pure mappings per partition, the files it reads
    "adapter.engines": {
        "adapter",  # the package itself, zipped to ship to a cluster's workers
        "adapter.fhir_files",
        "adapter.fhir_json",
        "adapter.tables",
        "mappings",
        "mappings.errors",
    },
    # the SQL-on-FHIR ViewDefinitions (package data) and their Pathling runner
    "adapter.views": {"mappings", "mappings.errors"},
    "adapter.cli": {
        "adapter.analysis",
        "adapter.engines",
        "adapter.views",
        "adapter.client",
        "adapter.cohorts",
        "adapter.fhir_files",
        "adapter.search_tables",
        "adapter.foreign",
        "adapter.sources",
        "adapter.studies",
        "adapter.tables",
        "adapter.testing",
        "adapter.transfer",
        "adapter.uploads",
        "adapter.validation",
        "mappings.errors",
        "mappings",
    },
}

KNOWN_CYCLES: list[
    set[str]
] = []  # issue 9, move 3 removed the last one (client._bundle <-> _errors)


def modules() -> dict[str, Path]:
    """Every module of the two packages by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The modules of `known` that module `name` (at `path`) imports, wherever the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            # `from package import module` imports the module; `from module import name` the module
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imported(name, path, known)) for name, path in known.items()}


def unit_of(module: str) -> str:
    """The longest unit of ALLOWED that `module` is or is inside."""
    units = [u for u in ALLOWED if module == u or module.startswith(u + ".")]
    assert units, f"{module} belongs to no unit: place it in docs/architecture.md and ALLOWED"
    return max(units, key=len)


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_finder_sees_lazy_and_type_only_imports() -> None:
    edges = graph()
    assert "adapter.transfer" in edges["adapter.sources"]  # inside a method
    assert "mappings.sdtm" in edges["adapter.sources"]  # under TYPE_CHECKING
    assert "adapter.client" in edges["adapter.transfer"]  # at the top
    assert (
        "adapter.analysis.stats" in edges["adapter.analysis.endpoints"]
    )  # from package import module
    assert "adapter.client._errors" in edges["adapter.client._bundle"]  # relative


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [{"a", "b", "c"}]


def test_every_import_follows_the_allowed_arrows() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in sorted(targets)
        if unit_of(target) != unit_of(module) and unit_of(target) not in ALLOWED[unit_of(module)]
    ]
    assert wrong == []


def test_the_mappings_import_nothing_of_the_adapter_and_the_client_only_the_error_root() -> None:
    arrows = [(module, target) for module, targets in graph().items() for target in targets]
    assert [a for a in arrows if a[0].startswith("mappings") and a[1].startswith("adapter")] == []
    assert [
        a
        for a in arrows
        if a[0].startswith("adapter.client")
        and a[1].startswith("mappings")
        and a[1] != "mappings.errors"  # the error root only: no mapping code
    ] == []


def test_no_import_cycle_between_modules() -> None:
    found = cycles(graph())
    assert [c for c in found if c not in KNOWN_CYCLES] == []
