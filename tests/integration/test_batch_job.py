"""Batch recommendations on SageMaker Processing: ``shoprec sagemaker batch`` against moto in server mode
(the request checked against the botocore model, the staged code read back from S3), and the job's entry
point, sagemaker/batch/batch.py, run from staged code as the job runs it."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.aws_requests import RequestRecorder
from typer.testing import CliRunner

from shoprec.adapters.aws.clients import aws_client
from shoprec.cli import app
from shoprec.data import load_dataset
from shoprec.deploy.batch_jobs import BATCH_SCRIPT, BATCH_SOURCE
from shoprec.deploy.training_jobs import staged_source
from shoprec.services.batch import run_batch

pytest.importorskip("sagemaker.core.processing", reason="the SageMaker SDK is the aws extra")
pytestmark = pytest.mark.filterwarnings("ignore:sagemaker.train.configs has been moved:DeprecationWarning")

BUCKET = "shoprec-batch-job"
ROLE = "arn:aws:iam::123456789012:role/shoprec-sagemaker"
MODELS = f"s3://{BUCKET}/models/" + "ab" * 32
DATA = f"s3://{BUCKET}/datasets/scientific/"
USERS = 600
runner = CliRunner()


@pytest.fixture(scope="module")
def aws(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """moto with the artifact bucket; the SDK's telemetry off and role validation skipped."""
    config = tmp_path_factory.mktemp("sagemaker-config") / "config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
        mp.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
        s3 = aws_client("s3", timeout_s=60)
        s3.create_bucket(Bucket=BUCKET)
        yield s3


@pytest.fixture
def recorder(aws: Any) -> Iterator[RequestRecorder]:
    """Records the requests of the SageMaker clients: the SDK session's and the one following the job."""
    rec = RequestRecorder()
    detach = [rec.attach(aws_client("sagemaker", timeout_s=t)) for t in (60, 30)]
    yield rec
    for stop in detach:
        stop()


def launch(*extra: str) -> Any:
    return runner.invoke(
        app,
        ["sagemaker", "batch", "--artifacts", MODELS, "--data", DATA, "--role", ROLE, *extra],
        catch_exceptions=False,
    )


