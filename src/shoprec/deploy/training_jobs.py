"""SageMaker training jobs with the SageMaker Python SDK v3 ``ModelTrainer`` (the ``aws`` extra).

The job runs ``sagemaker/training/train.py`` in the AWS PyTorch training image under ``torchrun`` (one
process per GPU on every instance, data-parallel; see :mod:`shoprec.training.distributed`). The source
channel is a temporary folder holding ``train.py``, its ``requirements.txt`` and the ``shoprec`` package
under ``src/`` (where ``train.py`` looks for it). Input channel ``train`` is the dataset prefix; the bundle
comes back as ``{output}/{job}/output/model.tar.gz``. With spot capacity, ``/opt/ml/checkpoints`` is synced
to S3 so an interrupted job resumes from its last epoch (``train_sasrec`` resumes from ``last.pt``).
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoprec.adapters.aws.clients import aws_client, aws_region
from shoprec.adapters.aws.s3_artifacts import parse_s3_url
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.models import PublishedModel, publish_model_tarball
from shoprec.training.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[3]
TRAINING_SOURCE = REPO_ROOT / "sagemaker" / "training"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
ENTRY_SCRIPT = "train.py"
REQUIREMENTS = "requirements.txt"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"

PYTORCH_VERSION = "2.8"
"""The AWS PyTorch training image the job runs in (``--image`` overrides it); any 2.x with the dynamo
ONNX exporter works."""
PYTHON_VERSION = "py312"
EXTRA_HYPERPARAMETERS = ("dataset-path", "format")
"""Options of train.py besides TrainConfig's fields."""
TERMINAL_STATES = frozenset({"Completed", "Failed", "Stopped"})


@dataclass(frozen=True)
class TrainingJobSpec:
    """Everything a training job needs; see ``shoprec sagemaker train --help`` for each field."""

    data: str
    output: str
    role: str
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    spot: bool = False
    max_run_hours: float = 2.0
    max_wait_hours: float | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    base_job_name: str = "shoprec"
    volume_size_gb: int = 30

    def __post_init__(self) -> None:
        for name in ("data", "output"):
            url = getattr(self, name)
            try:
                parse_s3_url(url)
            except ValueError as exc:
                raise DeploymentError(f"--{name}: {exc}") from None
        if self.instance_count < 1:
            raise DeploymentError(f"--instance-count must be >= 1, got {self.instance_count}")
        if not 0 < self.max_run_hours <= 120:
            raise DeploymentError(f"--max-run-hours must be within (0, 120], got {self.max_run_hours}")
        if self.max_wait_hours is not None and not self.spot:
            raise DeploymentError("--max-wait-hours applies to --spot jobs only")
        if self.spot and self.max_wait_seconds < self.max_run_seconds:
            raise DeploymentError("--max-wait-hours must be at least --max-run-hours")

    @property
    def max_run_seconds(self) -> int:
        return round(self.max_run_hours * 3600)

    @property
    def max_wait_seconds(self) -> int:
        """Spot only: run time plus time spent waiting for capacity (default: twice the run time)."""
        hours = self.max_wait_hours if self.max_wait_hours is not None else 2 * self.max_run_hours
        return round(hours * 3600)


