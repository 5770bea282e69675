"""What the Lambda runtime hands a handler, for the handler tests: a fresh module per execution
environment, the context object, SQS batches shaped as the event source mapping sends them, and the
function's environment variables.

Handler modules are loaded by file path (``functions/`` is not a package); every call loads a fresh copy,
which is exactly what a new Lambda execution environment does.
"""

from __future__ import annotations

import importlib.util
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from shoprec.artifacts import Bundle
from shoprec.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the Lambda runtime's context object that Powertools and Mangum read."""

    function_name: str = "shoprec-api"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:shoprec-api"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_handler(name: str) -> ModuleType:
    path = ROOT / "functions" / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"shoprec_function_{name}_{uuid.uuid4().hex}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_function_env(monkeypatch: pytest.MonkeyPatch, bundle_dir: Path, state_db: Path) -> None:
    """The environment variables of a function serving ``bundle_dir`` with sqlite state in ``state_db``
    (no idempotency table), with metrics on; settings are read afresh on next use."""
    monkeypatch.setenv("SHOPREC_ARTIFACTS", str(bundle_dir))
    monkeypatch.setenv("SHOPREC_STATE", f"sqlite:///{state_db}")
    monkeypatch.setenv("SHOPREC_CACHE", "memory://")
    monkeypatch.setenv("SHOPREC_RANKER", "onnx")
    monkeypatch.delenv("SHOPREC_IDEMPOTENCY_TABLE", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    get_settings.cache_clear()


def sqs_event(*bodies: str) -> dict[str, Any]:
    """An SQS event source mapping batch with one record per message body."""
    return {
        "Records": [
            {
                "messageId": f"059f36b4-87a3-44ab-83d2-66197583{i:04d}",
                "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{i}...",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1773100239183",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1773100239185",
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:shoprec-events",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def popular(bundle: Bundle, n: int) -> list[str]:
    return [bundle.item_ids[int(i)] for i in np.argsort(-bundle.popularity, kind="stable")[:n]]
