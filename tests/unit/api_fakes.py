"""The API over the tiny hand-made catalogue: a real container (real services, real composition root)
whose state store, cache and ranker are the in-memory fakes of ``tests.unit.fakes``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from tests.unit.fakes import DictCache, DictStateStore, FakeRanker, catalog_rows, make_bundle

from shoprec.api.app import create_app
from shoprec.artifacts import (
    CATALOG,
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    ITEMCF,
    POPULARITY,
    RANKER_ONNX,
    BundleWriter,
)
from shoprec.container import Container, build_container
from shoprec.settings import Settings


def write_tiny_bundle(out: Path) -> Path:
    """The fakes' twelve-item bundle written to ``out`` as a real, checksummed bundle folder."""
    bundle = make_bundle()
    rows = catalog_rows()
    with BundleWriter(out) as writer:
        writer.add_json(ITEM_IDS, bundle.item_ids)
        writer.add_npy(POPULARITY, bundle.popularity)
        writer.add_npz(ITEMCF, {"indices": bundle.itemcf_indices, "scores": bundle.itemcf_scores})
        writer.add_npy(ITEM_EMBEDDINGS, bundle.item_embeddings)
        writer.add_jsonl(CATALOG, [rows[i] for i in bundle.item_ids if i in rows])
        # Listed because the pipeline names it; never loaded: the API tests rank with a fake.
        writer.add_bytes(RANKER_ONNX, b"placeholder: these tests rank with tests.unit.fakes.FakeRanker\n")
        writer.commit(
            dataset=dict(bundle.manifest.dataset),
            hyperparameters={},
            metrics={},
            pipeline=bundle.pipeline,
        )
    return out


@dataclass
class Api:
    client: TestClient
    container: Container
    state: DictStateStore
    cache: DictCache
    ranker: FakeRanker


def make_api(bundle_dir: Path, **settings: Any) -> Api:
    """A TestClient on the app for ``bundle_dir`` with fake backends; ``settings`` override the rest."""
    state, cache, ranker = DictStateStore(), DictCache(), FakeRanker()
    container = build_container(
        Settings(artifacts=str(bundle_dir), **settings), state=state, cache=cache, ranker=ranker
    )
    client = TestClient(create_app(container), raise_server_exceptions=False)
    return Api(client=client, container=container, state=state, cache=cache, ranker=ranker)


def assert_problem(response: Any, status: int, *fields: str) -> dict[str, Any]:
    """``response`` is problem+json with ``status`` whose ``errors`` name exactly ``fields`` (in order)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= body.keys()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    assert [e["field"] for e in body.get("errors", [])] == list(fields)
    return body
