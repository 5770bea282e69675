"""template.yaml as data, parsed by scripts/layer_sizes.py (CloudFormation's short tags to long form)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def _load_layer_sizes() -> ModuleType:
    name = "shoprec_layer_sizes"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "layer_sizes.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


layer_sizes = _load_layer_sizes()


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    data: dict[str, Any] = layer_sizes.load_template(path)
    return data


def props(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """The ``Properties`` of resource ``logical_id``."""
    p: dict[str, Any] = resources[logical_id]["Properties"]
    return p
