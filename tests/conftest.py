"""Shared pytest setup: make the repository root importable without installing the package."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tcomp import config  # noqa: E402

# Every test runs the loop-IR verifier after every pass of the pipeline.
config.set_settings(verify_ir=True)
