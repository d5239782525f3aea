"""Shared test settings: hypothesis without per-example deadlines (CI machines are shared and
their timing is noise; the properties, not the speed, are under test)."""

from hypothesis import settings

settings.register_profile("actlab", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("actlab")


import os  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

#: benchmarks/ holds the fast-path checks (fast_check.py) that tests and benchmarks/gpu_check.sh share
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))


@pytest.fixture
def fast_path_forced():
    """actlab's own kernels at every size inside the test: the dispatch policy's size floor
    dropped to 0 and torch's NATIVE ops for none (``actlab.fast.dispatch``); nothing global is
    mutated, and the policy is back when the test ends."""
    from actlab import fast

    with fast.dispatch(min_numel=0, native_max_bytes=-1) as policy:
        yield policy
