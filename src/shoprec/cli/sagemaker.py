"""``shoprec sagemaker ...``: training jobs, model versions, and the ranking endpoint's rollouts through
the stack (deploy, status, promote, rollback). The steps live in ``shoprec.deploy``; these commands parse,
call one step and report it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from shoprec.cli.common import cli_errors, console, stdout_console

if TYPE_CHECKING:
    from shoprec.deploy.rollout import AwsClients, StackChange

app = typer.Typer(
    no_args_is_help=True,
    help="Train, publish, batch-recommend, deploy, promote and roll back on SageMaker (docs/deploy.md).",
)

BucketOpt = Annotated[
    str | None,
    typer.Option(
        envvar="SHOPREC_ARTIFACT_BUCKET", help="Artifact bucket (default for --output and --models)."
    ),
]
RoleOpt = Annotated[
    str | None, typer.Option(envvar="SHOPREC_SAGEMAKER_ROLE", help="SageMaker execution role ARN.")
]
StageOpt = Annotated[
    str,
    typer.Option(envvar="SHOPREC_STAGE", help="Stage: names the default stack (shoprec-STAGE)."),
]
StackOpt = Annotated[
    str | None,
    typer.Option(
        "--stack",
        envvar="SHOPREC_STACK",
        help="CloudFormation stack of template.yaml (default shoprec-STAGE).",
    ),
]

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the stack change; change nothing.")]


def _stack_name(stack: str | None, stage: str) -> str:
    """The stack's name as infra/samconfig.toml deploys it: shoprec-<stage>."""
    return stack or f"shoprec-{stage}"


def _required(value: str | None, option: str, envvar: str) -> str:
    if not value:
        raise ValueError(f"{option} is required (or set {envvar})")
    return value


def _models_url(models: str | None, bucket: str | None) -> str:
    if models:
        return models
    return f"s3://{_required(bucket, '--models or --bucket', 'SHOPREC_ARTIFACT_BUCKET')}/models"


@app.command("train")
def sagemaker_train(
    data: Annotated[str, typer.Option(help="s3:// prefix of the dataset (the train channel).")],
    instance_type: Annotated[str, typer.Option(help="Training instance type.")] = "ml.g5.xlarge",
    instance_count: Annotated[int, typer.Option(help="Instances; torchrun runs one process per GPU.")] = 1,
    spot: Annotated[bool, typer.Option("--spot", help="Managed spot capacity, with checkpoints.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the job; publish the bundle when done.")
    ] = False,
    role: RoleOpt = None,
    output: Annotated[
        str | None, typer.Option(help="s3:// prefix for staged code, checkpoints and the job's output.")
    ] = None,
    bucket: BucketOpt = None,
    models: Annotated[
        str | None, typer.Option(help="Where --wait publishes (default s3://BUCKET/models).")
    ] = None,
    hp: Annotated[
        list[str] | None, typer.Option("--hp", help="Hyper-parameter key=value for train.py (repeatable).")
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="Training image URI (default: AWS PyTorch image).")
    ] = None,
    max_run_hours: Annotated[float, typer.Option(help="Stop the job after this long.")] = 2.0,
    max_wait_hours: Annotated[
        float | None, typer.Option(help="Spot: run time plus waiting for capacity (default 2x run).")
    ] = None,
) -> None:
    """Launch a SageMaker training job running sagemaker/training/train.py (SDK v3 ModelTrainer)."""
    from shoprec.deploy.training_jobs import (
        TrainingJobSpec,
        TrainingStatus,
        launch_training_job,
        parse_hyperparameters,
        publish_when_done,
    )

    def show(status: TrainingStatus) -> None:
        _say(f"  {status.status:<11} {status.secondary_status}")

    with cli_errors():
        spec = TrainingJobSpec(
            data=data,
            output=output
            or f"s3://{_required(bucket, '--output or --bucket', 'SHOPREC_ARTIFACT_BUCKET')}/training",
            role=_required(role, "--role", "SHOPREC_SAGEMAKER_ROLE"),
            instance_type=instance_type,
            instance_count=instance_count,
            spot=spot,
            max_run_hours=max_run_hours,
            max_wait_hours=max_wait_hours,
            hyperparameters=parse_hyperparameters(hp or []),
            image=image,
        )
        models_url = _models_url(models, bucket) if wait else None
        job = launch_training_job(spec)
        _say(f"training job [bold]{job.name}[/] started; bundle will be {job.model_data_url}")
        if models_url is None:
            return
        published = publish_when_done(job, models_url, on_change=show)
    _say(f"published version {published.version} to {published.url}")
    _say(f"next: shoprec sagemaker deploy --stack shoprec-<stage> --artifacts {published.url}")


