"""``shoprec batch`` on the whole Amazon Scientific dataset (8,317 users) with the factory bundle: a line for
every user, each the list ``GET /v1/recommendations`` serves for that user's imported history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from shoprec.api.app import create_app
from shoprec.artifacts import read_manifest
from shoprec.cli import app
from shoprec.container import build_container
from shoprec.data import Dataset, load_dataset
from shoprec.domain import MAX_RECENT_ITEMS
from shoprec.services.importer import import_histories
from shoprec.settings import Settings

K = 20
runner = CliRunner()


@pytest.fixture(scope="module")
def scientific(scientific_dir: Path) -> Dataset:
    return load_dataset(scientific_dir)


@pytest.fixture(scope="module")
def lines(bundle_dir: Path, scientific_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The batch file of every Scientific user, the dataset named relative to the data root."""
    out = tmp_path_factory.mktemp("batch") / "campaign" / "recs.jsonl"
    result = runner.invoke(
        app,
        [
            "batch", "--artifacts", str(bundle_dir), "--dataset", scientific_dir.name,
            "--data-root", str(scientific_dir.parent), "--out", str(out), "--k", str(K), "--threads", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "8317 users" in result.output
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_every_user_of_the_dataset_gets_one_line_of_k_unseen_catalogue_items(
    lines: list[Any], scientific: Dataset, bundle_dir: Path
) -> None:
    assert [line["user_id"] for line in lines] == scientific.user_ids
    assert len(lines) == scientific.n_users == 8317
    version = read_manifest(bundle_dir).model_version
    known = set(scientific.item_ids)
    for line, seq in zip(lines, scientific.sequences, strict=True):
        assert set(line) == {"user_id", "items", "model_version"}
        assert line["model_version"] == version
        assert len(line["items"]) == len(set(line["items"])) == K
        assert set(line["items"]) <= known
        seen = {scientific.item_ids[i] for i in seq[-MAX_RECENT_ITEMS:].tolist()}
        assert not seen & set(line["items"])


def test_each_line_is_what_the_api_serves_after_importing_the_same_history(
    lines: list[Any], scientific: Dataset, bundle_dir: Path, tmp_path: Path
) -> None:
    # Users with the longest histories (cut to the state store's 50) and a few ordinary ones.
    by_length = sorted(range(scientific.n_users), key=lambda u: -len(scientific.sequences[u]))
    rows = [*by_length[:3], 0, 1234, 8316]
    few = Dataset(
        name="few",
        source="few",
        item_ids=scientific.item_ids,
        user_ids=[scientific.user_ids[u] for u in rows],
        sequences=[scientific.sequences[u] for u in rows],
    )
    # A budget no shared test machine exhausts: a degraded answer would be a different list. The batch
    # lists the bundle's pipeline, so the API here blends no live counts from the imported events.
    settings = Settings(
        artifacts=str(bundle_dir),
        state=f"sqlite:///{tmp_path / 'state.db'}",
        latency_budget_ms=30_000,
        online_updates=False,
    )
    container = build_container(settings)
    import_histories(container.events, few)
    client = TestClient(create_app(container))
    assert max(len(s) for s in few.sequences) > MAX_RECENT_ITEMS

    for u in rows:
        user = scientific.user_ids[u]
        response = client.get(f"/v1/recommendations/{user}", params={"k": K})
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body["degraded"]
        assert lines[u]["user_id"] == user
        assert lines[u]["items"] == [item["item_id"] for item in body["items"]]
        assert lines[u]["model_version"] == body["model_version"]


def test_a_missing_dataset_is_named_and_the_previous_file_is_kept(bundle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "recs.jsonl"
    out.write_text("yesterday\n", encoding="utf-8")
    result = runner.invoke(
        app,
        ["batch", "--artifacts", str(bundle_dir), "--dataset", "no-such-dataset", "--out", str(out)],
    )
    assert result.exit_code == 2
    assert "dataset 'no-such-dataset' not found" in result.output
    assert out.read_text(encoding="utf-8") == "yesterday\n"


def test_a_malformed_user_id_file_is_refused_naming_the_line(
    bundle_dir: Path, scientific_dir: Path, tmp_path: Path
) -> None:
    users = tmp_path / "users.csv"
    users.write_text("user_id,segment\nA1,new\n", encoding="utf-8")
    result = runner.invoke(
        app,
        [
            "batch", "--artifacts", str(bundle_dir), "--dataset", str(scientific_dir),
            "--out", str(tmp_path / "recs.jsonl"), "--users", str(users),
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "line 1, field 'user_id'" in result.output
    assert "one id per line" in result.output
    assert not (tmp_path / "recs.jsonl").exists()


def test_a_user_id_file_picks_the_users_and_their_order(
    lines: list[Any], scientific: Dataset, bundle_dir: Path, scientific_dir: Path, tmp_path: Path
) -> None:
    picked = [scientific.user_ids[5], scientific.user_ids[2]]
    users = tmp_path / "users.txt"
    users.write_text("\n".join(picked) + "\n", encoding="utf-8")
    out = tmp_path / "recs.jsonl"
    result = runner.invoke(
        app,
        [
            "batch", "--artifacts", str(bundle_dir), "--dataset", str(scientific_dir), "--out", str(out),
            "--users", str(users), "--threads", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == [lines[5], lines[2]]