def sdk(module: str) -> Any:
    """A module of the SageMaker Python SDK v3 (the ``aws`` extra), or a ``DeploymentError`` saying how
    to install it. Imported on use: nothing else in shoprec needs the SDK."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DeploymentError(
            f"the SageMaker Python SDK is needed for training jobs ({exc}); install it with "
            "pip install 'shoprec[aws]'"
        ) from exc


def parse_hyperparameters(pairs: Sequence[str]) -> dict[str, str]:
    """``["max_len=50", "lr=0.001"]`` → ``{"max-len": "50", "lr": "0.001"}``, checked against train.py.

    Keys take ``-`` or ``_``; values must parse as the option's type, so a typo fails here and not an hour
    into a paid job.
    """
    defaults = TrainConfig().to_dict()
    known = {name.replace("_", "-"): type(value) for name, value in defaults.items()}
    known.update(dict.fromkeys(EXTRA_HYPERPARAMETERS, str))
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("_", "-")
        if not sep or not key:
            raise DeploymentError(f"--hp {pair!r}: expected key=value")
        if key not in known:
            raise DeploymentError(
                f"--hp {pair!r}: unknown hyper-parameter; known: {', '.join(sorted(known))}"
            )
        kind = known[key]
        try:
            kind(value)
        except ValueError:
            raise DeploymentError(f"--hp {pair!r}: {value!r} is not a valid {kind.__name__}") from None
        out[key] = value.strip()
    return out


def training_image_uri(region: str, instance_type: str, version: str = PYTORCH_VERSION) -> str:
    """The AWS PyTorch training image for ``region`` and the instance's processor (GPU or CPU build)."""
    uri: str = sdk("sagemaker.core.image_uris").retrieve(
        framework="pytorch",
        region=region,
        version=version,
        py_version=PYTHON_VERSION,
        instance_type=instance_type,
        image_scope="training",
    )
    return uri


@contextmanager
def staged_source(source: Path = TRAINING_SOURCE, entry: str = ENTRY_SCRIPT) -> Iterator[Path]:
    """A temporary source folder: ``entry``, ``requirements.txt`` (both from ``source``, the training
    script's folder by default) and the package in ``src/shoprec``."""
    if not (source / entry).is_file():
        raise DeploymentError(f"{source / entry} not found: run from a shoprec checkout (pip install -e .)")
    with tempfile.TemporaryDirectory(prefix="shoprec-src-") as tmp:
        root = Path(tmp) / "source"
        root.mkdir()
        for name in (entry, REQUIREMENTS):
            shutil.copy2(source / name, root / name)
        shutil.copytree(
            PACKAGE_DIR,
            root / "src" / "shoprec",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache"),
        )
        yield root


def sdk_session(output: str, *, boto_session: Any = None) -> Any:
    """The SDK's session, with the bucket and prefix of ``output`` (an s3:// URL) as its default bucket, so
    staged code goes there and not to a ``sagemaker-{region}-{account}`` bucket the SDK would create."""
    import boto3

    region = aws_region()
    if region is None:
        raise DeploymentError("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION")
    bucket, prefix = parse_s3_url(output)
    # The SDK builds its own clients from a boto3 session (sagemaker-core resources take only a session);
    # they honour the same AWS_ENDPOINT_URL* variables as aws_client's.
    session = boto_session or boto3.session.Session(region_name=region)
    return sdk("sagemaker.core.helper.session_helper").Session(
        boto_session=session,
        sagemaker_client=aws_client("sagemaker", timeout_s=60),
        default_bucket=bucket,
        default_bucket_prefix=prefix or None,
    )


def build_model_trainer(spec: TrainingJobSpec, source_dir: Path, *, boto_session: Any = None) -> Any:
    """The SDK's ``ModelTrainer`` for ``spec`` with ``source_dir`` (from :func:`staged_source`) as code.

    Staged code and checkpoints go to the bucket and prefix of ``spec.output`` (the SDK's default bucket
    for this session), not to a ``sagemaker-{region}-{account}`` bucket the SDK would otherwise create.
    """
    configs = sdk("sagemaker.core.training.configs")
    sagemaker_session = sdk_session(spec.output, boto_session=boto_session)
    region = sagemaker_session.boto_region_name
    stopping = configs.StoppingCondition(max_runtime_in_seconds=spec.max_run_seconds)
    checkpoints = None
    if spec.spot:
        stopping = configs.StoppingCondition(
            max_runtime_in_seconds=spec.max_run_seconds, max_wait_time_in_seconds=spec.max_wait_seconds
        )
        # No S3 URI: the SDK puts checkpoints under this job's own prefix, so a new job never resumes
        # from an older job's state.
        checkpoints = configs.CheckpointConfig(local_path=CHECKPOINT_LOCAL_PATH)
    return sdk("sagemaker.train").ModelTrainer(
        sagemaker_session=sagemaker_session,
        role=spec.role,
        base_job_name=spec.base_job_name,
        training_image=spec.image or training_image_uri(region, spec.instance_type),
        source_code=configs.SourceCode(
            source_dir=str(source_dir), entry_script=ENTRY_SCRIPT, requirements=REQUIREMENTS
        ),
        distributed=sdk("sagemaker.train.distributed").Torchrun(),
        compute=configs.Compute(
            instance_type=spec.instance_type,
            instance_count=spec.instance_count,
            volume_size_in_gb=spec.volume_size_gb,
            enable_managed_spot_training=spec.spot,
        ),
        stopping_condition=stopping,
        checkpoint_config=checkpoints,
        output_data_config=configs.OutputDataConfig(s3_output_path=spec.output.rstrip("/")),
        hyperparameters=dict(spec.hyperparameters),
        environment={"PYTHONUNBUFFERED": "1"},
    )


