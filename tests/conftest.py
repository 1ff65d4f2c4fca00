"""Suite-wide settings."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def single_threaded_blas():
    """One BLAS thread: the suite's matrices are small and CI has 2 cores.

    Multithreaded BLAS next to TensorFlow's own threads made GP fits (ours and
    KerasTuner's) 5-50x slower in measurements on the 2-core machine.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield
