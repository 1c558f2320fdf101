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