def train_channel(spec: TrainingJobSpec) -> list[Any]:
    """The ``train`` input channel: the dataset prefix, copied in full to every instance."""
    configs = sdk("sagemaker.core.training.configs")
    return [configs.InputData(channel_name="train", data_source=spec.data)]


@dataclass(frozen=True)
class TrainingJob:
    """A launched job: its name and where its bundle will be."""

    name: str
    model_data_url: str


def launch_training_job(spec: TrainingJobSpec, *, boto_session: Any = None) -> TrainingJob:
    """Stage the code, create the training job and return at once (``wait_for_training_job`` follows it)."""
    with staged_source() as source:
        trainer = build_model_trainer(spec, source, boto_session=boto_session)
        trainer.train(input_data_config=train_channel(spec), wait=False, logs=False)
    name = str(trainer._latest_training_job.training_job_name)  # the SDK's handle on the created job
    return TrainingJob(name=name, model_data_url=f"{spec.output.rstrip('/')}/{name}/output/model.tar.gz")


@dataclass(frozen=True)
class TrainingStatus:
    """One observation of a job: primary and secondary status, and why it failed if it did."""

    name: str
    status: str
    secondary_status: str
    failure_reason: str = ""
    model_data_url: str = ""
    billable_seconds: int | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATES


def describe_training_job(name: str, *, sagemaker: Any = None) -> TrainingStatus:
    client = sagemaker if sagemaker is not None else aws_client("sagemaker", timeout_s=30)
    job = client.describe_training_job(TrainingJobName=name)
    return TrainingStatus(
        name=name,
        status=str(job["TrainingJobStatus"]),
        secondary_status=str(job.get("SecondaryStatus", "")),
        failure_reason=str(job.get("FailureReason", "")),
        model_data_url=str(job.get("ModelArtifacts", {}).get("S3ModelArtifacts", "")),
        billable_seconds=job.get("BillableTimeInSeconds"),
    )


def wait_for_training_job(
    name: str,
    *,
    on_change: Callable[[TrainingStatus], None],
    poll_s: float = 30.0,
    sagemaker: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TrainingStatus:
    """Poll until the job ends, calling ``on_change`` whenever its (secondary) status changes."""
    last: tuple[str, str] | None = None
    while True:
        status = describe_training_job(name, sagemaker=sagemaker)
        if (status.status, status.secondary_status) != last:
            on_change(status)
            last = (status.status, status.secondary_status)
        if status.done:
            return status
        sleep(poll_s)


def publish_when_done(
    job: TrainingJob,
    models_url: str,
    *,
    on_change: Callable[[TrainingStatus], None],
    s3: Any = None,
    sagemaker: Any = None,
    poll_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishedModel:
    """Follow ``job`` until it ends and publish its bundle to ``{models_url}/{version}/`` (the train → wait
    → publish of ``shoprec sagemaker train --wait``). ``DeploymentError`` when the job did not complete."""
    final = wait_for_training_job(
        job.name, on_change=on_change, poll_s=poll_s, sagemaker=sagemaker, sleep=sleep
    )
    if final.status != "Completed":
        raise DeploymentError(
            f"training job {job.name} {final.status}: {final.failure_reason or 'no reason given'}"
        )
    return publish_model_tarball(
        final.model_data_url or job.model_data_url,
        models_url,
        s3=s3 if s3 is not None else aws_client("s3", timeout_s=60),
    )
