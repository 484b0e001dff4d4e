"""Hypothesis settings for the hostile-input tests.

`derandomize` makes every run generate the same examples, so a failure in CI is one that reproduces
locally; no example database is written into the work tree. `HYPOTHESIS_PROFILE=explore` drops the
fixed seed for a longer, random search when hunting for new failures.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "explore", max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
