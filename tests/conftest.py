"""Suite-wide settings: property tests draw the same examples on every run.

CI runs on whatever machine the next session gets, so a property test that
explores new random examples on each run could fail a landing on an edge case
no change introduced.  The default profile is derandomized (examples derived from
each test's name); `HYPOTHESIS_PROFILE=explore python -m pytest` searches afresh
with more examples, which is how new edge cases are found and then pinned as
regression tests.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
