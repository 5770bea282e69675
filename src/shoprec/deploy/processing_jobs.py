"""Item-CF fitting as a SageMaker Processing job with Spark (``shoprec sagemaker itemcf``), through the
SageMaker Python SDK v3's ``PySparkProcessor`` (the ``aws`` extra).

For interaction logs whose co-occurrence self-join does not fit one machine (docs/scale.md, "Offline at
1M items / 50M interactions"): the job runs ``sagemaker/processing/itemcf_spark.py`` with
``smspark-submit`` in the AWS Spark processing image (Spark on YARN across ``instance_count`` instances).
Spark reads the dataset (``sequences`` format) straight from S3, so nothing is copied to the instances
first; the driver writes the neighbour table (``itemcf.npz``, ``item_ids.json``, ``itemcf.json``) to
``/opt/ml/processing/output``, uploaded to the output prefix when the job ends. The script is
self-contained (pyspark and numpy, both in the image): no shoprec package is staged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoprec.adapters.aws.s3_artifacts import parse_s3_url
from shoprec.deploy.batch_jobs import BatchJobStatus, describe_batch_job
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.training_jobs import REPO_ROOT, sdk, sdk_session
from shoprec.recall import itemcf

ITEMCF_SPARK_SCRIPT = REPO_ROOT / "sagemaker" / "processing" / "itemcf_spark.py"
OUTPUT_DIR = "/opt/ml/processing/output"
SPARK_VERSION = "3.5"
"""The AWS Spark processing image's Spark (``--image`` overrides it); the script needs Spark 3.x."""
HOLDOUTS = (0, 1, 2)


@dataclass(frozen=True)
class ItemCFJobSpec:
    """Everything an item-CF job needs; see ``shoprec sagemaker itemcf --help`` for each field."""

    data: str
    output: str
    role: str
    k: int = itemcf.DEFAULT_K
    window: int | None = None
    alpha: float = itemcf.DEFAULT_ALPHA
    backward_weight: float = itemcf.DEFAULT_BACKWARD_WEIGHT
    distance_power: float = itemcf.DEFAULT_DISTANCE_POWER
    holdout: int = 1
    instance_type: str = "ml.r5.2xlarge"
    instance_count: int = 2
    max_run_hours: float = 2.0
    image: str | None = None
    shuffle_partitions: int = 0
    base_job_name: str = "shoprec-itemcf"
    volume_size_gb: int = 100

    def __post_init__(self) -> None:
        for name in ("data", "output"):
            try:
                parse_s3_url(getattr(self, name))
            except ValueError as exc:
                raise DeploymentError(f"--{name}: {exc}") from None
        if self.k < 1:
            raise DeploymentError(f"--k must be >= 1, got {self.k}")
        if self.window is not None and self.window < 1:
            raise DeploymentError(
                f"--window must be >= 1 (omit it for the whole sequence), got {self.window}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise DeploymentError(f"--alpha must lie in [0, 1], got {self.alpha}")
        if self.backward_weight < 0:
            raise DeploymentError(f"--backward-weight must be >= 0, got {self.backward_weight}")
        if self.holdout not in HOLDOUTS:
            raise DeploymentError(f"--holdout must be one of 0, 1, 2, got {self.holdout}")
        if not 1 <= self.instance_count <= 100:
            raise DeploymentError(f"--instance-count must be within 1..100, got {self.instance_count}")
        if not 0 < self.max_run_hours <= 120:
            raise DeploymentError(f"--max-run-hours must be within (0, 120], got {self.max_run_hours}")
        if self.shuffle_partitions < 0:
            raise DeploymentError(f"--shuffle-partitions must be >= 0, got {self.shuffle_partitions}")

    @property
    def arguments(self) -> list[str]:
        """itemcf_spark.py's command line."""
        args = ["--input", self.data, "--output-dir", OUTPUT_DIR, "--k", str(self.k)]
        args += ["--alpha", repr(self.alpha), "--backward-weight", repr(self.backward_weight)]
        args += ["--distance-power", repr(self.distance_power), "--holdout", str(self.holdout)]
        if self.window is not None:
            args += ["--window", str(self.window)]
        if self.shuffle_partitions:
            args += ["--partitions", str(self.shuffle_partitions)]
        return args


def build_processor(spec: ItemCFJobSpec, *, boto_session: Any = None) -> Any:
    """The SDK's ``PySparkProcessor`` for ``spec``: the AWS Spark image of :data:`SPARK_VERSION` unless
    ``spec.image``; the script is staged under the output prefix (the session's default bucket)."""
    session = sdk_session(spec.output, boto_session=boto_session)
    spark = sdk("sagemaker.core.spark.processing")
    return spark.PySparkProcessor(
        role=spec.role,
        instance_type=spec.instance_type,
        instance_count=spec.instance_count,
        framework_version=None if spec.image else SPARK_VERSION,
        image_uri=spec.image,
        volume_size_in_gb=spec.volume_size_gb,
        max_runtime_in_seconds=round(spec.max_run_hours * 3600),
        base_job_name=spec.base_job_name,
        sagemaker_session=session,
        env={"PYTHONUNBUFFERED": "1"},
    )


def job_outputs(spec: ItemCFJobSpec) -> list[Any]:
    """The ``itemcf`` output: the neighbour table, uploaded to ``spec.output`` when the job ends."""
    shapes = sdk("sagemaker.core.shapes")
    return [
        shapes.ProcessingOutput(
            output_name="itemcf",
            s3_output=shapes.ProcessingS3Output(
                s3_uri=spec.output.rstrip("/"), local_path=OUTPUT_DIR, s3_upload_mode="EndOfJob"
            ),
        )
    ]


@dataclass(frozen=True)
class ItemCFJob:
    """A launched job: its name and where its table will be."""

    name: str
    output: str


def launch_itemcf_job(spec: ItemCFJobSpec, *, boto_session: Any = None) -> ItemCFJob:
    """Create the Processing job and return at once (:func:`wait_for_itemcf_job` follows it)."""
    if not ITEMCF_SPARK_SCRIPT.is_file():
        raise DeploymentError(
            f"{ITEMCF_SPARK_SCRIPT} not found: run from a shoprec checkout (pip install -e .)"
        )
    processor = build_processor(spec, boto_session=boto_session)
    processor.run(
        submit_app=str(ITEMCF_SPARK_SCRIPT),
        outputs=job_outputs(spec),
        arguments=spec.arguments,
        wait=False,
        logs=False,
    )
    return ItemCFJob(name=str(processor.latest_job.processing_job_name), output=spec.output.rstrip("/"))


def wait_for_itemcf_job(
    name: str,
    *,
    on_change: Callable[[BatchJobStatus], None],
    poll_s: float = 30.0,
    sagemaker: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchJobStatus:
    """Poll until the job ends, calling ``on_change`` whenever its status changes; ``DeploymentError`` when
    it did not complete (with the script's message, which it writes to the job's ExitMessage)."""
    last = ""
    while True:
        status = describe_batch_job(name, sagemaker=sagemaker)
        if status.status != last:
            on_change(status)
            last = status.status
        if status.done:
            if status.status != "Completed":
                reason = status.failure_reason or status.exit_message or "no reason given"
                raise DeploymentError(f"item-CF job {name} {status.status}: {reason}")
            return status
        sleep(poll_s)
