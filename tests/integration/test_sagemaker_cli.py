"""``shoprec sagemaker ...`` against moto in server mode: what AWS would receive, checked against the
botocore service model (max lengths, enums and patterns included, which moto does not check).

Deploying, promoting and rolling back go through the stack: ``test_rollout.py``.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.integration.aws_requests import RequestRecorder
from tests.integration.model_versions import derive_version
from typer.testing import CliRunner

from shoprec.artifacts import read_manifest
from shoprec.cli import app
from shoprec.deploy.rollout import AwsClients

pytest.importorskip("sagemaker.train", reason="the SageMaker SDK is the aws extra")
# The SDK imports its own deprecated module; nothing here uses it.
pytestmark = pytest.mark.filterwarnings("ignore:sagemaker.train.configs has been moved:DeprecationWarning")

BUCKET = "shoprec-sagemaker-cli"
ROLE = "arn:aws:iam::123456789012:role/shoprec-sagemaker"
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
    """Records the requests of the clients the CLI uses (the same cached clients)."""
    rec = RequestRecorder()
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


# --- publish ------------------------------------------------------


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
    # The manifest and the files it lists, nothing else: no verification stamp (it names this machine's
    # inodes and times, and would make the tarball differ per publish).
    listed = [entry.name for entry in read_manifest(versions.first).files]
    assert sorted(names) == sorted([*listed, "manifest.json"])
    assert any(name.startswith("catalog/") for name in names)  # the columnar catalogue travels too


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
