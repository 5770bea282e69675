"""Batch recommendations as a SageMaker Processing job (``shoprec sagemaker batch``), with the SageMaker
Python SDK v3 ``FrameworkProcessor`` (the ``aws`` extra).

The job runs ``sagemaker/batch/batch.py`` (the code of ``shoprec batch``) in the AWS PyTorch CPU image,
which brings Python and numpy; the source channel is a temporary folder holding ``batch.py``, its
``requirements.txt`` (onnxruntime, pydantic) and the ``shoprec`` package under ``src/``. Inputs: the
published bundle (``s3://.../models/VERSION``) at ``/opt/ml/processing/input/model`` and the dataset prefix
at ``/opt/ml/processing/input/data``, both copied whole to every instance. Output: the JSONL lines, uploaded
from ``/opt/ml/processing/output`` to the output prefix when the job ends. With several instances each
lists its share of the users (every n-th) into its own part file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.s3_artifacts import parse_s3_url
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.training_jobs import (
    PYTHON_VERSION,
    PYTORCH_VERSION,
    REPO_ROOT,
    REQUIREMENTS,
    TERMINAL_STATES,
    sdk,
    sdk_session,
    staged_source,
)

BATCH_SOURCE = REPO_ROOT / "sagemaker" / "batch"
BATCH_SCRIPT = "batch.py"
MODEL_DIR = "/opt/ml/processing/input/model"
DATA_DIR = "/opt/ml/processing/input/data"
OUTPUT_DIR = "/opt/ml/processing/output"


@dataclass(frozen=True)
class BatchJobSpec:
    """Everything a batch job needs; see ``shoprec sagemaker batch --help`` for each field."""

    artifacts: str
    data: str
    output: str
    role: str
    k: int = 20
    dataset_path: str = ""
    fmt: str = "auto"
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    max_run_hours: float = 1.0
    image: str | None = None
    base_job_name: str = "shoprec-batch"
    volume_size_gb: int = 30

    def __post_init__(self) -> None:
        for name in ("artifacts", "data", "output"):
            try:
                parse_s3_url(getattr(self, name))
            except ValueError as exc:
                raise DeploymentError(f"--{name}: {exc}") from None
        if self.k < 1:
            raise DeploymentError(f"--k must be >= 1, got {self.k}")
        if not 1 <= self.instance_count <= 100:
            raise DeploymentError(f"--instance-count must be within 1..100, got {self.instance_count}")
        if not 0 < self.max_run_hours <= 120:
            raise DeploymentError(f"--max-run-hours must be within (0, 120], got {self.max_run_hours}")
        if self.dataset_path.startswith("/") or ".." in self.dataset_path.split("/"):
            raise DeploymentError(
                f"--dataset-path {self.dataset_path!r} must be relative to --data, without '..'"
            )

    @property
    def arguments(self) -> list[str]:
        """batch.py's command line."""
        args = ["--k", str(self.k), "--format", self.fmt]
        if self.dataset_path:
            args += ["--dataset-path", self.dataset_path]
        return args


def processing_image_uri(region: str, instance_type: str) -> str:
    """The AWS PyTorch image (the CPU build for a CPU instance): Python 3.12 and numpy, onnxruntime and
    pydantic installed over it from ``requirements.txt``."""
    uri: str = sdk("sagemaker.core.image_uris").retrieve(
        framework="pytorch",
        region=region,
        version=PYTORCH_VERSION,
        py_version=PYTHON_VERSION,
        instance_type=instance_type,
        image_scope="training",
    )
    return uri


