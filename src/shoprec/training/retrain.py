"""``shoprec retrain``: the scheduled retraining loop, run locally end to end.

Cut the event log at a time (:mod:`shoprec.evaluation.window`), train a new bundle on the events before it
(after the base dataset when one is given), check that the bundle trained on exactly that data, score the new
bundle and the served one on the same held-out window, and ask the gate (:mod:`shoprec.deploy.gate`) whether
the new one may replace the served one. The AWS pipeline (``docs/operations.md``) runs the same steps, with a
SageMaker training job for the training and the stack's canary rollout after a passed gate.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shoprec.artifacts import load_bundle
from shoprec.deploy.gate import GateDecision, GatePolicy, decide
from shoprec.evaluation.protocol import EvalResult
from shoprec.evaluation.window import (
    DEFAULT_HOLDOUT,
    TRAINING_LOG_DIR,
    check_trained_before_cut,
    cut_time,
    evaluate_on_window,
    held_out_cases,
    read_log,
    split_log,
    training_dataset,
    window_summary,
    write_training_log,
)
from shoprec.training.config import TrainConfig
from shoprec.training.pipeline import TrainingUI, run_training


@dataclass(frozen=True)
class RetrainResult:
    """Both bundles' figures on the window, and the gate's decision."""

    served_version: str
    new_version: str
    new_dir: Path
    window: dict[str, Any]
    served: EvalResult
    new: EvalResult
    decision: GateDecision

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "served_version": self.served_version,
            "new_version": self.new_version,
            "new_bundle": str(self.new_dir),
            "window": self.window,
            "served_metrics": self.served.metrics,
            "new_metrics": self.new.metrics,
            "decision": self.decision.to_json_dict(),
        }


def retrain(
    events: Path,
    served_artifacts: Path,
    out: Path,
    *,
    dataset: str | Path | None = None,
    data_root: Path | None = None,
    cut: datetime | None = None,
    holdout: timedelta = DEFAULT_HOLDOUT,
    config: TrainConfig | None = None,
    policy: GatePolicy | None = None,
    text: bool | None = None,
    ui: TrainingUI | None = None,
) -> RetrainResult:
    """Train on the log before the cut (``cut``, else the newest event less ``holdout``), write the new
    bundle to ``out``, and gate it against the bundle at ``served_artifacts`` on the window after the cut."""
    served_bundle = load_bundle(served_artifacts)  # a bad served bundle fails before an hour of training
    logged = read_log(events)
    split = split_log(logged, cut.timestamp() if cut is not None else cut_time(logged, holdout=holdout))
    with tempfile.TemporaryDirectory(prefix="shoprec-retrain-") as work:
        training_log = write_training_log(split, events, Path(work) / TRAINING_LOG_DIR)
        report = run_training(
            dataset if dataset is not None else training_log,
            out,
            config,
            fmt="auto" if dataset is not None else "eventlog",
            data_root=data_root,
            ui=ui,
            text=text,
            events=training_log if dataset is not None else None,
        )
        trained_on = training_dataset(training_log, dataset, data_root=data_root)
    check_trained_before_cut(report.manifest, trained_on, out)
    cases = held_out_cases(split, trained_on, served_bundle.item_ids)
    served = evaluate_on_window(served_artifacts, cases, bundle=served_bundle)
    new = evaluate_on_window(out, cases)
    decision = decide(served.metrics, new.metrics, users=cases.users, policy=policy)
    return RetrainResult(
        served_version=served_bundle.manifest.short_version,
        new_version=report.manifest.short_version,
        new_dir=out,
        window=window_summary(split, cases),
        served=served,
        new=new,
        decision=decision,
    )
