"""One root for every error: a stable code per class, the exit code read from the class, the docs in step."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import adapter
import mappings
from adapter.cli import _common
from adapter.cli._common import exit_code_for
from mappings.errors import ExitCode, Problem, TrialfhirError

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
ERROR_ROW = re.compile(r"^\| `(\w+)` \| `(\w+)` \| `([\w.]+)` \| (\d+) \|$", re.MULTILINE)
EXIT_ROW = re.compile(r"^\| (\d+) \| ", re.MULTILINE)


def _every_module() -> None:
    for package in (adapter, mappings):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)


def _error_classes() -> list[type[TrialfhirError]]:
    _every_module()
    found: list[type[TrialfhirError]] = []
    pending: list[type[TrialfhirError]] = [TrialfhirError]
    while pending:
        cls = pending.pop()
        if cls.__module__.split(".")[0] in ("adapter", "mappings"):
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _documented() -> dict[str, tuple[str, str, int]]:
    """class name -> (code, module, exit) from the "Error codes" table of docs/cli.md."""
    rows = ERROR_ROW.findall(CLI_DOC)
    assert len(rows) >= 40
    return {name: (code, module, int(exit_code)) for code, name, module, exit_code in rows}


def test_every_error_class_declares_its_own_snake_case_code_and_no_two_share_one() -> None:
    classes = _error_classes()
    assert len(classes) >= 40
    without = [cls.__name__ for cls in classes if "code" not in vars(cls)]
    assert without == []
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert [c for c in codes if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", c)] == []
    assert all(isinstance(cls.exit_code, ExitCode) for cls in classes)


def test_every_exception_the_library_defines_derives_from_the_root() -> None:
    _every_module()
    outside: list[str] = []
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("adapter", "mappings") or module is None:
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not issubclass(value, TrialfhirError)
            ):
                outside.append(f"{name}.{value.__qualname__}")
    # The command line's own failures are click exceptions carrying their exit code (CommandError).
    assert [n for n in outside if not n.startswith("adapter.cli.")] == []


def test_the_error_code_table_in_the_docs_lists_every_public_class_with_its_code_and_exit() -> None:
    documented = _documented()
    public = {cls.__name__: cls for cls in _error_classes() if not cls.__name__.startswith("_")}
    assert sorted(documented) == sorted(public)
    for name, (code, module, exit_code) in documented.items():
        cls = public[name]
        assert (code, exit_code) == (cls.code, int(cls.exit_code)), name
        assert getattr(importlib.import_module(module), name) is cls, f"{name} from {module}"


def test_the_exit_code_tables_of_the_docs_and_of_common_name_the_same_codes() -> None:
    in_docs = CLI_DOC.split("### Error codes")[0].split("| code | meaning |")[1]
    in_common = (_common.__doc__ or "").split("| code | meaning |")[1]
    codes = [int(c) for c in EXIT_ROW.findall(in_docs)]
    assert codes == [int(c) for c in EXIT_ROW.findall(in_common)] == [int(e) for e in ExitCode]
    for member in ExitCode:
        if member is not ExitCode.DONE:
            assert getattr(_common, f"EXIT_{member.name}") == member.value


def test_the_exit_code_is_read_from_the_error() -> None:
    from adapter.analysis import DefinitionError
    from adapter.client import ResourceNotFound
    from adapter.tables import TableError
    from adapter.transfer import StudyNotFound
    from mappings.trial import ResourceRefused

    assert exit_code_for(TableError([Problem("dm.csv", 2, "AGE", "not a number")])) == 3
    assert (
        exit_code_for(DefinitionError("study.json", [Problem("study.json", None, "$", "x")])) == 3
    )
    assert exit_code_for(ResourceRefused("Observation.valueQuantity.value", "not a number")) == 3
    assert exit_code_for(StudyNotFound("no study")) == 6
    assert exit_code_for(ResourceNotFound.__new__(ResourceNotFound)) == 6
    assert exit_code_for(ValueError("a bug")) == 1
    assert exit_code_for(KeyError("a bug")) == 1


@pytest.mark.parametrize(
    ("module", "name", "builtin"),
    [
        ("adapter.analysis", "DefinitionError", ValueError),
        ("adapter.analysis.periods", "MissingInputError", LookupError),
        ("adapter.studies", "DefinitionNotFound", LookupError),
        ("adapter.transfer", "StudyNotFound", LookupError),
        ("adapter.client", "UnwritableResources", ValueError),
        ("adapter.tables", "XptLayoutError", ValueError),
        ("adapter.fhir_json", "JSONTooDeep", ValueError),
        ("mappings.trial", "ResourceRefused", ValueError),
    ],
)
def test_builtin_bases_that_callers_catch_are_kept(module: str, name: str, builtin: type) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, TrialfhirError) and issubclass(cls, builtin)


def test_one_problem_type_for_tables_definitions_and_fhir_files() -> None:
    from adapter.analysis.definition import Problem as DefinitionProblem
    from adapter.fhir_files import FhirFileError
    from mappings.sdtm import Problem as TableProblem

    assert DefinitionProblem is TableProblem is Problem
    assert FhirFileError("in.ndjson", 3, "not JSON").problems == [
        Problem("in.ndjson", 3, None, "not JSON")
    ]
    assert str(Problem("dm.csv", 2, "AGE", "not a number")) == "dm.csv, row 2, AGE: not a number"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_root_is_a_standard_library_leaf_and_the_clients_only_import_from_mappings() -> None:
    leaf = _imports(ROOT / "mappings" / "errors.py")
    assert {name.split(".")[0] for name in leaf} <= set(sys.stdlib_module_names) | {"__future__"}
    for path in sorted((ROOT / "adapter" / "client").glob("*.py")):
        from_mappings = {n for n in _imports(path) if n.split(".")[0] == "mappings"}
        assert from_mappings <= {"mappings.errors"}, path.name
    for path in sorted((ROOT / "mappings").rglob("*.py")):
        assert not {n for n in _imports(path) if n.split(".")[0] == "adapter"}, path.name