def build_processor(spec: BatchJobSpec, *, boto_session: Any = None) -> Any:
    """The SDK's ``FrameworkProcessor`` for ``spec``; code is staged under ``{output}/code``."""
    session = sdk_session(spec.output, boto_session=boto_session)
    return sdk("sagemaker.core.processing").FrameworkProcessor(
        image_uri=spec.image or processing_image_uri(session.boto_region_name, spec.instance_type),
        role=spec.role,
        instance_count=spec.instance_count,
        instance_type=spec.instance_type,
        command=["python3"],
        volume_size_in_gb=spec.volume_size_gb,
        code_location=f"{spec.output.rstrip('/')}/code",
        max_runtime_in_seconds=round(spec.max_run_hours * 3600),
        base_job_name=spec.base_job_name,
        sagemaker_session=session,
        env={"PYTHONUNBUFFERED": "1"},
    )


def job_inputs(spec: BatchJobSpec) -> list[Any]:
    """The ``model`` and ``data`` inputs: the bundle and the dataset, copied whole to every instance."""
    shapes = sdk("sagemaker.core.shapes")
    return [
        shapes.ProcessingInput(
            input_name=name,
            s3_input=shapes.ProcessingS3Input(
                s3_uri=url.rstrip("/") + "/",
                local_path=local,
                s3_data_type="S3Prefix",
                s3_input_mode="File",
                s3_data_distribution_type="FullyReplicated",
            ),
        )
        for name, url, local in (("model", spec.artifacts, MODEL_DIR), ("data", spec.data, DATA_DIR))
    ]


def job_outputs(spec: BatchJobSpec) -> list[Any]:
    """The ``recommendations`` output: the JSONL files, uploaded to ``spec.output`` when the job ends."""
    shapes = sdk("sagemaker.core.shapes")
    return [
        shapes.ProcessingOutput(
            output_name="recommendations",
            s3_output=shapes.ProcessingS3Output(
                s3_uri=spec.output.rstrip("/"), local_path=OUTPUT_DIR, s3_upload_mode="EndOfJob"
            ),
        )
    ]


@dataclass(frozen=True)
class BatchJob:
    """A launched job: its name and where its lines will be."""

    name: str
    output: str


def launch_batch_job(spec: BatchJobSpec, *, boto_session: Any = None) -> BatchJob:
    """Stage the code, create the Processing job and return at once (:func:`wait_for_batch_job` follows)."""
    with staged_source(BATCH_SOURCE, BATCH_SCRIPT) as source:
        processor = build_processor(spec, boto_session=boto_session)
        processor.run(
            code=BATCH_SCRIPT,
            source_dir=str(source),
            requirements=REQUIREMENTS,
            inputs=job_inputs(spec),
            outputs=job_outputs(spec),
            arguments=spec.arguments,
            wait=False,
            logs=False,
        )
    return BatchJob(name=str(processor.latest_job.processing_job_name), output=spec.output.rstrip("/"))


@dataclass(frozen=True)
class BatchJobStatus:
    """One observation of a Processing job."""

    name: str
    status: str
    failure_reason: str = ""
    exit_message: str = ""

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATES


def describe_batch_job(name: str, *, sagemaker: Any = None) -> BatchJobStatus:
    client = sagemaker if sagemaker is not None else aws_client("sagemaker", timeout_s=30)
    job = client.describe_processing_job(ProcessingJobName=name)
    return BatchJobStatus(
        name=name,
        status=str(job["ProcessingJobStatus"]),
        failure_reason=str(job.get("FailureReason", "")),
        exit_message=str(job.get("ExitMessage", "")),
    )


def wait_for_batch_job(
    name: str,
    *,
    on_change: Callable[[BatchJobStatus], None],
    poll_s: float = 30.0,
    sagemaker: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchJobStatus:
    """Poll until the job ends, calling ``on_change`` whenever its status changes; ``DeploymentError`` when
    it did not complete."""
    last = ""
    while True:
        status = describe_batch_job(name, sagemaker=sagemaker)
        if status.status != last:
            on_change(status)
            last = status.status
        if status.done:
            if status.status != "Completed":
                reason = status.failure_reason or status.exit_message or "no reason given"
                raise DeploymentError(f"batch job {name} {status.status}: {reason}")
            return status
        sleep(poll_s)
