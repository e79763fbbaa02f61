"""Fuzz: the reanalysis on mutated trials that still read (the cases of test_fuzz_tables).

Property: `analyze` gives results for E1-E8 (an endpoint that cannot be computed says why, value by
value), never an exception; the results serialise to strict JSON (no NaN or Infinity in results.json).
"""

from __future__ import annotations

import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import event, given

import adapter.tables
from adapter.analysis import StudyDefinition, analyze, load_definition
from adapter.tables import read_trial

from .mutations import DALAKAS, fuzz_settings, run_guarded, undocumented
from .test_fuzz_tables import CsvCase, csv_cases

trial_frames: Any = getattr(adapter.tables, "trial_frames", None)
"""Before issue 9's move 4 the analysis took one DataFrame per domain (`trial_frames`); after it, the
Trial itself. Either way here, whatever the order the branches are merged in."""


@cache
def definition() -> StudyDefinition:
    return load_definition(DALAKAS / "study.json")


@fuzz_settings(40)
@given(case=csv_cases())
def test_the_reanalysis_of_a_mutated_trial_gives_results_never_an_exception(case: CsvCase) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = case.write(Path(tmp) / "trial")
        trial, error = run_guarded(lambda: read_trial(folder))
        if error is not None:
            return  # test_fuzz_tables checks the refusal
        results, error = run_guarded(
            lambda: analyze(
                trial if trial_frames is None else trial_frames(trial),
                definition(),
                source=str(folder),
            )
        )
        event(f"analysis: {type(error).__name__ if error else 'results'}")
        assert error is None, undocumented(error)
        for key, endpoint in results.endpoints.items():
            unexplained = [
                name
                for name, value in endpoint.values.items()
                if value is None and not endpoint.null_reasons.get(name)
            ]
            assert not unexplained, f"{key}: values missing without a reason: {unexplained}"
        json.loads(results.to_json(), parse_constant=_refuse)


def _refuse(name: str) -> None:
    raise AssertionError(f"results.json holds {name}: not strict JSON")
