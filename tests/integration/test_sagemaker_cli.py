"""``shoprec sagemaker ...`` against moto in server mode: what AWS would receive, checked against the
botocore service model (max lengths, enums and patterns included, which moto does not check).

moto implements neither ``UpdateEndpoint`` nor deployment configs, so that one call is answered by a fake
registered on the client's ``before-call`` event (the request is still built, validated and recorded by
botocore; the fake re-points the moto endpoint at the new config as AWS would at the end of the update).
The exact UpdateEndpoint requests are also checked with ``botocore.stub.Stubber`` in
``test_deploy_requests.py``.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.integration.aws_requests import RequestRecorder
from tests.integration.model_versions import derive_version
from typer.testing import CliRunner

from shoprec.adapters.aws.clients import aws_client
from shoprec.artifacts.bundle import read_manifest
from shoprec.cli import app
from shoprec.deploy.endpoints import VERSION_ENV, AwsClients

pytest.importorskip("sagemaker.train", reason="the SageMaker SDK is the aws extra")
# The SDK imports its own deprecated module; nothing here uses it.
pytestmark = pytest.mark.filterwarnings("ignore:sagemaker.train.configs has been moved:DeprecationWarning")

BUCKET = "shoprec-sagemaker-cli"
ROLE = "arn:aws:iam::123456789012:role/shoprec-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shoprec-ranker:1.0"
PARAMETER = "/shoprec/test/model-version"
ENDPOINT = "shoprec-ranker-test"
INSTANCE = "ml.c5.xlarge"  # moto's list of endpoint instance types predates the c7i the CLI defaults to
runner = CliRunner()


@pytest.fixture(scope="module")
def aws(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsClients]:
    """moto, the SDK's telemetry off and role validation skipped, and the artifact bucket."""
    config = tmp_path_factory.mktemp("sagemaker-config") / "config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
        mp.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
        mp.setenv("SAM_CLI_TELEMETRY", "0")
        clients = AwsClients.default()
        clients.s3.create_bucket(Bucket=BUCKET)
        yield clients


