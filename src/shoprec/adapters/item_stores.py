"""The live catalogue's overlay store of a state DSN: :func:`item_store_for`, beside
:func:`shoprec.container.rule_store_for`. Adapters are imported lazily, so a process that keeps its
items in sqlite never imports boto3."""

from __future__ import annotations

from pathlib import Path

from shoprec.ports import ItemStore


def item_store_for(dsn: str | None, *, read_timeout_s: float | None = None) -> ItemStore:
    """The overlay items beside the user state of ``dsn`` (same sqlite file, or same DynamoDB table under
    its own partition); ``None``: in process only. ``read_timeout_s``: DynamoDB's ``version()`` check,
    which serving runs on the request path (default: the store's)."""
    if dsn is None:
        from shoprec.adapters.local.memory_items import MemoryItemStore

        return MemoryItemStore()
    if dsn.startswith("dynamodb://"):
        from shoprec.adapters.aws.dynamodb_items import DynamoDbItemStore

        table = dsn.removeprefix("dynamodb://")
        if read_timeout_s is None:
            return DynamoDbItemStore(table)
        return DynamoDbItemStore(table, read_timeout_s=read_timeout_s)
    if dsn.startswith("sqlite:///"):
        from shoprec.adapters.local.sqlite_items import SqliteItemStore

        return SqliteItemStore(Path(dsn.removeprefix("sqlite:///")))
    raise ValueError(f"items: unknown backend {dsn!r}")
