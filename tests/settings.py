"""Settings for the test suite: the project's settings with a small, offline ML configuration.

pytest-django reads settings before any conftest runs, so these defaults are set here (and,
being environment variables, they reach worker subprocesses too). A variable already set in the
environment wins.
"""

import os

for name, value in {
    "ML_WEIGHTS": "none",
    "ML_IMAGE_SIZE": "64",
    "ML_DEVICE": "cpu",
    "ML_LOADER_WORKERS": "0",
    "ML_BATCH_SIZE": "16",
}.items():
    os.environ.setdefault(name, value)

from curation.settings import *  # noqa: E402,F401,F403
