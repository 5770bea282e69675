"""Fixtures of the end-to-end tier: a real bundle built the way the integration tier builds it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

FACTORY = Path(__file__).resolve().parents[1] / "integration" / "bundle_factory.py"


def _bundle_factory() -> ModuleType:
    # By path: the integration folder is not a package the e2e tier may import from.
    spec = importlib.util.spec_from_file_location("shoprec_e2e_bundle_factory", FACTORY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, scientific_dir: Path) -> Path:
    """A verified Amazon Scientific bundle with a tiny untrained ONNX ranker (real item ids)."""
    pytest.importorskip("torch", reason="building the test bundle needs the train extra")
    out = tmp_path_factory.mktemp("bundles") / "scientific"
    _bundle_factory().build_bundle(out, dataset_dir=scientific_dir)
    return out