def test_the_job_gets_the_bundle_the_dataset_and_the_staged_entry_point(
    aws: Any, recorder: RequestRecorder
) -> None:
    result = launch(
        "--bucket", BUCKET, "--k", "10", "--dataset-path", "interactions", "--format", "amazon-json",
        "--instance-type", "ml.c5.2xlarge", "--instance-count", "2", "--max-run-hours", "0.5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (request,) = recorder.of("CreateProcessingJob")
    recorder.assert_all_valid()
    assert result.output.split("batch job ")[1].split()[0] == request["ProcessingJobName"]
    assert request["ProcessingJobName"].startswith("shoprec-batch-")

    spec = request["AppSpecification"]
    assert spec["ImageUri"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-cpu-py312"
    assert spec["ContainerEntrypoint"] == ["/bin/bash", "/opt/ml/processing/input/entrypoint/runproc.sh"]
    assert spec["ContainerArguments"] == [
        "--k", "10", "--format", "amazon-json", "--dataset-path", "interactions",
    ]  # fmt: skip
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["model"]["S3Uri"] == MODELS + "/"
    assert inputs["model"]["LocalPath"] == "/opt/ml/processing/input/model"
    assert inputs["data"]["S3Uri"] == DATA
    assert inputs["data"]["LocalPath"] == "/opt/ml/processing/input/data"
    assert {inputs[n]["S3DataDistributionType"] for n in ("model", "data")} == {"FullyReplicated"}
    assert set(inputs) == {"model", "data", "code", "entrypoint"}
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"] == {
        "S3Uri": f"s3://{BUCKET}/batch",
        "LocalPath": "/opt/ml/processing/output",
        "S3UploadMode": "EndOfJob",
    }
    cluster = request["ProcessingResources"]["ClusterConfig"]
    assert (cluster["InstanceType"], cluster["InstanceCount"]) == ("ml.c5.2xlarge", 2)
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}
    assert request["RoleArn"] == ROLE

    # The code: batch.py, its requirements and the package under src/, staged under the output prefix;
    # runproc.sh installs the requirements and runs batch.py with the job's arguments.
    code = inputs["code"]["S3Uri"]
    assert code.startswith(f"s3://{BUCKET}/batch/code/{request['ProcessingJobName']}/")
    tarball = aws.get_object(Bucket=BUCKET, Key=code.removeprefix(f"s3://{BUCKET}/") + "sourcedir.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(tarball["Body"].read()), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert {"batch.py", "requirements.txt", "src/shoprec/services/batch.py"} <= names
    assert not any("__pycache__" in n for n in names)
    runproc = aws.get_object(Bucket=BUCKET, Key=code.removeprefix(f"s3://{BUCKET}/") + "runproc.sh")
    script = runproc["Body"].read().decode()
    assert "install_requirements.py requirements.txt" in script
    assert 'python3 batch.py "$@"' in script


def test_wait_follows_the_job_and_reports_why_it_failed(aws: Any, recorder: RequestRecorder) -> None:
    recorder.fakes["DescribeProcessingJob"] = lambda params: {
        "ProcessingJobName": params["ProcessingJobName"],
        "ProcessingJobStatus": "Failed",
        "ExitMessage": "dataset 'x' not found",
    }
    result = runner.invoke(
        app,
        [
            "sagemaker", "batch", "--artifacts", MODELS, "--data", DATA, "--role", ROLE,
            "--output", f"s3://{BUCKET}/campaigns/", "--wait",
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "Failed: dataset 'x' not found" in said
    (request,) = recorder.of("CreateProcessingJob")
    assert request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == f"s3://{BUCKET}/campaigns"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--artifacts", "models/abc"], "--artifacts"),
        (["--dataset-path", "../secrets"], "--dataset-path"),
        (["--k", "0"], "--k must be >= 1"),
    ],
)
def test_bad_options_are_refused_before_anything_is_launched(
    aws: Any, recorder: RequestRecorder, args: list[str], message: str
) -> None:
    result = runner.invoke(
        app,
        [
            "sagemaker",
            "batch",
            "--artifacts",
            MODELS,
            "--data",
            DATA,
            "--role",
            ROLE,
            "--bucket",
            BUCKET,
            *args,
        ],
    )
    assert result.exit_code == 2
    assert message in result.output
    assert recorder.of("CreateProcessingJob") == []


# --- the entry point ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def channel(scientific_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data input as the job sees it: the first users of Amazon Scientific as a sequences file."""
    users = json.loads((scientific_dir / "interactions.json").read_text())
    data = tmp_path_factory.mktemp("input") / "data"
    (data / "scientific").mkdir(parents=True)
    lines = [f"{u} " + " ".join(map(str, items)) for u, items in list(users.items())[:USERS]]
    (data / "scientific" / "sequences.txt").write_text("\n".join(lines) + "\n")
    return data


@pytest.fixture(scope="module")
def staged() -> Iterator[Path]:
    """The job's code folder as ``shoprec sagemaker batch`` stages it: batch.py beside src/shoprec."""
    with staged_source(BATCH_SOURCE, BATCH_SCRIPT) as source:
        yield source


def run_entry(staged: Path, bundle_dir: Path, channel: Path, out: Path, *args: str) -> dict[str, Any]:
    argv = [
        sys.executable, str(staged / BATCH_SCRIPT), "--model-dir", str(bundle_dir),
        "--data-dir", str(channel), "--output-dir", str(out), "--dataset-path", "scientific",
        "--k", "15", "--threads", "1", *args,
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=staged)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary


def test_the_entry_points_shards_hold_every_user_once_with_the_lists_of_shoprec_batch(
    staged: Path, bundle_dir: Path, channel: Path, tmp_path: Path
) -> None:
    parts = [run_entry(staged, bundle_dir, channel, tmp_path / "out", "--shard", f"{i}/2") for i in (0, 1)]
    assert [p["users"] for p in parts] == [USERS // 2, USERS // 2]
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [
        "recommendations.part-00000-of-00002.jsonl",
        "recommendations.part-00001-of-00002.jsonl",
    ]
    sharded = {}
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert row["user_id"] not in sharded
            sharded[row["user_id"]] = row

    whole = tmp_path / "whole.jsonl"
    run_batch(bundle_dir, channel / "scientific", whole, k=15, threads=1)
    rows = [json.loads(line) for line in whole.read_text(encoding="utf-8").splitlines()]
    assert [r["user_id"] for r in rows] == load_dataset(channel / "scientific").user_ids
    assert {r["user_id"]: r for r in rows} == sharded


def test_one_instance_writes_one_file_and_a_bad_dataset_path_fails_with_a_message(
    staged: Path, bundle_dir: Path, channel: Path, tmp_path: Path
) -> None:
    summary = run_entry(staged, bundle_dir, channel, tmp_path / "out")
    assert summary["users"] == USERS
    assert summary["shard"] == "0/1"
    assert [f.name for f in (tmp_path / "out").iterdir()] == ["recommendations.jsonl"]

    proc = subprocess.run(
        [sys.executable, str(staged / BATCH_SCRIPT), "--model-dir", str(bundle_dir),
         "--data-dir", str(channel), "--output-dir", str(tmp_path / "none"), "--dataset-path", "beauty"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "error: dataset" in proc.stderr
    assert "not found" in proc.stderr


def test_an_instance_finds_its_share_from_the_jobs_hosts(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("batch_entry", BATCH_SOURCE / BATCH_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-3", "hosts": ["algo-2", "algo-1", "algo-3"]}))
    assert entry.shard_of("", config) == (2, 3)
    assert entry.shard_of("", tmp_path / "absent.json") == (0, 1)
    assert entry.shard_of("1/4", config) == (1, 4)
    with pytest.raises(ValueError, match="expected i/n"):
        entry.shard_of("1-4", config)
