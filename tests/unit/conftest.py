"""Fixtures shared by the API unit tests: one tiny bundle on disk and an app built over it with fakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.api_fakes import Api, make_api, write_tiny_bundle


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bundle(tmp_path_factory.mktemp("api") / "tiny")


@pytest.fixture
def api(bundle_dir: Path) -> Api:
    return make_api(bundle_dir)
