"""Write cost of the online co-occurrence and trending counts on DynamoDB (moto), per event.

Replays real sessions of Amazon Scientific: ``--users`` users drawn at random, their sequences
interleaved at random (as concurrent shoppers), until ``--events`` events; the events go in batches of
``--batch`` (the ingest queue's batch, or 1 for one ``POST /v1/events`` per event). Each batch's updates
are what ingestion records (:func:`shoprec.recall.online.stream_counts` over what the batch appended to
each user's sequence) through :class:`~shoprec.adapters.aws.dynamodb_stats.DynamoDbInteractionStats`.

Counted per update call: the ``UpdateItem`` itself and its write capacity units, from the item's size
before and after the write (DynamoDB bills the larger, rounded up to 1 KB). Sizes follow DynamoDB's
rules: attribute names and strings by their UTF-8 length, numbers one byte per two significant digits
plus one. moto does not bill, so the sizes are read back after each write (not counted).

Usage::

    nice -n 10 .venv/bin/python bench/online_updates.py [--events 1000] [--batch 10] [--json]

Prints one JSON object (``--json``) or a table; benchmarks report, they assert nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import uuid
from collections import Counter
from typing import Any

from shoprec.adapters.interaction_stats import DEFAULT_MAX_NEIGHBOURS, Decay
from shoprec.data.loaders import default_data_root
from shoprec.domain import Appended
from shoprec.recall.online import CONTEXT, stream_counts

T0 = 1_800_000_000.0


def attribute_size(name: str, value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute (name and value) in bytes, for the S and N values stored here."""
    (kind, raw), *_ = value.items()
    if kind == "S":
        body = len(raw.encode("utf-8"))
    elif kind == "N":
        digits = raw.lstrip("-").replace(".", "").strip("0") or "0"
        body = math.ceil(len(digits) / 2) + 1
    else:
        raise ValueError(f"unexpected attribute type {kind}")
    return len(name.encode("utf-8")) + body


def item_size(item: dict[str, Any]) -> int:
    return sum(attribute_size(name, value) for name, value in item.items())


class Metered:
    """A DynamoDB client that counts ``UpdateItem`` calls and their write capacity units."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table
        self._sizes: dict[tuple[str, str], int] = {}
        self.updates: Counter[str] = Counter()
        self.wcu: Counter[str] = Counter()
        self.largest = 0

    def update_item(self, **kwargs: Any) -> Any:
        resp = self._client.update_item(**kwargs)
        key = kwargs["Key"]
        pk, sk = key["pk"]["S"], key["sk"]["S"]
        after_item = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get(
            "Item", {}
        )
        after = item_size(after_item)
        before = self._sizes.get((pk, sk), 0)
        self._sizes[(pk, sk)] = after
        kind = (
            "trending"
            if pk.startswith("TREND#")
            else ("cut" if "REMOVE" in kwargs["UpdateExpression"] else "pairs")
        )
        self.updates[kind] += 1
        self.wcu[kind] += max(1, math.ceil(max(before, after) / 1024))
        self.largest = max(self.largest, after)
        return resp


def sessions(users: int, events: int, seed: int) -> list[tuple[str, str]]:
    """(user, item) events: random users' sequences interleaved at random, ``events`` of them."""
    path = default_data_root() / "amazon-scientific" / "interactions.json"
    sequences: dict[str, list[int]] = json.loads(path.read_text())
    rng = random.Random(seed)
    chosen = rng.sample(sorted(sequences), users)
    queues = {u: [str(i) for i in sequences[u]] for u in chosen}
    out: list[tuple[str, str]] = []
    while len(out) < events and queues:
        user = rng.choice(sorted(queues))
        out.append((user, queues[user].pop(0)))
        if not queues[user]:
            del queues[user]
    return out


def run(events: int, batch: int, users: int, seed: int) -> dict[str, Any]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        from shoprec.adapters.aws.clients import aws_client
        from shoprec.adapters.aws.dynamodb_state import create_table
        from shoprec.adapters.aws.dynamodb_stats import DynamoDbInteractionStats

        client = aws_client("dynamodb")
        table = f"bench-{uuid.uuid4().hex[:8]}"
        create_table(client, table)
        metered = Metered(client, table)
        store = DynamoDbInteractionStats(table, metered, read_client=client, decay=Decay())
        stream = sessions(users, events, seed)
        history: dict[str, list[str]] = {}
        pairs_total = 0
        for start in range(0, len(stream), batch):
            appended: dict[str, Appended] = {}
            for user, item in stream[start : start + batch]:
                seq = history.setdefault(user, [])
                done = appended.get(user, Appended(tuple(seq), ()))
                appended[user] = Appended(done.before, (*done.items, item))
                seq.append(item)
            pairs, items = stream_counts(appended)
            pairs_total += sum(len(row) for row in pairs.values())
            store.record(pairs, items, at=T0 + start)
        n = len(stream)
        writes = sum(metered.updates.values())
        wcu = sum(metered.wcu.values())
        return {
            "events": n,
            "batch": batch,
            "users": users,
            "context": CONTEXT,
            "max_neighbours": DEFAULT_MAX_NEIGHBOURS,
            "pair_weights_per_event": round(pairs_total / n, 2),
            "writes_per_event": round(writes / n, 2),
            "writes": dict(metered.updates),
            "wcu_per_1000_events": round(wcu * 1000 / n),
            "wcu": dict(metered.wcu),
            "largest_item_bytes": metered.largest,
        }
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10, help="events per ingest batch (SQS: up to 10)")
    parser.add_argument("--users", type=int, default=150, help="concurrent shoppers replayed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.events, args.batch, args.users, args.seed)
    if args.json:
        print(json.dumps(result))
        return 0
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
