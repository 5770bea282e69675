"""The retraining state machine's steps against moto: the window, the training job, the gate's decision,
and after a passed gate the publish → canary deploy → promote (or roll back) of the stack double of
``test_rollout.py``. The training job itself does not run on moto; the test writes what ``retrain.py``
would leave in S3 (the new bundle's ``model.tar.gz`` and ``output.tar.gz`` with ``decision.json``)."""

from __future__ import annotations

import io
import json
import logging
import tarfile
from typing import Any

import pytest
from tests.integration import test_rollout
from tests.integration.test_rollout import BUCKET, STAGE, World, deployed_and_promoted

from shoprec.adapters.aws.clients import aws_client
from shoprec.deploy.retrain_steps import (
    RetrainConfig,
    RetrainError,
    StepClients,
    run_step,
    training_job_request,
)
from shoprec.observability import logger, metrics

published = test_rollout.published
world = test_rollout.world

LOG_BUCKET = "shoprec-retrain-log"
STARTED = "2026-11-21T06:00:00Z"  # the cut is 2026-11-14T06:00 with the default 7 days' holdout
TRAINING_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-gpu-py312"


@pytest.fixture(scope="module")
def event_log(moto_server: str) -> str:
    s3 = aws_client("s3", timeout_s=10)
    s3.create_bucket(Bucket=LOG_BUCKET)
    record = {"event_id": "e1", "user_id": "u1", "item_id": "7", "timestamp": "2026-10-01T10:00:00+00:00"}
    s3.put_object(Bucket=LOG_BUCKET, Key="events/date=2026-10-01/a.jsonl", Body=json.dumps(record) + "\n")
    record = {**record, "event_id": "e2", "timestamp": "2026-11-20T10:00:00+00:00"}
    s3.put_object(Bucket=LOG_BUCKET, Key="events/date=2026-11-20/b.jsonl", Body=json.dumps(record) + "\n")
    return f"s3://{LOG_BUCKET}/events/"


def _state(world: World, events_url: str, **run: Any) -> dict[str, Any]:
    config = {
        "stack": world.stack,
        "stage": STAGE,
        "region": "us-east-1",
        "events_url": events_url,
        "output_url": f"s3://{BUCKET}/retrain",
        "source_url": f"s3://{BUCKET}/retrain/source/sourcedir.tar.gz",
        "role_arn": "arn:aws:iam::123456789012:role/shoprec-dev-retrain",
        "image": TRAINING_IMAGE,
        "canary_weight": 0.25,
        "bake_minutes": 15,
    }
    return {"config": config, "run": {"started": STARTED, **run}}


def _step(world: World, step: str, state: dict[str, Any]) -> dict[str, Any]:
    return run_step({"step": step, "state": state}, StepClients(world.clients))


def _job_output(world: World, run: dict[str, Any], *, passed: bool, new: int = 1) -> None:
    """What the job leaves: the new bundle as model.tar.gz and decision.json in output.tar.gz."""
    s3 = world.clients.s3
    prefix = f"retrain/{run['job_name']}/output"
    source = world.tarball(new).removeprefix(f"s3://{BUCKET}/")
    s3.copy_object(Bucket=BUCKET, Key=f"{prefix}/model.tar.gz", CopySource={"Bucket": BUCKET, "Key": source})
    decision = {
        "passed": passed,
        "users": 812,
        "margin": 0.02,
        "min_users": 100,
        "reasons": [] if passed else ["NDCG@10: new 0.0400 < 0.0490 (served 0.0500 less 2.0%)"],
        "checks": [
            {"metric": "NDCG@10", "served": 0.05, "new": 0.052 if passed else 0.04, "passed": passed},
            {"metric": "HR@10", "served": 0.1, "new": 0.11, "passed": True},
        ],
    }
    report = {"served_version": "v1", "new_version": world.versions[new], "decision": decision}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        body = json.dumps(report).encode()
        member = tarfile.TarInfo("decision.json")
        member.size = len(body)
        tar.addfile(member, io.BytesIO(body))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/output.tar.gz", Body=buffer.getvalue())


def _through_gate(world: World, events_url: str, *, passed: bool) -> dict[str, Any]:
    state = _step(world, "window", _state(world, events_url))
    state = _step(world, "train", state)
    _job_output(world, state["run"], passed=passed)
    state = _step(world, "training_status", state)
    return _step(world, "gate", state)


