"""The scheduled retraining in template.yaml and statemachine/retrain.asl.json, checked against the code
they drive: every Task names a step the function knows, every Choice reads a field the steps write, the
schedule's input is a valid RetrainConfig, the gate alarm watches the metric the gate step records, and the
roles grant what the steps call and no more than their own resources."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.integration.template_file import ROOT, load_template, props

from shoprec.deploy.retrain_steps import STEPS, RetrainConfig, outcome_of

pytestmark = pytest.mark.infra

ASL = ROOT / "statemachine" / "retrain.asl.json"


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    res: dict[str, Any] = load_template()["Resources"]
    return res


@pytest.fixture(scope="module")
def states() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ASL.read_text())["States"]
    return data


def _statements(resources: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    docs = props(resources, role)["Policies"]
    return {s["Sid"]: s for doc in docs for s in doc["PolicyDocument"]["Statement"]}


def test_the_schedule_starts_the_state_machine_with_a_valid_config(resources: dict[str, Any]) -> None:
    schedule = props(resources, "RetrainScheduleRule")
    assert resources["RetrainScheduleRule"]["Type"] == "AWS::Scheduler::Schedule"
    assert schedule["Target"]["Arn"] == {"Ref": "RetrainStateMachine"}
    assert schedule["State"] == {"Fn::If": ["RetrainEnabled", "ENABLED", "DISABLED"]}
    text, variables = schedule["Target"]["Input"]["Fn::Sub"]
    # Fill every ${...} as CloudFormation would (names and numbers), then validate as the function does.
    numbers = {"RetrainHoldoutDays": "7", "RetrainGateMargin": "0.02", "RetrainGateMinUsers": "100"}
    filled = re.sub(r"\$\{([^}]+)\}", lambda m: numbers.get(m.group(1), f"x-{m.group(1)}"), text)
    config = RetrainConfig.model_validate(json.loads(filled)["config"])
    assert (config.holdout_days, config.gate_margin, config.gate_min_users) == (7, 0.02, 100)
    assert config.role_arn == "x-RetrainTrainingRole.Arn"
    assert set(variables) == {"DatasetUrl"}
    start = _statements(resources, "RetrainSchedulerRole")["StartRetraining"]
    assert (start["Action"], start["Resource"]) == ("states:StartExecution", {"Ref": "RetrainStateMachine"})


def test_the_state_machine_runs_the_function_s_steps(
    resources: dict[str, Any], states: dict[str, Any]
) -> None:
    machine = props(resources, "RetrainStateMachine")
    assert resources["RetrainStateMachine"]["Type"] == "AWS::Serverless::StateMachine"
    assert machine["DefinitionUri"] == "statemachine/retrain.asl.json"
    assert machine["DefinitionSubstitutions"]["RetrainFunctionArn"] == {
        "Fn::GetAtt": ["RetrainFunction", "Arn"]
    }
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    steps = {t["Parameters"]["Payload"]["step"] for t in tasks.values()}
    assert steps == set(STEPS)
    for name, task in tasks.items():
        assert task["Parameters"]["FunctionName"] == "${RetrainFunctionArn}", name
        assert task["Next"] in states, name
        assert all(c["Next"] in states for c in task.get("Catch", [])), name
    invoke = _statements(resources, "RetrainStateMachineRole")["RunSteps"]
    assert invoke["Resource"] == {"Fn::GetAtt": ["RetrainFunction", "Arn"]}


def test_the_choices_read_what_the_steps_write(states: dict[str, Any]) -> None:
    choices = [c for s in states.values() if s["Type"] == "Choice" for c in s["Choices"]]
    fields = {c["Variable"].removeprefix("$.run.") for c in choices}
    assert fields == {"job_done", "job_status", "gate_passed", "canary"}
    canary = {c["StringEquals"] for c in choices if c["Variable"] == "$.run.canary"}
    assert canary == {"waiting", "healthy"}  # and anything else ("failed") rolls back
    assert states["CanaryHealthy?"]["Default"] == "Rollback"
    assert states["GatePassed?"]["Default"] == "GateRefused"
    assert states["GateRefused"]["Type"] == "Succeed"  # refused is the gate alarm, not a failed run


def test_a_refused_gate_raises_the_alarm_on_the_metric_the_gate_step_records(
    resources: dict[str, Any],
) -> None:
    alarm = props(resources, "RetrainGateRefusedAlarm")
    metric = "Retrain" + "Gate" + outcome_of("gate", {"gate_passed": False})
    assert (alarm["Namespace"], alarm["MetricName"]) == ("shoprec", metric)
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "shoprec-api"}]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    failed = props(resources, "RetrainFailedAlarm")
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in failed["Metrics"] if "MetricStat" in m}
    assert names == {"ExecutionsFailed", "ExecutionsTimedOut"}


def test_the_steps_permissions_are_scoped_to_the_stack_s_own_resources(resources: dict[str, Any]) -> None:
    steps = _statements(resources, "RetrainFunctionRole")
    assert steps["UpdateThisStack"]["Resource"] == {"Ref": "AWS::StackId"}
    assert steps["TrainingJobs"]["Resource"]["Fn::Sub"].endswith(":training-job/shoprec-${Stage}-retrain-*")
    assert steps["PassTrainingRole"]["Resource"] == {"Fn::GetAtt": ["RetrainTrainingRole", "Arn"]}
    for sid in ("PassTrainingRole", "PassRankerRole"):
        assert steps[sid]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    for sid, statement in steps.items():
        assert statement["Resource"] != "*", sid
    job = _statements(resources, "RetrainTrainingRole")
    assert job["WriteJobOutput"]["Resource"] == {
        "Fn::Sub": "${ArtifactBucket.Arn}/retrain/shoprec-${Stage}-retrain-*"
    }
    assert job["ReadEventLog"]["Action"] == "s3:GetObject"  # the job never writes the log


def test_the_function_is_outside_the_vpc_without_the_serving_environment(resources: dict[str, Any]) -> None:
    function = props(resources, "RetrainFunction")
    assert function["CodeUri"] == "functions/retrain/"
    assert function["VpcConfig"] == {"Ref": "AWS::NoValue"}
    assert function["Environment"] == {"Ref": "AWS::NoValue"}
    assert (Path(ROOT) / "functions" / "retrain" / "handler.py").is_file()
