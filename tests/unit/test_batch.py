"""Batch recommendations on the tiny catalogue: the API's lists for every user, written atomically."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from tests.unit.fakes import (
    MODEL_VERSION,
    DictCache,
    DictStateStore,
    FakeRanker,
    make_bundle,
    make_catalog,
    make_pipeline,
    make_service,
)

from shoprec.data.model import Dataset
from shoprec.domain import MAX_RECENT_ITEMS
from shoprec.errors import DataFormatError, NotFoundError
from shoprec.ports import Instance
from shoprec.services.batch import read_user_ids, user_histories, write_batch

# Dataset ids are not the bundle's order; "gone" is an item the bundle does not know.
ITEMS = ["p5", "p0", "p1", "p2", "p3", "p6", "gone", "p9"]
USERS = {
    "u1": ["p0", "p1"],
    "u2": ["p2", "gone", "p3"],
    "u3": ["p5", "p6", "p9"],
    "u4": ["gone"],
    "u5": ["p3", "p2", "p0", "p9", "p5"],
}


def dataset(users: dict[str, list[str]] = USERS) -> Dataset:
    return Dataset(
        name="tiny",
        source="tiny-dataset",
        item_ids=list(ITEMS),
        user_ids=list(users),
        sequences=[np.asarray([ITEMS.index(i) for i in seq], dtype=np.int64) for seq in users.values()],
    )


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("batch_size", [1, 2, 256])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_each_line_is_the_list_the_service_returns_for_that_users_history(
    tmp_path: Path, batch_size: int, k: int
) -> None:
    bundle = make_bundle()
    service = make_service(bundle, DictStateStore(USERS), DictCache(), FakeRanker())
    pipeline = make_pipeline(bundle, FakeRanker())
    users = user_histories(dataset(), pipeline.catalog)

    summary = write_batch(
        pipeline, users, tmp_path / "recs.jsonl", k=k, model_version=MODEL_VERSION, batch_size=batch_size
    )

    lines = read_lines(tmp_path / "recs.jsonl")
    assert [line["user_id"] for line in lines] == list(USERS)
    for line in lines:
        served = service.recommend(str(line["user_id"]), k=k)
        assert line["items"] == [item.item_id for item in served.items]
        assert line["model_version"] == served.model_version == MODEL_VERSION
    assert (summary.users, summary.cold, summary.degraded, summary.unknown_items) == (5, 1, 0, 2)


def test_histories_keep_what_the_state_store_keeps_and_leave_unknown_items_out() -> None:
    catalog = make_catalog()
    long = {"long": [ITEMS[i % 6] for i in range(MAX_RECENT_ITEMS + 7)], **USERS}
    users = user_histories(dataset(long), catalog)
    assert users.histories[0].size == MAX_RECENT_ITEMS
    expected = catalog.indices([ITEMS[i % 6] for i in range(7, MAX_RECENT_ITEMS + 7)])
    np.testing.assert_array_equal(users.histories[0], expected)
    np.testing.assert_array_equal(users.histories[2], catalog.indices(["p2", "p3"]))
    assert users.histories[4].size == 0  # u4 saw only an item the bundle lacks
    assert users.unknown_items == 2


def test_asked_users_come_in_the_given_order_and_strangers_get_the_cold_start_list(tmp_path: Path) -> None:
    bundle = make_bundle()
    pipeline = make_pipeline(bundle, FakeRanker())
    service = make_service(bundle, DictStateStore(), DictCache(), FakeRanker())
    users = user_histories(dataset(), pipeline.catalog, ["u3", "stranger", "u1"])
    assert users.not_in_dataset == 1

    summary = write_batch(pipeline, users, tmp_path / "recs.jsonl", k=5, model_version=MODEL_VERSION)

    lines = read_lines(tmp_path / "recs.jsonl")
    assert [line["user_id"] for line in lines] == ["u3", "stranger", "u1"]
    assert lines[1]["items"] == [item.item_id for item in service.recommend("stranger", k=5).items]
    assert summary.cold == 1


def test_a_failing_ranker_is_counted_as_degraded_not_hidden(tmp_path: Path) -> None:
    ranker = FakeRanker()
    ranker.fail = True
    pipeline = make_pipeline(make_bundle(), ranker)
    users = user_histories(dataset(), pipeline.catalog)
    summary = write_batch(pipeline, users, tmp_path / "recs.jsonl", k=3, model_version=MODEL_VERSION)
    assert summary.degraded == 4  # every user with a history; u4's cold-start list asks no ranker
    assert len(read_lines(tmp_path / "recs.jsonl")) == 5


def test_a_run_that_fails_half_way_leaves_the_previous_file_and_no_temporary_one(tmp_path: Path) -> None:
    class BrokenOnSecondCall(FakeRanker):
        def score_many(self, instances: Sequence[Instance], *, timeout_s: float) -> list[list[float]]:
            if self.calls:
                raise RuntimeError("ranker bug")
            return super().score_many(instances, timeout_s=timeout_s)

    pipeline = make_pipeline(make_bundle(), BrokenOnSecondCall())
    users = user_histories(dataset(), pipeline.catalog)
    out = tmp_path / "recs.jsonl"
    out.write_text("yesterday's lists\n", encoding="utf-8")

    with pytest.raises(RuntimeError, match="ranker bug"):
        write_batch(pipeline, users, out, k=3, model_version=MODEL_VERSION, batch_size=2)

    assert out.read_text(encoding="utf-8") == "yesterday's lists\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recs.jsonl"]


def test_a_folder_as_output_is_refused(tmp_path: Path) -> None:
    pipeline = make_pipeline(make_bundle(), FakeRanker())
    users = user_histories(dataset(), pipeline.catalog)
    with pytest.raises(ValueError, match="is a folder"):
        write_batch(pipeline, users, tmp_path, k=3, model_version=MODEL_VERSION)


def test_user_id_files_take_one_id_a_line_and_keep_each_once(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("u3\n\n  u1 \nu3\nmail:someone@example.com\n", encoding="utf-8")
    assert read_user_ids(path) == ["u3", "u1", "mail:someone@example.com"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("u1\nu2 u3\n", 2),  # two ids on a line
        ('u1\n{"user_id": "u2"}\n', 2),  # JSON lines are not this format
        ("u1\n\n" + "x" * 129 + "\n", 3),
    ],
)
def test_a_line_that_is_not_a_user_id_is_named(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "users.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match=f"line {line}, field 'user_id'") as err:
        read_user_ids(path)
    assert str(path) in str(err.value)


def test_an_empty_or_missing_user_id_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no user ids"):
        read_user_ids(empty)
    with pytest.raises(NotFoundError, match="no such file"):
        read_user_ids(tmp_path / "missing.txt")
