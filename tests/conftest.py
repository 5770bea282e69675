"""Fixtures shared by every test tier: where the real datasets live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_ROOT = Path(
    os.environ.get("SHOPREC_DATA_ROOT") or Path(__file__).resolve().parents[2] / "shared" / "data"
)


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA_ROOT.is_dir():
        pytest.skip(f"real data folder {DATA_ROOT} is absent (set SHOPREC_DATA_ROOT)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def scientific_dir(data_root: Path) -> Path:
    return data_root / "amazon-scientific"


@pytest.fixture(scope="session")
def beauty_file(data_root: Path) -> Path:
    return data_root / "amazon-beauty" / "sequences.txt"
