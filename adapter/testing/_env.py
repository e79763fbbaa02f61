"""What the test tooling reads from the environment: the HAPI URL variable and whether this is CI
(apart from the plugin in `adapter.testing`, so its fixtures import it without importing the plugin)."""

from __future__ import annotations

import os

ENV_URL = "TRIALFHIR_HAPI_URL"


def on_ci() -> bool:
    """True when running on CI (``CI`` set to true/1/yes, as CI services do)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
