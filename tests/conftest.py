"""Test settings shared by every test module: hypothesis profiles, and signals as a terminal
gives them.

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
import signal

from hypothesis import settings

settings.register_profile("dev", max_examples=20, deadline=None, derandomize=True)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.register_profile("thorough", max_examples=5_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# A test run started as a background job (``nohup``, ``&`` in a script) inherits SIGINT (and
# perhaps SIGTERM) ignored, and the command line rightly keeps an ignored signal ignored; the
# tests of what Ctrl-C and SIGTERM do need them as a terminal gives them, here and in the
# processes the tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