def test_window_fixes_the_cut_and_hands_the_served_model_to_the_job(world: World, event_log: str) -> None:
    deployed_and_promoted(world)
    run = _step(world, "window", _state(world, event_log))["run"]
    assert run["cut"] == "2026-11-14T06:00:00+00:00"
    assert (run["log_objects"], run["window_objects"]) == (2, 1)
    assert run["served_version"] == world.versions[0]
    assert run["served_model_data_url"] == world.tarball(0)
    assert run["job_name"] == "shoprec-dev-retrain-20261121-060000"


def test_train_starts_the_planned_job_and_status_follows_it(world: World, event_log: str) -> None:
    deployed_and_promoted(world)
    state = _step(world, "window", _state(world, event_log))
    state = _step(world, "train", state)
    (request,) = world.recorder.of("CreateTrainingJob")
    assert request == training_job_request(RetrainConfig.model_validate(state["config"]), state["run"])
    state = _step(world, "training_status", state)
    run = state["run"]
    assert run["job_done"] is (run["job_status"] in ("Completed", "Failed", "Stopped"))
    assert world.recorder.of("DescribeTrainingJob")[0] == {"TrainingJobName": run["job_name"]}


def test_a_passed_gate_publishes_canaries_and_promotes_the_new_version(world: World, event_log: str) -> None:
    deployed_and_promoted(world)
    state = _through_gate(world, event_log, passed=True)
    assert state["run"]["gate_passed"] is True
    assert state["run"]["figures"] == {
        "served_NDCG@10": 0.05,
        "new_NDCG@10": 0.052,
        "served_HR@10": 0.1,
        "new_HR@10": 0.11,
    }
    state = _step(world, "publish", state)
    assert state["run"]["published_version"] == world.versions[1]
    state = _step(world, "deploy", state)
    assert world.parameters()["ModelDataUrl"] == world.tarball(1)
    assert world.parameters()["DeploymentCanaryInstances"] == "1"  # 25 % of the 4 instances
    state = _step(world, "canary", state)
    assert state["run"]["canary"] == "healthy"
    _step(world, "promote", state)
    assert world.parameters()["ModelVersion"] == world.versions[1].removeprefix("sha256:")


def test_an_alarm_during_the_canary_rolls_the_endpoint_back(world: World, event_log: str) -> None:
    deployed_and_promoted(world)
    state = _step(world, "deploy", _step(world, "publish", _through_gate(world, event_log, passed=True)))
    alarm = test_rollout.ALARMS["api-5xx"]
    world.clients.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="5xx")
    state = _step(world, "canary", state)
    assert state["run"]["canary"] == "failed"
    assert state["run"]["alarm_states"][alarm] == "ALARM"
    _step(world, "rollback", state)
    assert world.parameters()["ModelDataUrl"] == world.tarball(0)
    assert world.parameters()["ModelVersion"] == world.versions[0].removeprefix("sha256:")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_refused_gate_is_a_metric_and_a_log_line_not_a_deploy(
    world: World, event_log: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    deployed_and_promoted(world)
    updates = len(world.updates())
    lines = _Records()
    logging.getLogger(logger.service).addHandler(lines)
    metrics.clear_metrics()
    capsys.readouterr()
    try:
        state = _through_gate(world, event_log, passed=False)
    finally:
        logging.getLogger(logger.service).removeHandler(lines)
    metrics.flush_metrics()
    out = capsys.readouterr().out
    assert state["run"]["gate_passed"] is False
    assert state["run"]["gate_reasons"] == ["NDCG@10: new 0.0400 < 0.0490 (served 0.0500 less 2.0%)"]
    assert len(world.updates()) == updates  # nothing was deployed
    emf = next(json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line)
    assert emf["RetrainGateRefused"] in (1.0, [1.0])
    assert emf["RetrainNewNDCGAt10"] in (0.04, [0.04])
    assert emf["RetrainServedNDCGAt10"] in (0.05, [0.05])
    steps = [(getattr(r, "retrain_step", None), getattr(r, "outcome", None)) for r in lines.records]
    assert steps == [
        ("window", "Done"),
        ("train", "Done"),
        ("training_status", "Completed"),
        ("gate", "Refused"),
    ]


def test_a_window_without_recent_events_fails_the_run(world: World, moto_server: str) -> None:
    s3 = aws_client("s3", timeout_s=10)
    s3.create_bucket(Bucket="shoprec-quiet-log")
    s3.put_object(Bucket="shoprec-quiet-log", Key="events/date=2026-01-01/a.jsonl", Body=b"{}\n")
    with pytest.raises(RetrainError, match="no events logged under s3://shoprec-quiet-log/events/ since"):
        _step(world, "window", _state(world, "s3://shoprec-quiet-log/events/"))