@pytest.fixture
def recorder(aws: AwsClients) -> Iterator[RequestRecorder]:
    """Records the requests of the clients the CLI uses (the same cached clients) and fakes UpdateEndpoint."""
    rec = RequestRecorder()
    # A second client (another cache entry) applies the update's outcome to moto without being recorded.
    backdoor = aws_client("sagemaker", timeout_s=29)

    def update_endpoint(params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        backdoor.delete_endpoint(EndpointName=name)
        backdoor.create_endpoint(EndpointName=name, EndpointConfigName=params["EndpointConfigName"])
        return {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}"}

    rec.fakes["UpdateEndpoint"] = update_endpoint
    detach = [rec.attach(aws.sagemaker), rec.attach(aws.ssm)]
    yield rec
    for stop in detach:
        stop()


@dataclass(frozen=True)
class Versions:
    first: Path
    second: Path

    def version(self, which: str) -> str:
        return read_manifest(getattr(self, which)).model_version


@pytest.fixture(scope="module")
def versions(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """Two bundle versions: the test bundle and a copy with one more file (so another content hash)."""
    second = tmp_path_factory.mktemp("second") / "bundle"
    derive_version(bundle_dir, second, "second version")
    return Versions(first=bundle_dir, second=second)


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def hex_of(version: str) -> str:
    return version.removeprefix("sha256:")


# --- training ------------------------------------------------------------------------------------------


def test_train_launches_a_torchrun_job_with_the_train_channel_and_hyperparameters(aws: AwsClients) -> None:
    output = invoke(
        "sagemaker", "train",
        "--data", f"s3://{BUCKET}/datasets/scientific/",
        "--role", ROLE,
        "--output", f"s3://{BUCKET}/training",
        "--instance-type", "ml.g5.xlarge",
        "--instance-count", "2",
        "--spot",
        "--hp", "max_len=20",
        "--hp", "hidden=32",
    )  # fmt: skip
    job_name = output.split("training job ")[1].split()[0]
    job = aws.sagemaker.describe_training_job(TrainingJobName=job_name)

    spec = job["AlgorithmSpecification"]
    assert (
        spec["TrainingImage"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-gpu-py312"
    )
    assert spec["ContainerEntrypoint"] == ["/bin/bash"]  # the SDK's sm_train.sh runs the torchrun driver
    assert job["HyperParameters"] == {"max-len": "20", "hidden": "32"}
    assert job["RoleArn"] == ROLE
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels["train"] == f"s3://{BUCKET}/datasets/scientific/"
    assert channels["code"].startswith(f"s3://{BUCKET}/training/")
    assert set(channels) == {"train", "code", "sm_drivers"}
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == 2
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert job["CheckpointConfig"]["S3Uri"].startswith(f"s3://{BUCKET}/training/")
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/training"

    # The staged code: train.py, its requirements and the shoprec package under src/.
    code = channels["code"].removeprefix(f"s3://{BUCKET}/")
    keys = {o["Key"].removeprefix(code + "/") for o in _list(aws, code)}
    assert {"train.py", "requirements.txt", "src/shoprec/training/trainer.py"} <= keys
    assert not any("__pycache__" in k for k in keys)
    distributed = _read_json(aws, channels["sm_drivers"], "distributed.json")
    assert distributed == {"process_count_per_node": None, "smp": None}  # Torchrun: one process per GPU


def test_train_with_wait_follows_the_job_and_publishes_its_bundle(
    aws: AwsClients, versions: Versions, tmp_path: Path
) -> None:
    tarball = tmp_path / "model.tar.gz"
    _pack(versions.first, tarball)

    def job_wrote_its_output(parsed: dict[str, Any], **_: Any) -> None:
        # moto completes jobs at once without running them; put the bundle where the job would.
        url = parsed.get("ModelArtifacts", {}).get("S3ModelArtifacts", "")
        if url.startswith(f"s3://{BUCKET}/"):
            aws.s3.upload_file(str(tarball), BUCKET, url.removeprefix(f"s3://{BUCKET}/"))

    event = "after-call.sagemaker.DescribeTrainingJob"
    aws.sagemaker.meta.events.register(event, job_wrote_its_output)
    try:
        output = invoke(
            "sagemaker", "train", "--data", f"s3://{BUCKET}/datasets/scientific/", "--role", ROLE,
            "--bucket", BUCKET, "--image", "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1", "--wait",
        )  # fmt: skip
    finally:
        aws.sagemaker.meta.events.unregister(event, job_wrote_its_output)
    assert "Completed" in output
    url = f"s3://{BUCKET}/models/{hex_of(versions.version('first'))}"
    assert f"published version {versions.version('first')} to {url}" in output.replace("\n", " ")
    assert _keys(aws, f"models/{hex_of(versions.version('first'))}/") >= {"manifest.json", "model.tar.gz"}


def test_a_misspelt_hyperparameter_is_refused_before_anything_is_launched(aws: AwsClients) -> None:
    result = runner.invoke(
        app,
        [
            "sagemaker",
            "train",
            "--data",
            f"s3://{BUCKET}/d/",
            "--role",
            ROLE,
            "--bucket",
            BUCKET,
            "--hp",
            "hiden=4",
        ],
    )
    assert result.exit_code == 2
    assert "unknown hyper-parameter" in result.output


# --- publish, deploy, status, promote, rollback ------------------------------------------------------


def test_publish_writes_the_bundle_and_a_deterministic_tarball_under_its_version(
    aws: AwsClients, versions: Versions
) -> None:
    prefix = f"models/{hex_of(versions.version('first'))}"
    output = invoke("sagemaker", "publish", str(versions.first), "--bucket", BUCKET)
    assert output.strip().endswith(f"s3://{BUCKET}/{prefix}")
    first = aws.s3.head_object(Bucket=BUCKET, Key=f"{prefix}/model.tar.gz")["ETag"]
    invoke("sagemaker", "publish", str(versions.first), "--bucket", BUCKET)
    assert aws.s3.head_object(Bucket=BUCKET, Key=f"{prefix}/model.tar.gz")["ETag"] == first
    body = aws.s3.get_object(Bucket=BUCKET, Key=f"{prefix}/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        names = tar.getnames()
    assert "manifest.json" in names  # at the root: SageMaker unpacks it into /opt/ml/model
    assert all("/" not in n or n.startswith("plots/") for n in names)


def test_deploy_status_promote_and_rollback(
    aws: AwsClients, versions: Versions, recorder: RequestRecorder
) -> None:
    v1, v2 = versions.version("first"), versions.version("second")
    for which in ("first", "second"):
        invoke("sagemaker", "publish", str(getattr(versions, which)), "--bucket", BUCKET)
    common = ["--endpoint", ENDPOINT, "--image", IMAGE, "--role", ROLE, "--instance-type", INSTANCE]

    # First deployment: nothing to canary against, the endpoint is created.
    output = invoke("sagemaker", "deploy", "--artifacts", f"s3://{BUCKET}/models/{hex_of(v1)}", *common)
    assert f"creating endpoint {ENDPOINT}" in output
    (create_model,) = recorder.of("CreateModel")
    assert create_model["PrimaryContainer"] == {
        "Image": IMAGE,
        "ModelDataUrl": f"s3://{BUCKET}/models/{hex_of(v1)}/model.tar.gz",
        "Environment": {VERSION_ENV: v1},
    }
    assert create_model["ExecutionRoleArn"] == ROLE
    assert create_model["EnableNetworkIsolation"] is True
    (config,) = recorder.of("CreateEndpointConfig")
    assert config["ProductionVariants"] == [
        {
            "VariantName": "primary",  # the stack's variant: its auto scaling and alarm name it
            "ModelName": create_model["ModelName"],
            "InstanceType": INSTANCE,
            "InitialInstanceCount": 2,
            "InitialVariantWeight": 1.0,
        }
    ]
    assert recorder.of("CreateEndpoint") == [
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": config["EndpointConfigName"],
            "Tags": [{"Key": "shoprec:model-version", "Value": v1}],
        }
    ]
    output = invoke("sagemaker", "promote", "--endpoint", ENDPOINT, "--parameter", PARAMETER)
    # Stored as the version's folder name, the form the stack writes (template.yaml's ModelVersion).
    assert aws.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == hex_of(v1)
    assert f"ModelVersion={hex_of(v1)}" in output

    # Second version: a blue/green canary of 1 of 4 instances (25 %), rolled back by the alarms.
    output = invoke(
        "sagemaker", "deploy", "--artifacts", f"s3://{BUCKET}/models/{hex_of(v2)}", *common,
        "--instance-count", "4", "--weight", "0.25", "--bake-minutes", "15",
        "--alarm", "shoprec-ranker-5xx", "--alarm", "shoprec-ranker-p99-latency",
    )  # fmt: skip
    assert "canary 25% of the traffic" in output
    (update,) = recorder.of("UpdateEndpoint")
    assert update["EndpointName"] == ENDPOINT
    assert update["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 900,
            },
            "TerminationWaitInSeconds": 300,
            "MaximumExecutionTimeoutInSeconds": 1800 + 2 * 900 + 300,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": "shoprec-ranker-5xx"}, {"AlarmName": "shoprec-ranker-p99-latency"}]
        },
    }
    new_config = recorder.of("CreateEndpointConfig")[-1]
    assert update["EndpointConfigName"] == new_config["EndpointConfigName"]
    assert new_config["ProductionVariants"][0]["InitialInstanceCount"] == 4

    # Until promoted, the online services keep serving the first version.
    state = json.loads(
        invoke("sagemaker", "status", "--endpoint", ENDPOINT, "--parameter", PARAMETER, "--json")
    )
    assert (state["status"], state["version"], state["served_version"]) == ("InService", v2, v1)
    invoke("sagemaker", "promote", v2, "--endpoint", ENDPOINT, "--parameter", PARAMETER)
    assert aws.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == hex_of(v2)

    # Rollback: the endpoint goes back to the first version's config all at once, the parameter too.
    output = invoke("sagemaker", "rollback", "--endpoint", ENDPOINT, "--parameter", PARAMETER)
    rollback = recorder.of("UpdateEndpoint")[-1]
    assert rollback["EndpointConfigName"] == config["EndpointConfigName"]
    assert rollback["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "ALL_AT_ONCE",
        "WaitIntervalInSeconds": 0,
    }
    assert rollback["RetainAllVariantProperties"] is True  # never shrink an auto-scaled fleet on the way back
    assert aws.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == hex_of(v1)
    state = json.loads(
        invoke("sagemaker", "status", "--endpoint", ENDPOINT, "--parameter", PARAMETER, "--json")
    )
    assert (state["version"], state["served_version"]) == (v1, v1)

    recorder.assert_all_valid()
    assert {op for _, op, _ in recorder.requests} >= {
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "UpdateEndpoint",
        "PutParameter",
    }


def test_promote_refuses_a_version_the_endpoint_does_not_serve(aws: AwsClients, versions: Versions) -> None:
    invoke("sagemaker", "publish", str(versions.first), "--bucket", BUCKET)
    invoke(
        "sagemaker", "deploy", "--artifacts", f"s3://{BUCKET}/models/{hex_of(versions.version('first'))}",
        "--endpoint", "shoprec-other", "--image", IMAGE, "--role", ROLE, "--instance-type", INSTANCE,
    )  # fmt: skip
    result = runner.invoke(
        app,
        [
            "sagemaker",
            "promote",
            versions.version("second"),
            "--endpoint",
            "shoprec-other",
            "--parameter",
            PARAMETER,
        ],
    )
    assert result.exit_code == 2
    assert "deploy that version first" in result.output


def test_deploy_refuses_artifacts_outside_their_version_folder(
    aws: AwsClients, versions: Versions, tmp_path: Path
) -> None:
    elsewhere = f"s3://{BUCKET}/not-a-version"
    copy = tmp_path / "bundle"
    shutil.copytree(versions.first, copy)
    from shoprec.adapters.aws.s3_artifacts import upload_bundle

    upload_bundle(copy, elsewhere, client=aws.s3)
    result = runner.invoke(
        app,
        [
            "sagemaker",
            "deploy",
            "--artifacts",
            elsewhere,
            "--endpoint",
            ENDPOINT,
            "--image",
            IMAGE,
            "--role",
            ROLE,
        ],
    )
    assert result.exit_code == 2
    assert "models/{version}/" in result.output


# --- helpers -------------------------------------------------------------------------------------------


def _pack(bundle_dir: Path, out: Path) -> None:
    from shoprec.deploy.models import pack_bundle

    pack_bundle(bundle_dir, out)


def _list(aws: AwsClients, prefix: str) -> list[dict[str, Any]]:
    pages = aws.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o for page in pages for o in page.get("Contents", [])]


def _keys(aws: AwsClients, prefix: str) -> set[str]:
    return {o["Key"].removeprefix(prefix) for o in _list(aws, prefix)}


def _read_json(aws: AwsClients, url: str, name: str) -> Any:
    key = url.removeprefix(f"s3://{BUCKET}/").rstrip("/") + "/" + name
    return json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
