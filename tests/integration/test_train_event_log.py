"""``shoprec train --dataset`` on the event log (a tiny generated shop, briefly trained, so that each run
takes seconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from tests.integration.test_train_overlay import N_ITEMS, TINY

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
def test_train_on_the_event_log_alone(tmp_path: Path) -> None:
    items = [f"i{n}" for n in range(N_ITEMS)]
    log = write_log(tmp_path / "log", range(60), items)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["train", "--dataset", str(log), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert load_bundle(out).n_items == N_ITEMS
