"""The retraining state machine's pure decisions (shoprec.deploy.retrain_steps): the cut, the window's log
objects, the training job request, the canary's verdict, and the step outcomes its metrics carry."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shoprec.deploy.retrain_source import pack_retrain_source
from shoprec.deploy.retrain_steps import (
    RetrainConfig,
    canary_verdict,
    cut_for,
    outcome_of,
    rollback_needed,
    run_step,
    training_job_request,
    window_partitions,
)
from shoprec.deploy.rollout_plan import RolloutStatus, Stack

CONFIG = RetrainConfig(
    stack="shoprec-dev",
    stage="dev",
    region="eu-west-1",
    events_url="s3://log-bucket/events/",
    output_url="s3://art-bucket/retrain/",
    source_url="s3://art-bucket/retrain/source/sourcedir.tar.gz",
    role_arn="arn:aws:iam::123456789012:role/shoprec-dev-retrain",
    image="763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.8-gpu-py312",
    hyperparameters={"max-epochs": "20"},
)
RUN = {
    "cut": "2026-11-14T06:00:00+00:00",
    "served_model_data_url": "s3://art-bucket/models/ab12/model.tar.gz",
    "job_name": "shoprec-dev-retrain-20261121-060000",
}


def test_the_cut_is_the_start_less_the_holdout_in_utc() -> None:
    started = datetime(2026, 11, 21, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    assert cut_for(started, 7) == datetime(2026, 11, 14, 6, 0, tzinfo=UTC)
    assert cut_for(started, 0.5) == datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def test_window_objects_are_those_received_on_or_after_the_cut_day() -> None:
    keys = [
        "events/date=2026-11-13/a.jsonl",
        "events/date=2026-11-14/b.jsonl",
        "events/date=2026-11-20/c.jsonl",
        "events/README",
    ]
    cut = datetime(2026, 11, 14, 6, 0, tzinfo=UTC)
    assert window_partitions(keys, cut) == keys[1:3]
    assert window_partitions(keys[:1], cut) == []


def test_the_training_job_runs_retrain_py_on_the_log_and_the_served_model() -> None:
    request = training_job_request(CONFIG, RUN)
    assert request["TrainingJobName"] == RUN["job_name"]
    assert request["AlgorithmSpecification"] == {"TrainingImage": CONFIG.image, "TrainingInputMode": "File"}
    hyper = {k: json.loads(v) for k, v in request["HyperParameters"].items()}
    assert hyper == {
        "max-epochs": "20",
        "cut": "2026-11-14T06:00:00+00:00",
        "gate-metrics": "NDCG@10,HR@10",
        "gate-margin": "0.02",
        "gate-min-users": "100",
        "sagemaker_program": "retrain.py",
        "sagemaker_submit_directory": CONFIG.source_url,
        "sagemaker_region": "eu-west-1",
    }
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]
    }
    assert channels == {"events": "s3://log-bucket/events/", "served": RUN["served_model_data_url"]}
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://art-bucket/retrain"}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}


def test_a_base_dataset_is_the_train_channel() -> None:
    config = CONFIG.model_copy(update={"dataset_url": "s3://art-bucket/datasets/scientific/"})
    channels = [c["ChannelName"] for c in training_job_request(config, RUN)["InputDataConfig"]]
    assert channels == ["events", "served", "train"]


def test_the_config_refuses_unknown_and_bad_settings() -> None:
    with pytest.raises(ValidationError, match="gate_margn"):
        RetrainConfig.model_validate({**CONFIG.model_dump(), "gate_margn": 0.1})
    with pytest.raises(ValidationError, match="gate_margin"):
        RetrainConfig.model_validate({**CONFIG.model_dump(), "gate_margin": 1.5})


def _stack(status: str) -> Stack:
    return Stack(name="shoprec-dev", stack_id="id", status=status, parameters={}, outputs={})


def _status(live: str, stack_config: str) -> RolloutStatus:
    return RolloutStatus(
        stack="shoprec-dev",
        stack_status="UPDATE_COMPLETE",
        stack_status_reason="",
        served_version="v1",
        served_parameter="/shoprec/dev/model-version",
        served_now="v1",
        endpoint="shoprec-dev-ranker",
        endpoint_status="InService",
        live_config=live,
        stack_config=stack_config,
    )


QUIET = {"shoprec-dev-api-5xx": "OK", "shoprec-dev-ranker-fallback-rate": "INSUFFICIENT_DATA"}


@pytest.mark.parametrize(
    ("status", "rollout", "alarms", "verdict"),
    [
        ("UPDATE_IN_PROGRESS", None, QUIET, "waiting"),
        ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None, QUIET, "waiting"),
        ("UPDATE_COMPLETE", _status("cfg-2", "cfg-2"), QUIET, "healthy"),
        ("UPDATE_ROLLBACK_COMPLETE", _status("cfg-1", "cfg-1"), QUIET, "failed"),
        ("UPDATE_COMPLETE", _status("cfg-1", "cfg-2"), QUIET, "failed"),  # SageMaker rolled back
        ("UPDATE_COMPLETE", _status("cfg-2", "cfg-2"), {**QUIET, "shoprec-dev-api-5xx": "ALARM"}, "failed"),
    ],
)
def test_the_canary_is_healthy_only_in_step_and_with_quiet_alarms(
    status: str, rollout: RolloutStatus | None, alarms: dict[str, str], verdict: str
) -> None:
    assert canary_verdict(_stack(status), rollout, alarms) == verdict


@pytest.mark.parametrize(
    ("step", "run", "outcome"),
    [
        ("gate", {"gate_passed": True}, "Passed"),
        ("gate", {"gate_passed": False}, "Refused"),
        ("training_status", {"job_done": False, "job_status": "InProgress"}, "Running"),
        ("training_status", {"job_done": True, "job_status": "Failed"}, "Failed"),
        ("canary", {"canary": "failed"}, "Failed"),
        ("canary", {"canary": "healthy"}, "Healthy"),
        ("publish", {}, "Done"),
    ],
)
def test_each_step_names_its_outcome(step: str, run: dict[str, Any], outcome: str) -> None:
    assert outcome_of(step, run) == outcome


def test_an_unknown_step_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown retraining step 'deploy_all'"):
        run_step({"step": "deploy_all", "state": {}})


V1, V2 = "a" * 64, "b" * 64


@pytest.mark.parametrize(
    ("model_data_url", "model_version", "needed"),
    [
        (f"s3://b/models/{V2}/model.tar.gz", V1, True),  # the canary runs on the endpoint
        (f"s3://b/models/{V1}/model.tar.gz", V1, False),  # CloudFormation undid the update
        ("", "v1", False),  # no endpoint, the first ModelVersion a folder name
        ("", V2, True),  # no endpoint, the functions were turned to the new version
    ],
)
def test_a_rollback_is_needed_only_while_the_stack_names_the_new_version(
    model_data_url: str, model_version: str, needed: bool
) -> None:
    stack = Stack(
        name="shoprec-dev",
        stack_id="id",
        status="UPDATE_COMPLETE",
        parameters={"ModelDataUrl": model_data_url, "ModelVersion": model_version},
        outputs={},
    )
    assert rollback_needed(stack, f"sha256:{V2}") is needed


def test_the_job_source_holds_retrain_py_and_the_package_and_packs_reproducibly(tmp_path: Path) -> None:
    first = pack_retrain_source(tmp_path / "a.tar.gz")
    second = pack_retrain_source(tmp_path / "b.tar.gz")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        names = set(tar.getnames())
    assert {"retrain.py", "train.py", "requirements.txt", "src/shoprec/deploy/gate.py"} <= names
    assert "src/shoprec/training/retrain.py" in names
    assert not any("__pycache__" in name for name in names)
