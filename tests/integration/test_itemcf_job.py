"""Item-CF on SageMaker Processing with Spark: ``shoprec sagemaker itemcf`` against moto in server mode (the
CreateProcessingJob request checked against the botocore model, the staged script read back from S3; moto
does not run Spark). The Spark script itself is tested in tests/integration/test_itemcf_spark.py."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from tests.integration.aws_requests import RequestRecorder
from typer.testing import CliRunner

from shoprec.adapters.aws.clients import aws_client
from shoprec.cli import app
from shoprec.cli.sagemaker import sagemaker_itemcf
from shoprec.deploy.processing_jobs import ITEMCF_SPARK_SCRIPT, ItemCFJobSpec
from shoprec.recall import itemcf

pytest.importorskip("sagemaker.core.spark.processing", reason="the SageMaker SDK is the aws extra")
pytestmark = pytest.mark.filterwarnings("ignore:sagemaker.train.configs has been moved:DeprecationWarning")

BUCKET = "shoprec-itemcf-job"
ROLE = "arn:aws:iam::123456789012:role/shoprec-sagemaker"
DATA = f"s3://{BUCKET}/datasets/shop/sequences.txt"
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
    rec = RequestRecorder()
    detach = [rec.attach(aws_client("sagemaker", timeout_s=t)) for t in (60, 30)]
    yield rec
    for stop in detach:
        stop()


def launch(*extra: str, catch: bool = False) -> Any:
    return runner.invoke(
        app,
        ["sagemaker", "itemcf", "--data", DATA, "--role", ROLE, *extra],
        catch_exceptions=catch,
    )


def test_the_job_runs_the_spark_script_on_the_spark_image_with_fit_itemcfs_parameters(
    aws: Any, recorder: RequestRecorder
) -> None:
    result = launch(
        "--bucket", BUCKET, "--k", "50", "--window", "10", "--alpha", "0.9", "--holdout", "2",
        "--instance-type", "ml.r5.4xlarge", "--instance-count", "3", "--max-run-hours", "0.5",
        "--shuffle-partitions", "400",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (request,) = recorder.of("CreateProcessingJob")
    recorder.assert_all_valid()
    name = request["ProcessingJobName"]
    assert result.output.split("item-CF job ")[1].split()[0] == name
    assert name.startswith("shoprec-itemcf-")

    spec = request["AppSpecification"]
    assert (
        spec["ImageUri"] == "173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu"
    )
    # smspark-submit runs the staged script on YARN with the job's arguments.
    assert spec["ContainerEntrypoint"] == [
        "smspark-submit",
        "/opt/ml/processing/input/code/itemcf_spark.py",
    ]
    assert spec["ContainerArguments"] == [
        "--input", DATA, "--output-dir", "/opt/ml/processing/output", "--k", "50",
        "--alpha", "0.9", "--backward-weight", "0.25", "--distance-power", "0.5", "--holdout", "2",
        "--window", "10", "--partitions", "400",
    ]  # fmt: skip
    # Spark reads the data from S3 itself: the only input is the script.
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert set(inputs) == {"code"}
    assert inputs["code"]["LocalPath"] == "/opt/ml/processing/input/code"
    code = inputs["code"]["S3Uri"]
    assert code == f"s3://{BUCKET}/itemcf/{name}/input/code/itemcf_spark.py"
    staged = aws.get_object(Bucket=BUCKET, Key=code.removeprefix(f"s3://{BUCKET}/"))
    assert staged["Body"].read() == ITEMCF_SPARK_SCRIPT.read_bytes()

    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == "itemcf"
    assert output["S3Output"] == {
        "S3Uri": f"s3://{BUCKET}/itemcf",
        "LocalPath": "/opt/ml/processing/output",
        "S3UploadMode": "EndOfJob",
    }
    cluster = request["ProcessingResources"]["ClusterConfig"]
    assert (cluster["InstanceType"], cluster["InstanceCount"]) == ("ml.r5.4xlarge", 3)
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}
    assert request["RoleArn"] == ROLE


def test_the_defaults_are_fit_itemcfs_and_an_image_can_be_given(aws: Any, recorder: RequestRecorder) -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-spark:3.5"
    result = launch("--output", f"s3://{BUCKET}/tables/v1/", "--image", image)
    assert result.exit_code == 0, result.output
    (request,) = recorder.of("CreateProcessingJob")
    recorder.assert_all_valid()
    assert request["AppSpecification"]["ImageUri"] == image
    args = request["AppSpecification"]["ContainerArguments"]
    given = dict(zip(args[::2], args[1::2], strict=True))
    assert given == {
        "--input": DATA,
        "--output-dir": "/opt/ml/processing/output",
        "--k": str(itemcf.DEFAULT_K),
        "--alpha": repr(itemcf.DEFAULT_ALPHA),
        "--backward-weight": repr(itemcf.DEFAULT_BACKWARD_WEIGHT),
        "--distance-power": repr(itemcf.DEFAULT_DISTANCE_POWER),
        "--holdout": "1",
    }
    output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]
    assert output["S3Uri"] == f"s3://{BUCKET}/tables/v1"
    cluster = request["ProcessingResources"]["ClusterConfig"]
    assert (cluster["InstanceType"], cluster["InstanceCount"]) == ("ml.r5.2xlarge", 2)


def test_the_clis_defaults_are_the_specs_and_fit_itemcfs() -> None:
    params = inspect.signature(sagemaker_itemcf).parameters
    spec = ItemCFJobSpec(data=DATA, output=f"s3://{BUCKET}/x", role=ROLE)
    for name in ("k", "window", "alpha", "backward_weight", "distance_power", "holdout", "instance_type"):
        assert params[name].default == getattr(spec, name), name
    fit = inspect.signature(itemcf.fit_itemcf).parameters
    for name in ("k", "window", "alpha", "backward_weight", "distance_power"):
        assert params[name].default == fit[name].default, name


def test_wait_follows_the_job_and_reports_the_scripts_message(aws: Any, recorder: RequestRecorder) -> None:
    recorder.fakes["DescribeProcessingJob"] = lambda params: {
        "ProcessingJobName": params["ProcessingJobName"],
        "ProcessingJobStatus": "Failed",
        "ExitMessage": "s3://b/x: user '7' has no items",
    }
    result = launch("--bucket", BUCKET, "--wait", catch=True)
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "Failed: s3://b/x: user '7' has no items" in said
    assert len(recorder.of("CreateProcessingJob")) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "datasets/shop"], "--data"),
        (["--k", "0"], "--k must be >= 1"),
        (["--window", "0"], "--window must be >= 1"),
        (["--alpha", "1.5"], "--alpha must lie in [0, 1]"),
        (["--backward-weight", "-1"], "--backward-weight must be >= 0"),
        (["--holdout", "3"], "--holdout must be one of 0, 1, 2"),
        (["--instance-count", "0"], "--instance-count must be within 1..100"),
    ],
)
def test_bad_options_are_refused_before_anything_is_launched(
    aws: Any, recorder: RequestRecorder, args: list[str], message: str
) -> None:
    result = launch("--bucket", BUCKET, *args, catch=True)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert recorder.of("CreateProcessingJob") == []


def test_no_bucket_and_no_output_is_refused(aws: Any, recorder: RequestRecorder) -> None:
    result = launch(catch=True)
    assert result.exit_code == 2
    assert "--output or --bucket is required" in " ".join(result.output.split())
