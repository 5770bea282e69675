"""Poison SQS messages against the ingest handler: each one fails alone, as a ``batchItemFailures`` entry,
never the invocation, and the good messages of its batch are applied.

The handler runs against a real container: the unit tier's tiny bundle, sqlite state in a temporary
folder and the in-process cache (the ranker is named but never called by ingestion).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import UnexpectedBatchTypeError
from tests.integration.lambda_events import LambdaContext, load_handler, set_function_env, sqs_event

from shoprec.adapters.local.sqlite_state import SqliteUserStateStore
from shoprec.artifacts import load_bundle
from shoprec.settings import get_settings

Record = dict[str, Any]


@pytest.fixture(scope="module")
def edge_items(fault_bundle_dir: Path) -> list[str]:
    return list(load_bundle(fault_bundle_dir).item_ids)


@pytest.fixture
def edge_state_db(fault_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The ingest function's environment over the tiny bundle; yields its sqlite state file."""
    state_db = tmp_path / "state.db"
    set_function_env(monkeypatch, fault_bundle_dir, state_db)
    yield state_db
    get_settings.cache_clear()


@pytest.fixture
def edge_ingest(edge_state_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A fresh copy of the ingest handler (a new execution environment); the package logger it reroutes
    is restored afterwards."""
    package = logging.getLogger("shoprec")
    saved = (list(package.handlers), package.level, package.propagate)
    module = load_handler("ingest")
    yield module
    package.handlers[:], package.level, package.propagate = saved


def event_body(event_id: str, user: str, item: str) -> str:
    return json.dumps({"event_id": event_id, "user_id": user, "item_id": item, "type": "view"})


def no_body(record: Record, item: str) -> None:
    del record["body"]


def null_body(record: Record, item: str) -> None:
    record["body"] = None


def object_body(record: Record, item: str) -> None:
    # A valid event, but as a JSON object where SQS always has a string.
    record["body"] = {"event_id": "p-obj", "user_id": "poisoned", "item_id": item, "type": "view"}


def one_megabyte_body(record: Record, item: str) -> None:
    record["body"] = json.dumps(
        {"event_id": "p-big", "user_id": "poisoned", "item_id": item, "type": "view", "note": "x" * 1_000_000}
    )


def deeply_nested_body(record: Record, item: str) -> None:
    record["body"] = '{"events": ' + "[" * 100_000 + "]" * 100_000 + "}"


def unknown_field(record: Record, item: str) -> None:
    record["body"] = json.dumps(
        {"event_id": "p-unk", "user_id": "poisoned", "item_id": item, "type": "view", "coupon": "FREE"}
    )


def no_message_id(record: Record, item: str) -> None:
    # A valid body: the record is dropped for want of an id to report, not for its content.
    record["body"] = event_body("p-noid", "poisoned", item)
    del record["messageId"]


POISONS: dict[str, Callable[[Record, str], None]] = {
    "no body": no_body,
    "null body": null_body,
    "object body": object_body,
    "1 MB body": one_megabyte_body,
    "deep nesting": deeply_nested_body,
    "unknown field": unknown_field,
    "missing messageId": no_message_id,
}


def poisoned_batch(bodies: list[str], poisons: dict[int, Callable[[Record, str], None]], item: str) -> Any:
    batch = sqs_event(*bodies)
    for index, poison in poisons.items():
        poison(batch["Records"][index], item)
    return batch


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def total(documents: list[dict[str, Any]], name: str) -> float:
    """The sum of metric ``name`` over EMF ``documents`` (a name recorded several times holds a list)."""
    values = [doc[name] for doc in documents if name in doc]
    return sum(sum(v) if isinstance(v, list) else v for v in values)


def logged(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Where the handler's JSON log lines go from now on."""
    out = io.StringIO()
    monkeypatch.setattr(module.logger.registered_handler, "stream", out)
    return out


@pytest.mark.parametrize("name", POISONS)
def test_a_batch_of_one_poison_message_reports_it_instead_of_failing_the_invocation(
    name: str,
    edge_ingest: ModuleType,
    edge_state_db: Path,
    edge_items: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = logged(edge_ingest, monkeypatch)
    batch = poisoned_batch([event_body("p-1", "poisoned", edge_items[0])], {0: POISONS[name]}, edge_items[0])

    response = edge_ingest.handler(batch, LambdaContext())

    if name == "missing messageId":
        assert response == {"batchItemFailures": []}  # nothing SQS could be told about
        [dropped] = [json.loads(line) for line in log.getvalue().splitlines() if "messageId" in line]
        assert (dropped["level"], dropped["dropped"]) == ("ERROR", 1)
    else:
        assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
        assert "Record processing exception" in log.getvalue()  # logged, with its traceback
    assert SqliteUserStateStore(edge_state_db).recent_items("poisoned") == []


def test_a_mixed_batch_reports_exactly_its_poison_messages_and_applies_the_rest(
    edge_ingest: ModuleType, edge_state_db: Path, edge_items: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = edge_items[:3]
    good = {
        0: json.dumps({"events": [{"event_id": "g-1", "user_id": "shopper", "item_id": a, "type": "view"}]}),
        4: event_body("g-2", "shopper", b),
        9: event_body("g-3", "shopper", c),
    }
    poisons = dict(zip([1, 2, 3, 5, 6, 7, 8], POISONS.values(), strict=True))
    bodies = [good.get(i, event_body(f"p-{i}", "poisoned", a)) for i in range(10)]
    batch = poisoned_batch(bodies, poisons, a)
    reportable = [i for i, poison in poisons.items() if poison is not no_message_id]

    response = edge_ingest.handler(batch, LambdaContext())

    assert failed_ids(response) == [batch["Records"][i]["messageId"] for i in reportable]
    store = SqliteUserStateStore(edge_state_db)
    assert store.recent_items("shopper") == [a, b, c]
    assert store.recent_items("poisoned") == []
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert total(metrics, "EventsApplied") == 3
    assert total(metrics, "MessagesDropped") == 1

    # SQS redelivers the failed messages: they fail again, nothing is applied twice.
    again = edge_ingest.handler(batch, LambdaContext())
    assert failed_ids(again) == failed_ids(response)
    assert store.recent_items("shopper") == [a, b, c]


def test_an_event_that_is_not_an_sqs_batch_still_fails_the_invocation(edge_ingest: ModuleType) -> None:
    """A misconfigured trigger is the function's problem, not a message's: it must page someone."""
    with pytest.raises(UnexpectedBatchTypeError):
        edge_ingest.handler({"detail-type": "Scheduled Event"}, LambdaContext())
