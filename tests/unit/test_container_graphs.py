"""The composition root builds two graphs: the API's, and the ingest function's, which has no ranker; both
load the served version they are handed instead of looking it up a second time."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.unit.fakes import DictCache, DictStateStore, FakeRanker

from shoprec import observability
from shoprec.container import (
    IngestContainer,
    LazyGraph,
    artifact_store_for,
    build_container,
    build_ingest_container,
)
from shoprec.domain import Event, EventType
from shoprec.errors import ArtifactError, BackendUnavailableError, InvalidInputError
from shoprec.services.events import AUDIT_EVENT, user_hash
from shoprec.services.recommendation import user_cache_tag
from shoprec.settings import Settings


def onnx_settings(bundle_dir: Path, tmp_path: Path) -> Settings:
    # The tiny bundle's ranker.onnx is a placeholder onnxruntime cannot load: building a ranker fails.
    return Settings(artifacts=str(bundle_dir), state=f"sqlite:///{tmp_path}/state.db", ranker="onnx")


def view(event_id: str, user_id: str, item_id: str) -> Event:
    return Event(event_id, user_id, item_id, EventType.VIEW, datetime(2026, 1, 1, tzinfo=UTC))


def test_the_ingest_graph_builds_no_ranker_where_the_api_graph_must(bundle_dir: Path, tmp_path: Path) -> None:
    settings = onnx_settings(bundle_dir, tmp_path)
    with pytest.raises(ArtifactError, match="cannot load the ONNX ranker"):
        build_container(settings)
    ingest = build_ingest_container(settings)
    assert {f.name for f in fields(IngestContainer)}.isdisjoint({"ranker", "pipeline", "recommendations"})
    assert set(ingest.backends()) == {"artifacts", "state", "cache"}
    assert ingest.model_version == ingest.bundle.manifest.model_version


def test_the_ingest_graph_applies_known_items_refuses_unknown_ones_and_invalidates(
    bundle_dir: Path, tmp_path: Path
) -> None:
    state, cache = DictStateStore(), DictCache()
    ingest = build_ingest_container(onnx_settings(bundle_dir, tmp_path), state=state, cache=cache)
    cache.set("list:u1", b"[]", 60, tags=[user_cache_tag("u1")])

    assert ingest.events.ingest([view("e1", "u1", "p0")]).applied == 1
    assert cache.get("list:u1") is None
    with pytest.raises(InvalidInputError, match="not in the catalogue"):
        ingest.events.ingest([view("e2", "u1", "no-such-item")])


@dataclass(frozen=True)
class Built:
    model_version: str


def test_a_lazy_graph_builds_the_version_it_looked_up_and_rebuilds_on_a_change() -> None:
    served = ["v1"]
    asked: list[str | None] = []

    def factory(version: str | None) -> Built:
        asked.append(version)
        return Built(f"built-{version}")

    lazy = LazyGraph(factory, current_version=lambda: served[0])
    assert lazy.get().model_version == "built-v1"
    assert lazy.get().model_version == "built-v1"
    served[0] = "v2"
    assert lazy.get().model_version == "built-v2"
    assert asked == ["v1", "v2"]


def test_a_lazy_graph_without_a_version_source_builds_once_with_none() -> None:
    asked: list[str | None] = []
    lazy = LazyGraph(lambda version: asked.append(version) or Built("only"))
    assert lazy.get() is lazy.get()
    assert asked == [None]
    assert lazy.built


def test_a_failed_lookup_keeps_serving_the_built_graph() -> None:
    answers = iter(["v1"])

    def current() -> str:
        for answer in answers:
            return answer
        raise BackendUnavailableError("SSM is down")

    lazy = LazyGraph(lambda version: Built(f"built-{version}"), current_version=current)
    first = lazy.get()
    assert lazy.get() is first
    assert first.model_version == "built-v1"


def test_a_given_version_names_the_folder_under_the_models_root_without_a_lookup(tmp_path: Path) -> None:
    # No SSM reachable (no endpoint, no credentials): a lookup would fail, the given version needs none.
    settings = Settings(artifacts=str(tmp_path), model_version_parameter="/shoprec/test/version")
    (tmp_path / "v7").mkdir()
    store = artifact_store_for(settings, "v7")
    assert store.describe().endswith("/v7")


@pytest.mark.parametrize("graph", ["api", "ingest"])
def test_both_graphs_name_deleted_users_with_the_configured_audit_key(
    graph: str, bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(observability.logger.registered_handler, "stream", audit := io.StringIO())
    settings = Settings(artifacts=str(bundle_dir), state=f"sqlite:///{tmp_path}/state.db", audit_key="a" * 32)
    state, cache = DictStateStore(), DictCache()
    events = (
        build_container(settings, state=state, cache=cache, ranker=FakeRanker()).events
        if graph == "api"
        else build_ingest_container(settings, state=state, cache=cache).events
    )
    events.delete_user("u-gone")
    (record,) = [json.loads(line) for line in audit.getvalue().splitlines() if AUDIT_EVENT in line]
    assert record["user_hash"] == user_hash("u-gone", b"a" * 32)
    assert record["user_hash"] != user_hash("u-gone")  # not the built-in key


def test_an_audit_key_shorter_than_16_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="audit_key"):
        Settings(audit_key="short")
