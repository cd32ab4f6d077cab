"""Test settings shared by every test module: hypothesis profiles.

``dev`` (the default) runs each property on 20 examples chosen deterministically, so the
default run is repeatable and fast; ``ci`` (what ``.ci/run`` selects) on 200, also
deterministic; ``thorough`` tries 5,000 fresh random examples per property, for a local run
before a release. Choose one with pytest's ``--hypothesis-profile`` or ``HYPOTHESIS_PROFILE``::

    python -m pytest --hypothesis-profile=thorough

A property that sets its own ``max_examples`` states it as a share of the profile's
(``settings.default.max_examples``), so every profile scales it.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=20, deadline=None, derandomize=True)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.register_profile("thorough", max_examples=5_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
