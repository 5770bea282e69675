"""``shoprec train --dataset`` on the event log: the log alone, and ``--events`` appending it to a base
dataset (a tiny generated shop, briefly trained, so that each run takes seconds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from tests.integration.test_train_overlay import N_ITEMS, TINY, write_shop

from shoprec.adapters.local.jsonl_event_log import JsonlEventLog
from shoprec.artifacts import load_bundle
from shoprec.cli import app
from shoprec.domain import Event, EventType


def write_log(folder: Path, users: range, items: list[str]) -> Path:
    log = JsonlEventLog(folder, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC))
    start = datetime(2026, 2, 1, tzinfo=UTC)
    log.append(
        [
            Event(
                f"e{u}-{n}",
                f"u{u}",
                items[(u * 5 + n) % len(items)],
                EventType.VIEW,
                start + timedelta(minutes=n),
            )
            for u in users
            for n in range(5)
        ]
    )
    return folder


@pytest.mark.train
@pytest.mark.slow
def test_train_appends_an_event_log_to_the_dataset(tmp_path: Path) -> None:
    shop = write_shop(tmp_path / "shop")
    log = write_log(tmp_path / "log", range(55, 65), ["i1", "i2", "new-1"])  # 5 known users, 5 new ones
    out = tmp_path / "bundle"
    args = ["train", "--dataset", str(shop), "--events", str(log), "--out", str(out), *TINY]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out)
    assert bundle.n_items == N_ITEMS + 1
    assert bundle.catalog is not None
    assert bundle.catalog["new-1"]["title"] == ""
    assert json.loads((out / "manifest.json").read_text())["dataset"]["n_users"] == 65


@pytest.mark.train
@pytest.mark.slow
def test_train_on_the_event_log_alone(tmp_path: Path) -> None:
    items = [f"i{n}" for n in range(N_ITEMS)]
    log = write_log(tmp_path / "log", range(60), items)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["train", "--dataset", str(log), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert load_bundle(out).n_items == N_ITEMS
