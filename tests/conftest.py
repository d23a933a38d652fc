"""Test-wide settings: under CI, Hypothesis draws a fixed (derandomised) set of examples.

Why: a landing must not depend on the luck of the draw; random exploration happens on developers'
machines, where a new failing example is saved to the local database and fixed before it lands.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