@app.command("batch")
def sagemaker_batch(
    artifacts: Annotated[str, typer.Option(help="Published model: s3://bucket/models/VERSION.")],
    data: Annotated[str, typer.Option(help="s3:// prefix of the dataset (as for sagemaker train).")],
    k: Annotated[int, typer.Option("--k", help="Items per user.")] = 20,
    dataset_path: Annotated[
        str, typer.Option(help="File or folder inside --data (default: the prefix itself).")
    ] = "",
    fmt: Annotated[str, typer.Option("--format", help="Dataset format, as for shoprec batch.")] = "auto",
    output: Annotated[
        str | None, typer.Option(help="s3:// prefix for the JSONL files (default s3://BUCKET/batch).")
    ] = None,
    bucket: BucketOpt = None,
    role: RoleOpt = None,
    instance_type: Annotated[str, typer.Option(help="Processing instance type.")] = "ml.m5.xlarge",
    instance_count: Annotated[
        int, typer.Option(help="Instances; each lists every n-th user into its own part file.")
    ] = 1,
    image: Annotated[
        str | None, typer.Option(help="Processing image URI (default: the AWS PyTorch CPU image).")
    ] = None,
    max_run_hours: Annotated[float, typer.Option(help="Stop the job after this long.")] = 1.0,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
) -> None:
    """Launch a SageMaker Processing job running sagemaker/batch/batch.py: shoprec batch for every user
    of the dataset, the JSONL lines written to S3 (docs/batch.md)."""
    from shoprec.deploy.batch_jobs import BatchJobSpec, launch_batch_job, wait_for_batch_job

    with cli_errors():
        spec = BatchJobSpec(
            artifacts=artifacts,
            data=data,
            output=output
            or f"s3://{_required(bucket, '--output or --bucket', 'SHOPREC_ARTIFACT_BUCKET')}/batch",
            role=_required(role, "--role", "SHOPREC_SAGEMAKER_ROLE"),
            k=k,
            dataset_path=dataset_path,
            fmt=fmt,
            instance_type=instance_type,
            instance_count=instance_count,
            max_run_hours=max_run_hours,
            image=image,
        )
        job = launch_batch_job(spec)
        _say(f"batch job [bold]{job.name}[/] started; lines will be under {job.output}/")
        if wait:
            wait_for_batch_job(job.name, on_change=lambda status: _say(f"  {status.status}"))
            _say(f"batch job {job.name} completed: {job.output}/")


