"""The held-out window (shoprec.evaluation.window): the cut, the split, the cases, and the leakage guard."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shoprec.artifacts import Manifest
from shoprec.data import load_dataset
from shoprec.data.loaders import with_events
from shoprec.errors import ArtifactError, DataFormatError
from shoprec.evaluation.window import (
    check_trained_before_cut,
    cut_time,
    held_out_cases,
    read_log,
    split_log,
    training_dataset,
    write_training_log,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
CUT = (T0 + timedelta(days=10)).timestamp()


def _record(event_id: str, user: str, item: str, days: float) -> dict[str, object]:
    return {
        "event_id": event_id,
        "user_id": user,
        "item_id": item,
        "timestamp": (T0 + timedelta(days=days)).isoformat(),
    }


def write_log(root: Path) -> Path:
    """u1: a, b before the cut, c at it, d after; u2: a before, b after; u3: only after (cold); u4: only
    before. One duplicate delivery and one line a crash cut short."""
    first = [_record("1", "u1", "a", 1), _record("2", "u1", "b", 2), _record("3", "u2", "a", 3)]
    first.append(_record("1", "u1", "a", 1))  # at-least-once: the same event again
    second = [_record("4", "u1", "d", 12), _record("5", "u1", "c", 10), _record("6", "u2", "b", 11)]
    second += [_record("7", "u3", "a", 11), _record("8", "u4", "c", 4)]
    (root / "date=2026-11-01").mkdir(parents=True)
    (root / "date=2026-11-01" / "part-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first))
    (root / "date=2026-11-11").mkdir()
    cut_short = json.dumps(_record("9", "u2", "z", 13))[:30]
    (root / "date=2026-11-11" / "part-1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in second) + cut_short
    )
    return root


def test_read_log_keeps_the_first_of_each_event_and_complete_lines_only(tmp_path: Path) -> None:
    events = read_log(write_log(tmp_path / "log"))
    assert [(e.user_id, e.item_id) for e in events] == [
        ("u1", "a"),
        ("u1", "b"),
        ("u2", "a"),
        ("u1", "d"),
        ("u1", "c"),
        ("u2", "b"),
        ("u3", "a"),
        ("u4", "c"),
    ]
    assert events[0].at == T0.timestamp() + 86400


def test_read_log_names_a_bad_record(tmp_path: Path) -> None:
    (tmp_path / "date=2026-11-01").mkdir()
    bad = tmp_path / "date=2026-11-01" / "p.jsonl"
    bad.write_text(json.dumps(_record("1", "u1", "a", 1)) + "\n" + '{"event_id": "2", "user_id": "u1"}\n')
    with pytest.raises(DataFormatError, match="missing 'item_id'") as info:
        read_log(tmp_path)
    assert info.value.line == 2


def test_the_default_cut_is_the_newest_event_less_the_holdout(tmp_path: Path) -> None:
    events = read_log(write_log(tmp_path / "log"))
    assert cut_time(events, holdout=timedelta(days=2)) == (T0 + timedelta(days=10)).timestamp()
    with pytest.raises(ValueError, match="positive"):
        cut_time(events, holdout=timedelta(0))


def test_an_event_at_the_cut_is_held_out_and_never_written_for_training(tmp_path: Path) -> None:
    root = write_log(tmp_path / "log")
    split = split_log(read_log(root), CUT)
    assert all(e.at < CUT for e in split.before)
    assert sorted(e.item_id for e in split.window if e.user_id == "u1") == ["c", "d"]  # c is at the cut
    out = write_training_log(split, root, tmp_path / "train")
    written = [json.loads(line) for f in sorted(out.rglob("*.jsonl")) for line in f.read_text().splitlines()]
    assert sorted(r["event_id"] for r in written) == ["1", "2", "3", "8"]
    assert max(datetime.fromisoformat(str(r["timestamp"])).timestamp() for r in written) < CUT
    assert (out / "date=2026-11-01" / "part-1.jsonl").is_file()  # the log's own layout
    trained_on = training_dataset(out, None)
    assert dict(
        zip(
            trained_on.user_ids,
            ([trained_on.item_ids[i] for i in s] for s in trained_on.sequences),
            strict=True,
        )
    ) == {
        "u1": ["a", "b"],
        "u2": ["a"],
        "u4": ["c"],
    }


def test_a_cut_with_an_empty_side_is_refused(tmp_path: Path) -> None:
    events = read_log(write_log(tmp_path / "log"))
    with pytest.raises(ValueError, match="nothing to train on"):
        split_log(events, T0.timestamp())
    with pytest.raises(ValueError, match="window is empty"):
        split_log(events, (T0 + timedelta(days=30)).timestamp())


def test_each_window_user_is_one_case_its_first_event_after_its_training_history(tmp_path: Path) -> None:
    root = write_log(tmp_path / "log")
    split = split_log(read_log(root), CUT)
    trained_on = training_dataset(write_training_log(split, root, tmp_path / "train"), None)
    cases = held_out_cases(split, trained_on, known=["a", "b", "c", "x"])
    assert cases.user_ids == ["u1", "u2"]
    assert cases.histories == [["a", "b"], ["a"]]
    assert cases.targets == ["c", "b"]  # u1's first window event is c (at the cut), not d
    assert (cases.window_users, cases.dropped) == (3, {"cold": 1, "unknown_item": 0})
    # A target the served bundle does not know is no fair case for it.
    assert held_out_cases(split, trained_on, known=["a", "c"]).dropped == {"cold": 1, "unknown_item": 1}


def _manifest(fingerprint: str) -> Manifest:
    return Manifest(
        schema_version=1,
        model_version="sha256:" + "0" * 64,
        created_at="2026-11-12T00:00:00+00:00",
        dataset={"fingerprint": fingerprint},
        hyperparameters={},
        metrics={},
        files=(),
    )


def test_a_bundle_trained_on_the_window_is_refused(tmp_path: Path) -> None:
    root = write_log(tmp_path / "log")
    split = split_log(read_log(root), CUT)
    pre_cut = training_dataset(write_training_log(split, root, tmp_path / "train"), None)
    check_trained_before_cut(_manifest(pre_cut.fingerprint()), pre_cut, "new")
    full_log = load_dataset(root, "eventlog")
    with pytest.raises(ArtifactError, match="may have seen the held-out window"):
        check_trained_before_cut(_manifest(full_log.fingerprint()), pre_cut, "new")


def test_with_a_base_the_training_data_is_the_base_then_the_pre_cut_log(tmp_path: Path) -> None:
    root = write_log(tmp_path / "log")
    (tmp_path / "base.txt").write_text("u1 x y z\nu9 x y\n")
    split = split_log(read_log(root), CUT)
    log = write_training_log(split, root, tmp_path / "train")
    trained_on = training_dataset(log, tmp_path / "base.txt")
    expected = with_events(load_dataset(tmp_path / "base.txt"), load_dataset(log, "eventlog"))
    assert trained_on.fingerprint() == expected.fingerprint()
    cases = held_out_cases(split, trained_on, known=["a", "b", "c", "x", "y", "z"])
    assert cases.histories[0] == ["x", "y", "z", "a", "b"]
