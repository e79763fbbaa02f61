"""The public surface: one sorted ``__all__``, every name importable, nothing else needed."""

from __future__ import annotations

import logging

import adapter.client as client_api


def test_all_is_sorted_and_unique() -> None:
    assert client_api.__all__ == sorted(set(client_api.__all__))


def test_every_public_name_exists() -> None:
    missing = [name for name in client_api.__all__ if not hasattr(client_api, name)]
    assert missing == []


def test_public_classes_say_what_they_are_for() -> None:
    undocumented = [
        name
        for name in client_api.__all__
        if isinstance(getattr(client_api, name), type) and not getattr(client_api, name).__doc__
    ]
    assert undocumented == []


def test_httpx_loggers_are_kept_at_warning() -> None:
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING
