"""The held-out recent window: what a retrained bundle and the served one are both judged on.

**Definition.** The event log (``docs/event-log.md``) is cut at a time ``cut``: by default the newest
event's ``timestamp`` less the holdout period (7 days), or a time given explicitly. Events before the cut are
training data; events at or after it are the *window*. Each user with an event in the window is one held-out
case: the **target** is the item of the user's first event in the window (by ``timestamp``; ties keep log
order), the **history** is the user's whole training sequence (the base dataset's, then the log's events
before the cut), exactly what the new bundle trained on. This is the next-item protocol of the leave-one-out
test, moved to a point in time, so that a bundle is judged on what users did *after* it could have seen
anything.

Cases are left out, and counted, when the user has no history (a cold user: both bundles serve the same
fallback, which only dilutes the comparison) or the target item is unknown to either bundle (neither could
ever recommend it fairly: an item that arrived after the served bundle was trained would count against it
alone). A history item the served bundle does not know is dropped from its request, as serving drops an item
it cannot look up.

**No leakage.** The new bundle is trained on the events before the cut only: :func:`split_log` writes them
to a separate log folder that training reads, and :func:`check_trained_before_cut` compares the bundle
manifest's dataset fingerprint with that of the pre-cut data, so a bundle trained on anything else (the full
log, another base) is refused before it is compared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import Bundle, Manifest, load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.data import Dataset, load_dataset
from shoprec.data.loaders import _eventlog_files, _parse_timestamp, with_events
from shoprec.errors import ArtifactError, DataFormatError
from shoprec.evaluation.pipeline_eval import evaluate_pipeline
from shoprec.evaluation.protocol import EvalResult
from shoprec.pipeline import build_pipeline

DEFAULT_HOLDOUT = timedelta(days=7)
TRAINING_LOG_DIR = "train-events"
"""Folder of the pre-cut log inside a retraining work folder (the event log layout, readable by training)."""


@dataclass(frozen=True)
class LoggedEvent:
    """One deduplicated record of the log: who, what, when (epoch seconds), and the line as stored."""

    user_id: str
    item_id: str
    at: float
    line: str
    file: Path


@dataclass(frozen=True)
class LogSplit:
    """The log cut in two at ``cut`` (epoch seconds): training records before it, the window from it on."""

    cut: float
    before: list[LoggedEvent]
    window: list[LoggedEvent]

    @property
    def cut_iso(self) -> str:
        return datetime.fromtimestamp(self.cut, UTC).isoformat()


def read_log(path: str | Path) -> list[LoggedEvent]:
    """Every record of an event log folder (or file), first of each ``(user_id, event_id)`` only and
    complete lines only, as the training loader reads it. ``DataFormatError`` names a bad file and line."""
    root = Path(path)
    events: list[LoggedEvent] = []
    seen: set[tuple[str, str]] = set()
    for file in _eventlog_files(root):
        text = file.read_text(encoding="utf-8-sig")
        complete = text[: text.rfind("\n") + 1]  # a last line without newline was never acknowledged
        for number, line in enumerate(complete.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"not JSON: {exc.msg}", path=file, line=number) from None
            if not isinstance(record, dict):
                raise DataFormatError("a record must be a JSON object", path=file, line=number)
            for required in ("event_id", "user_id", "item_id", "timestamp"):
                if record.get(required) is None:
                    raise DataFormatError(f"missing '{required}'", path=file, line=number, field=required)
            key = (str(record["user_id"]), str(record["event_id"]))
            if key in seen:
                continue
            seen.add(key)
            at = _parse_timestamp(record["timestamp"], path=file, line=number, field="timestamp")
            events.append(LoggedEvent(key[0], str(record["item_id"]), at, line, file))
    if not events:
        raise DataFormatError("no events in the log", path=root)
    return events


def cut_time(events: Sequence[LoggedEvent], *, holdout: timedelta = DEFAULT_HOLDOUT) -> float:
    """The default cut: the newest event's time less ``holdout``."""
    if holdout <= timedelta(0):
        raise ValueError(f"holdout must be positive, got {holdout}")
    return max(e.at for e in events) - holdout.total_seconds()


def split_log(events: Sequence[LoggedEvent], cut: float) -> LogSplit:
    """Events strictly before ``cut`` for training, the others for the window; ``ValueError`` when either
    side is empty (nothing to train on, or nothing to judge by)."""
    before = [e for e in events if e.at < cut]
    window = [e for e in events if e.at >= cut]
    shown = datetime.fromtimestamp(cut, UTC).isoformat()
    if not before:
        raise ValueError(f"no event of the log is older than the cut {shown}: nothing to train on")
    if not window:
        raise ValueError(f"no event of the log is at or after the cut {shown}: the held-out window is empty")
    return LogSplit(cut, before, window)