@app.command("itemcf")
def sagemaker_itemcf(
    data: Annotated[
        str, typer.Option(help="s3:// URL of the interactions: a sequences file, or a folder of them.")
    ],
    output: Annotated[
        str | None,
        typer.Option(help="s3:// prefix for the neighbour table (default s3://BUCKET/itemcf)."),
    ] = None,
    bucket: BucketOpt = None,
    role: RoleOpt = None,
    k: Annotated[int, typer.Option("--k", help="Neighbours kept per item.")] = 100,
    window: Annotated[
        int | None, typer.Option(help="Largest distance of a pair of positions (default: whole sequence).")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Popularity exponent of the normalisation.")] = 0.8,
    backward_weight: Annotated[
        float, typer.Option(help="Weight of a pair read backwards (the later item to the earlier one).")
    ] = 0.25,
    distance_power: Annotated[float, typer.Option(help="Proximity weight d ** -POWER.")] = 0.5,
    holdout: Annotated[
        int,
        typer.Option(
            help="Last items left out of users with 3+ items: 1 as shoprec train fits the bundle's table, "
            "2 the validation fit, 0 none."
        ),
    ] = 1,
    instance_type: Annotated[str, typer.Option(help="Processing instance type.")] = "ml.r5.2xlarge",
    instance_count: Annotated[int, typer.Option(help="Instances of the Spark cluster.")] = 2,
    shuffle_partitions: Annotated[
        int, typer.Option(help="spark.sql.shuffle.partitions (0: the image's default).")
    ] = 0,
    image: Annotated[
        str | None, typer.Option(help="Spark processing image URI (default: the AWS Spark 3.5 image).")
    ] = None,
    max_run_hours: Annotated[float, typer.Option(help="Stop the job after this long.")] = 2.0,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
) -> None:
    """Launch a SageMaker Processing job with Spark running sagemaker/processing/itemcf_spark.py: the
    item-CF neighbour table of shoprec train (same similarity and top k), for logs too large for one
    machine (docs/scale.md)."""
    from shoprec.deploy.processing_jobs import ItemCFJobSpec, launch_itemcf_job, wait_for_itemcf_job

    with cli_errors():
        spec = ItemCFJobSpec(
            data=data,
            output=output
            or f"s3://{_required(bucket, '--output or --bucket', 'SHOPREC_ARTIFACT_BUCKET')}/itemcf",
            role=_required(role, "--role", "SHOPREC_SAGEMAKER_ROLE"),
            k=k,
            window=window,
            alpha=alpha,
            backward_weight=backward_weight,
            distance_power=distance_power,
            holdout=holdout,
            instance_type=instance_type,
            instance_count=instance_count,
            max_run_hours=max_run_hours,
            image=image,
            shuffle_partitions=shuffle_partitions,
        )
        job = launch_itemcf_job(spec)
        _say(f"item-CF job [bold]{job.name}[/] started; the table will be under {job.output}/")
        if wait:
            wait_for_itemcf_job(job.name, on_change=lambda status: _say(f"  {status.status}"))
            _say(f"item-CF job {job.name} completed: {job.output}/itemcf.npz")


@app.command("publish")
def sagemaker_publish(
    source: Annotated[str, typer.Argument(help="Bundle folder, or s3://.../model.tar.gz of a training job.")],
    models: Annotated[str | None, typer.Option(help="Models prefix (default s3://BUCKET/models).")] = None,
    bucket: BucketOpt = None,
) -> None:
    """Publish a bundle to models/{version}/ (bundle files and model.tar.gz)."""
    from shoprec.deploy.models import publish_bundle, publish_model_tarball
    from shoprec.deploy.rollout import AwsClients

    with cli_errors():
        url = _models_url(models, bucket)
        s3 = AwsClients.default().s3
        if source.startswith("s3://"):
            published = publish_model_tarball(source, url, s3=s3)
        else:
            published = publish_bundle(Path(source), url, s3=s3)
    _say(f"published version {published.version} to {published.url}")
    sys.stdout.write(published.url + "\n")


@app.command("stage-retrain")
def sagemaker_stage_retrain(bucket: BucketOpt = None) -> None:
    """Upload the scheduled retraining job's code (retrain.py and the package) to
    s3://BUCKET/retrain/source/sourcedir.tar.gz, where the stack's schedule looks for it."""
    from shoprec.deploy.retrain_source import stage_retrain_source
    from shoprec.deploy.rollout import AwsClients

    with cli_errors():
        url = stage_retrain_source(
            _required(bucket, "--bucket", "SHOPREC_ARTIFACT_BUCKET"), s3=AwsClients.default().s3
        )
    _say(f"staged the retraining job's code at {url}")
    sys.stdout.write(url + "\n")


@app.command("deploy")
def sagemaker_deploy(
    artifacts: Annotated[str, typer.Option(help="Published model: s3://bucket/models/VERSION.")],
    weight: Annotated[
        float,
        typer.Option(
            help="Canary share of the fleet (0 to 0.5; 0: all-at-once blue/green); with --challenger, "
            "the challenger's share of the traffic."
        ),
    ] = 0.1,
    stack: StackOpt = None,
    stage: StageOpt = "dev",
    challenger: Annotated[
        bool, typer.Option("--challenger", help="Deploy as the challenger variant of an A/B test.")
    ] = False,
    end_challenger: Annotated[
        bool, typer.Option("--end-challenger", help="Remove the challenger variant in the same update.")
    ] = False,
    image: Annotated[
        str | None,
        typer.Option(
            envvar="SHOPREC_INFERENCE_IMAGE", help="Inference image URI (ECR); default: the stack's."
        ),
    ] = None,
    bake_minutes: Annotated[float, typer.Option(help="Canary bake time before the full shift.")] = 10.0,
    termination_wait_minutes: Annotated[
        float, typer.Option(help="Old fleet kept after the full shift.")
    ] = 5.0,
    monitor_minutes: Annotated[
        int | None,
        typer.Option(help="CloudFormation watches the alarms this long after the update (default: bake)."),
    ] = None,
    dry_run: DryRunOpt = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the stack update and check the endpoint followed.")
    ] = False,
) -> None:
    """Roll a version out to the ranking endpoint through the stack: blue/green with a canary; alarms
    roll it back."""
    from shoprec.deploy.rollout import AwsClients, RolloutSpec, deploy

    with cli_errors():
        spec = RolloutSpec(
            weight=weight,
            bake_minutes=bake_minutes,
            termination_wait_minutes=termination_wait_minutes,
            monitor_minutes=monitor_minutes,
            challenger=challenger,
            end_challenger=end_challenger,
            image=image,
        )
        clients = AwsClients.default()
        name = _stack_name(stack, stage)
        change = deploy(artifacts, spec, stack_name=name, clients=clients, dry_run=dry_run)
        _report_change(change, dry_run=dry_run)
        if change.canary_instances and change.fleet:
            _say(
                f"canary: {change.canary_instances} of {change.fleet} instances "
                f"({change.canary_instances / change.fleet:.0%} of the traffic), bake {bake_minutes:g} min"
            )
        if wait and change.applied:
            _wait_in_step(name, clients)


