"""The analysis package's public surface, and its place in the architecture."""

from __future__ import annotations

import ast
from pathlib import Path

import adapter.analysis

PACKAGE = Path(adapter.analysis.__file__).parent


def _isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions (ruff RUF022's order)."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_importable() -> None:
    names = adapter.analysis.__all__
    assert names == sorted(names, key=_isort_key)
    for name in names:
        assert hasattr(adapter.analysis, name), name


def test_the_analysis_never_imports_a_client_or_an_http_library() -> None:
    forbidden = ("adapter.client", "adapter.transfer", "httpx")
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(forbidden), (path.name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(forbidden), (path.name, alias.name)


def test_the_analysis_does_not_log() -> None:
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert "import logging" not in text and "print(" not in text, path.name