def write_training_log(split: LogSplit, root: Path, out: Path) -> Path:
    """Write the pre-cut records to ``out`` in the log's own layout (each line in the file of the same
    relative path as in ``root``), so that training reads them as it reads any log."""
    by_file: dict[Path, list[str]] = {}
    for event in split.before:
        relative = event.file.relative_to(root) if root.is_dir() else Path("date=all") / event.file.name
        by_file.setdefault(relative, []).append(event.line)
    for relative, lines in by_file.items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


def training_dataset(
    training_log: Path, base: str | Path | None, *, data_root: Path | None = None
) -> Dataset:
    """The dataset training builds from the pre-cut log (after ``base`` when given), as ``shoprec train``
    builds it with ``--dataset base --events training_log`` (or ``--dataset training_log``)."""
    events = load_dataset(training_log, "eventlog")
    if base is None:
        return events
    return with_events(load_dataset(base, data_root=data_root), events)


def check_trained_before_cut(manifest: Manifest, trained_on: Dataset, where: str | Path) -> None:
    """``ArtifactError`` unless the bundle's dataset fingerprint is that of ``trained_on`` (the pre-cut
    data): a bundle trained on anything else may have seen the window it is about to be judged on."""
    fingerprint = manifest.dataset.get("fingerprint")
    if fingerprint != trained_on.fingerprint():
        raise ArtifactError(
            f"{where}: the bundle was trained on data with fingerprint {fingerprint}, not on the events "
            f"before the cut ({trained_on.fingerprint()}); it may have seen the held-out window"
        )


@dataclass(frozen=True)
class HeldOut:
    """The window's cases: per user a history (item ids, oldest first) and a target item id."""

    user_ids: list[str]
    histories: list[list[str]]
    targets: list[str]
    window_users: int
    dropped: dict[str, int] = field(default_factory=dict)
    """Users left out, by reason: ``cold`` (no history), ``unknown_item`` (a target a bundle lacks)."""

    @property
    def users(self) -> int:
        return len(self.user_ids)


def held_out_cases(split: LogSplit, trained_on: Dataset, known: Iterable[str]) -> HeldOut:
    """One case per user with an event in the window (see the module docstring); ``known``: the item ids
    the served bundle knows (the new bundle knows ``trained_on``'s)."""
    both = set(known) & set(trained_on.item_ids)
    sequences = dict(zip(trained_on.user_ids, trained_on.sequences, strict=True))
    first: dict[str, LoggedEvent] = {}
    for event in sorted(split.window, key=lambda e: e.at):  # stable: equal times keep log order
        first.setdefault(event.user_id, event)
    cases = HeldOut([], [], [], window_users=len(first), dropped={"cold": 0, "unknown_item": 0})
    for uid, event in first.items():
        seq = sequences.get(uid)
        if seq is None or len(seq) == 0:
            cases.dropped["cold"] += 1
        elif event.item_id not in both:
            cases.dropped["unknown_item"] += 1
        else:
            cases.user_ids.append(uid)
            cases.histories.append([trained_on.item_ids[i] for i in seq])
            cases.targets.append(event.item_id)
    return cases


def evaluate_on_window(
    artifacts: str | Path,
    cases: HeldOut,
    *,
    bundle: Bundle | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Full-protocol metrics of the bundle's served pipeline (as ``shoprec evaluate --model pipeline``
    builds it) on the held-out cases."""
    if cases.users == 0:
        raise ValueError(
            "the held-out window has no usable case (every user was cold or had an unknown item)"
        )
    bundle = bundle or load_bundle(artifacts)
    index = {item_id: i for i, item_id in enumerate(bundle.item_ids)}
    histories = [np.array([index[i] for i in h if i in index], dtype=np.int64) for h in cases.histories]
    try:
        targets = np.array([index[t] for t in cases.targets], dtype=np.int64)
    except KeyError as exc:
        raise ArtifactError(f"{artifacts}: target item {exc.args[0]} is not in the bundle") from None
    pipeline = build_pipeline(
        bundle, CatalogIndex.from_bundle(bundle), LocalOnnxRanker.from_bundle(bundle, threads=0)
    )
    return evaluate_pipeline(pipeline, histories, targets, "full", progress=progress)


def window_summary(split: LogSplit, cases: HeldOut) -> dict[str, Any]:
    """The window's description for reports and logs."""
    return {
        "cut": split.cut_iso,
        "training_events": len(split.before),
        "window_events": len(split.window),
        "window_users": cases.window_users,
        "users": cases.users,
        "dropped": dict(cases.dropped),
    }
