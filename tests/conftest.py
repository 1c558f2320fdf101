"""Shared fixtures: where the shared data folder is (beside the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# the same examples on every run and machine: a property that fails shows on every run, not by chance in CI
settings.register_profile("ccalens", derandomize=True, database=None)
settings.load_profile("ccalens")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"the shared data folder {SHARED} is not present")
    return SHARED


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The BLAS/OpenMP libraries, kernels and thread counts of this run (floats computed two ways depend on them)."""
    import os

    import numpy  # noqa: F401  (loads its BLAS, so that threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                   if k in os.environ) or "no thread or kernel variables set"
    pools = [f"{p.get('internal_api')} {p.get('version')} {p.get('architecture', '')} threads={p.get('num_threads')}"
             for p in threadpool_info()]
    return [f"numerics: {env}; " + "; ".join(pools)]