@app.command("status")
def sagemaker_status(
    stack: StackOpt = None,
    stage: StageOpt = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON on stdout.")] = False,
) -> None:
    """The stack's rollout state: the served version, the endpoint's variants, and whether they agree."""
    from dataclasses import asdict

    from shoprec.deploy.rollout import AwsClients, rollout_status

    with cli_errors():
        state = rollout_status(_stack_name(stack, stage), clients=AwsClients.default())
    if as_json:
        sys.stdout.write(json.dumps({**asdict(state), "in_step": state.in_step}, default=str) + "\n")
        return
    _say(f"stack [bold]{state.stack}[/] {state.stack_status} {state.stack_status_reason}".rstrip())
    _say(f"served by the functions ({state.served_parameter}): {state.served_now or 'nothing yet'}")
    if state.endpoint is None:
        _say("no ranking endpoint: the functions rank in process")
        return
    _say(f"endpoint [bold]{state.endpoint}[/] {state.endpoint_status} · config {state.live_config}")
    if state.pending_config:
        _say(f"  deploying config {state.pending_config}")
    if state.failure_reason:
        _say(f"  [red]{state.failure_reason}[/]")
    if not state.in_step:
        _say(
            f"  [red]the endpoint does not run the stack's config ({state.stack_config}): SageMaker rolled a "
            "deployment back; `shoprec sagemaker rollback` puts the stack back in step[/]"
        )
    table = Table(title="variants")
    for column in ("variant", "model", "version", "weight", "instances"):
        table.add_column(column)
    for v in state.variants:
        table.add_row(v.name, v.model_name, v.version or "?", str(v.current_weight), str(v.instances))
    stdout_console().print(table)


@app.command("promote")
def sagemaker_promote(
    version: Annotated[
        str | None,
        typer.Argument(help="Version to serve (default: the endpoint's; required without an endpoint)."),
    ] = None,
    stack: StackOpt = None,
    stage: StageOpt = "dev",
    monitor_minutes: Annotated[
        int, typer.Option(help="CloudFormation watches the API alarms this long and undoes the promotion.")
    ] = 5,
    dry_run: DryRunOpt = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for an update in progress first, then for this one.")
    ] = False,
) -> None:
    """Serve the endpoint's version in the functions: the stack's ModelVersion (its SSM parameter)."""
    from shoprec.deploy.rollout import AwsClients, promote, wait_for_stack

    with cli_errors():
        clients = AwsClients.default()
        name = _stack_name(stack, stage)
        change = promote(
            name,
            clients=clients,
            version=version,
            monitor_minutes=monitor_minutes,
            wait=wait,
            dry_run=dry_run,
        )
        _report_change(change, dry_run=dry_run)
        if wait and change.applied:
            wait_for_stack(name, clients=clients, on_status=lambda s: _say(f"  {name} {s}"))
            _say(f"the functions serve {change.version} within a minute")


@app.command("rollback")
def sagemaker_rollback(
    stack: StackOpt = None,
    stage: StageOpt = "dev",
    to: Annotated[
        str | None, typer.Option("--to", help="Version to go back to (default: the previous).")
    ] = None,
    dry_run: DryRunOpt = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the stack update.")] = False,
) -> None:
    """Put the endpoint and the served version back on the previous version, all at once."""
    from shoprec.deploy.rollout import AwsClients, rollback

    with cli_errors():
        clients = AwsClients.default()
        name = _stack_name(stack, stage)
        change = rollback(name, clients=clients, to_version=to, dry_run=dry_run)
        _report_change(change, dry_run=dry_run)
        if wait and change.applied:
            _wait_in_step(name, clients)


def _report_change(change: StackChange, *, dry_run: bool) -> None:
    """The parameters a rollout step sets, old → new, and the alarms that guard it."""
    if change.unchanged:
        _say(f"stack {change.stack} already has {change.version}: nothing to change")
        return
    verb = "would set" if dry_run else "updating"
    _say(f"stack [bold]{change.stack}[/] {verb} (version {change.version}):")
    for key, value in change.changes.items():
        _say(f"  {key}: {change.previous.get(key) or '∅'} → {value or '∅'}")
    for note in change.notes:
        _say(f"  {note}")
    if change.rollback_alarms:
        _say(
            f"  rolled back by CloudFormation on {', '.join(change.rollback_alarms)} "
            f"(watched {change.monitor_minutes} min after the update)"
        )
    if not dry_run and not change.applied:
        _say("  CloudFormation found nothing to update")


def _wait_in_step(name: str, clients: AwsClients) -> None:
    from shoprec.deploy.rollout import wait_in_step

    state = wait_in_step(name, clients=clients, on_status=lambda s: _say(f"  {name} {s}"))
    _say(f"stack {name} updated; endpoint {state.endpoint or '(none)'} in step")


def _say(message: str) -> None:
    """One line on stderr, never wrapped: lines carry S3 URLs and versions meant for copying."""
    console.print(message, soft_wrap=True, highlight=False)
