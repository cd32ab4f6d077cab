"""Test settings shared by every test module: hypothesis profiles.

``ci`` (the default) runs each property on 200 examples chosen deterministically, so CI is
repeatable and fast; ``thorough`` tries 5,000 fresh random examples per property, for a local
run before a release::

    HYPOTHESIS_PROFILE=thorough python -m pytest
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.register_profile("thorough", max_examples=5_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
