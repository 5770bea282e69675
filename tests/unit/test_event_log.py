"""The local event log (JSON Lines under a folder), its wiring into the events service, and reading it back
as a dataset (alone, or appended to a base dataset)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.unit.api_fakes import make_api
from tests.unit.fakes import DictCache, DictStateStore, event, make_bundle, make_catalog

from shoprec.adapters.local.jsonl_event_log import JsonlEventLog
from shoprec.api.schemas import EventsRequest
from shoprec.container import event_log_for
from shoprec.data.loaders import detect_format, load_dataset, with_events
from shoprec.data.model import Dataset
from shoprec.domain import Event
from shoprec.errors import BackendUnavailableError
from shoprec.ports import EventLog
from shoprec.services.events import EventService
from shoprec.settings import Settings

DAY1 = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 0, 1, tzinfo=UTC)
CATALOG = make_catalog(make_bundle())


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def records(root: Path) -> list[dict[str, object]]:
    return [
        json.loads(line) for f in sorted(root.glob("date=*/*.jsonl")) for line in f.read_text().splitlines()
    ]


def test_the_local_log_is_an_event_log_port(tmp_path: Path) -> None:
    assert isinstance(JsonlEventLog(tmp_path), EventLog)
    assert JsonlEventLog(tmp_path).describe() == f"file://{tmp_path.resolve()}"


def test_appended_events_are_one_json_line_each_in_the_folder_of_the_day_they_were_logged(
    tmp_path: Path,
) -> None:
    clock = Clock(DAY1)
    log = JsonlEventLog(tmp_path, clock=clock)
    log.append([event("u1", "p1", 1), event("u2", "p2", 2)])
    clock.now = DAY2
    log.append([event("u1", "p3", 3)])
    part = f"part-{os.getpid()}.jsonl"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.jsonl")) == [
        f"date=2026-03-01/{part}",
        f"date=2026-03-02/{part}",
    ]
    first = records(tmp_path)[0]
    assert first == {
        "event_id": "u1-p1-1",
        "user_id": "u1",
        "item_id": "p1",
        "event_type": "view",
        "timestamp": "2026-01-01T00:00:01+00:00",
        "request_id": None,
        "variant": None,
        "position": None,
        "logged_at": "2026-03-01T23:59:00+00:00",
    }
    assert [r["item_id"] for r in records(tmp_path)] == ["p1", "p2", "p3"]


def test_the_serving_context_sent_with_an_event_is_logged_with_it(tmp_path: Path) -> None:
    body = EventsRequest.model_validate(
        {
            "events": [
                {
                    "event_id": "e1",
                    "user_id": "u1",
                    "item_id": "p1",
                    "type": "click",
                    "request_id": "req-42",
                    "variant": "B",
                    "position": 3,
                }
            ]
        }
    )
    JsonlEventLog(tmp_path).append(body.to_domain(DAY1))
    (record,) = records(tmp_path)
    assert (record["event_type"], record["request_id"], record["variant"], record["position"]) == (
        "click",
        "req-42",
        "B",
        3,
    )


def test_erasing_a_user_removes_their_lines_from_every_file_and_keeps_the_others(tmp_path: Path) -> None:
    clock = Clock(DAY1)
    log = JsonlEventLog(tmp_path, clock=clock)
    log.append([event("u1", "p1", 1), event("u2", "p2", 2)])
    clock.now = DAY2
    log.append([event("u1", "p3", 3)])  # the file of day 2 holds u1 alone: it goes
    assert log.erase_user("u1") == 2
    assert [(r["user_id"], r["item_id"]) for r in records(tmp_path)] == [("u2", "p2")]
    assert not list((tmp_path / "date=2026-03-02").iterdir())
    assert not list(tmp_path.rglob("*.tmp"))
    assert log.erase_user("u1") == 0
    log.append([event("u1", "p4", 4)])  # the user comes back: logged again, into a file made anew
    assert [r["item_id"] for r in records(tmp_path)] == ["p2", "p4"]


def test_a_last_line_cut_short_by_a_crash_is_skipped_by_the_reader_and_kept_by_erasure(
    tmp_path: Path,
) -> None:
    log = JsonlEventLog(tmp_path, clock=Clock(DAY1))
    log.append([event("u1", "p1", 1), event("u2", "p2", 2)])
    (part,) = tmp_path.rglob("*.jsonl")
    with part.open("a") as fh:
        fh.write('{"event_id": "u3-p3-3", "user_id": "u3", "item_')  # the process died mid-write
    ds = load_dataset(tmp_path)
    assert (ds.fmt, ds.user_ids, ds.n_interactions) == ("eventlog", ["u1", "u2"], 2)
    assert log.erase_user("u1") == 1
    assert part.read_text().endswith('"item_')  # what erasure cannot read, it leaves alone


def test_an_unwritable_folder_is_a_backend_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    log = JsonlEventLog(tmp_path / "file" / "log")
    with pytest.raises(BackendUnavailableError, match="cannot append"):
        log.append([event("u1", "p1", 1)])


# -------------------------------------------------------------------------------- the events service


@pytest.fixture
def service(tmp_path: Path) -> EventService:
    return EventService(CATALOG, DictStateStore(), DictCache(), event_log=JsonlEventLog(tmp_path / "log"))


def test_ingest_logs_every_event_of_an_applied_batch(service: EventService, tmp_path: Path) -> None:
    service.ingest([event("u1", "p1", 1), event("u2", "p2", 2)])
    service.ingest([event("u1", "p1", 1)])  # a retried batch is logged again: readers keep the first
    assert [r["event_id"] for r in records(tmp_path / "log")] == ["u1-p1-1", "u2-p2-2", "u1-p1-1"]
    assert load_dataset(tmp_path / "log").n_interactions == 2


def test_a_rejected_batch_is_not_logged(service: EventService, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not in the catalogue"):
        service.ingest([event("u1", "p1", 1), event("u1", "x9", 2)])
    assert not (tmp_path / "log").exists()


def test_deleting_a_user_erases_their_logged_events(service: EventService, tmp_path: Path) -> None:
    service.ingest([event("u1", "p1", 1), event("u2", "p2", 2)])
    assert service.delete_user("u1") is True
    assert [r["user_id"] for r in records(tmp_path / "log")] == ["u2"]
    assert service.delete_user("u1") is False  # nothing left anywhere: the API answers 404


def test_a_user_known_only_to_the_log_is_deleted_from_it(service: EventService, tmp_path: Path) -> None:
    assert service.event_log is not None
    service.event_log.append([event("u9", "p1", 1)])  # e.g. logged before the state store was reset
    assert service.delete_user("u9") is True
    assert records(tmp_path / "log") == []


class BrokenLog:
    def append(self, events: object) -> None:
        raise BackendUnavailableError("log down")

    def erase_user(self, user_id: str) -> int:
        raise BackendUnavailableError("log down")

    def describe(self) -> str:
        return "broken://"


def test_a_batch_is_not_acknowledged_until_logged_and_a_deletion_until_erased() -> None:
    state = DictStateStore()
    service = EventService(CATALOG, state, DictCache(), event_log=BrokenLog())
    with pytest.raises(BackendUnavailableError):
        service.ingest([event("u1", "p1", 1)])
    assert state.recent["u1"] == ["p1"]  # applied; the retry applies nothing twice and logs again
    with pytest.raises(BackendUnavailableError):
        service.delete_user("u1")


# -------------------------------------------------------------------------------- reading the log


def _log_with(tmp_path: Path, *batches: tuple[datetime, list[Event]]) -> Path:
    clock = Clock(DAY1)
    log = JsonlEventLog(tmp_path / "log", clock=clock)
    for at, events in batches:
        clock.now = at
        log.append(events)
    return tmp_path / "log"


def test_the_log_folder_loads_as_a_dataset_in_event_time_order_across_files(tmp_path: Path) -> None:
    root = _log_with(
        tmp_path,
        (DAY1, [event("u1", "p2", 20), event("u2", "p1", 5)]),
        (DAY2, [event("u1", "p1", 10), event("u1", "p3", 30), event("u1", "p2", 20)]),  # p2 again: a retry
    )
    assert detect_format(root) == "eventlog"
    ds = load_dataset(root)
    assert ds.fmt == "eventlog"
    assert ds.user_ids == ["u1", "u2"]
    assert [[ds.item_ids[i] for i in seq] for seq in ds.sequences] == [["p1", "p2", "p3"], ["p1"]]
    (one_file,) = (root / "date=2026-03-02").iterdir()
    assert load_dataset(one_file, "eventlog").n_interactions == 3
    assert load_dataset(one_file).fmt == "generic"  # one log file is also a generic dataset


def test_the_log_is_appended_to_a_base_dataset_users_sequences(tmp_path: Path) -> None:
    base = (tmp_path / "base.txt", "u1 p1 p2\nu2 p3\n")
    base[0].write_text(base[1])
    root = _log_with(tmp_path, (DAY1, [event("u1", "p9", 2), event("u1", "p3", 1), event("u7", "p1", 3)]))
    merged: Dataset = with_events(load_dataset(base[0]), load_dataset(root))
    assert merged.user_ids == ["u1", "u2", "u7"]
    assert merged.item_ids == ["p1", "p2", "p3", "p9"]
    assert [[merged.item_ids[i] for i in seq] for seq in merged.sequences] == [
        ["p1", "p2", "p3", "p9"],
        ["p3"],
        ["p1"],
    ]
    assert merged.fmt == "sequences"


def test_appending_to_a_base_with_a_catalogue_gives_new_items_an_empty_row(tmp_path: Path) -> None:
    base = tmp_path / "shop"
    base.mkdir()
    (base / "interactions.jsonl").write_text('{"user_id": "u1", "item_id": "p1"}\n')
    (base / "catalog.jsonl").write_text('{"item_id": "p1", "title": "Caliper"}\n')
    root = _log_with(tmp_path, (DAY1, [event("u1", "p2", 1)]))
    merged = with_events(load_dataset(base), load_dataset(root))
    assert merged.catalog is not None
    assert (merged.catalog["p1"].title, merged.catalog["p2"].title) == ("Caliper", "")
    assert [merged.item_ids[i] for i in merged.sequences[0]] == ["p1", "p2"]


# -------------------------------------------------------------------------------- through the API


def test_events_posted_with_their_serving_context_are_logged_and_erased_with_the_user(
    bundle_dir: Path, tmp_path: Path
) -> None:
    api = make_api(bundle_dir, event_log=f"file://{tmp_path / 'log'}")
    context = {"request_id": "req-1", "variant": "treatment", "position": 2}
    events = [
        {"event_id": "e1", "user_id": "u1", "item_id": "p5", "type": "click", **context},
        {"event_id": "e2", "user_id": "u2", "item_id": "p6", "type": "purchase"},
    ]
    assert api.client.post("/v1/events", json={"events": events}).status_code == 200
    logged = records(tmp_path / "log")
    assert [
        (r["user_id"], r["event_type"], r["request_id"], r["variant"], r["position"]) for r in logged
    ] == [
        ("u1", "click", "req-1", "treatment", 2),
        ("u2", "purchase", None, None, None),
    ]
    assert api.client.delete("/v1/users/u1").status_code == 204
    assert [r["user_id"] for r in records(tmp_path / "log")] == ["u2"]
    assert api.client.delete("/v1/users/u1").status_code == 404


def test_a_negative_position_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    api = make_api(bundle_dir, event_log=f"file://{tmp_path / 'log'}")
    body = {"events": [{"event_id": "e1", "user_id": "u1", "item_id": "p5", "type": "view", "position": -1}]}
    assert api.client.post("/v1/events", json=body).status_code == 422


# -------------------------------------------------------------------------------- configuration


def test_the_log_defaults_to_a_folder_beside_a_sqlite_state_file(tmp_path: Path) -> None:
    log = event_log_for(Settings(state=f"sqlite:///{tmp_path / 'state.db'}"))
    assert isinstance(log, JsonlEventLog)
    assert log.root == tmp_path / "state-events"
    assert event_log_for(Settings(state=f"sqlite:///{tmp_path / 'state.db'}"), beside_state=False) is None
    assert event_log_for(Settings(state="dynamodb://table")) is None


def test_the_configured_log_is_the_one_used(tmp_path: Path) -> None:
    firehose = event_log_for(Settings(event_log="firehose://shoprec-dev-events"))
    assert firehose is not None
    assert firehose.describe() == "firehose://shoprec-dev-events"
    local = event_log_for(Settings(event_log=f"file://{tmp_path}/log", state="dynamodb://t"))
    assert local is not None
    assert local.describe() == f"file://{tmp_path}/log"
    assert event_log_for(Settings(event_log="none", state=f"sqlite:///{tmp_path / 's.db'}")) is None


@pytest.mark.parametrize("value", ["s3://bucket/events", "firehose://", "firehose://bad name", "kinesis://x"])
def test_an_unknown_log_setting_names_the_accepted_forms(value: str) -> None:
    with pytest.raises(ValidationError, match="event_log"):
        Settings(event_log=value)
