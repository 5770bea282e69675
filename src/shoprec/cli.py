"""The ``shoprec`` command line: thin commands that parse, call one function, and render."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from shoprec.errors import ShopRecError
from shoprec.training.config import TrainConfig

if TYPE_CHECKING:
    from shoprec.container import Container
    from shoprec.training.trainer import EpochLog

app = typer.Typer(no_args_is_help=True, add_completion=False, help="shoprec: search and recommendation.")
console = Console(stderr=True)
_DEFAULTS = TrainConfig()

DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        help="Dataset file or folder; relative paths are also looked up under the data root.",
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", help="auto | amazon-json | sequences | sasrec | generic")]
DataRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        help="Data root for relative --dataset paths (default: $SHOPREC_DATA_ROOT or ../shared/data).",
    ),
]


class RichTrainingUI:
    """Progress bars for data loading, every epoch and evaluation; one line per finished epoch."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def stage(self, name: str) -> None:
        self._progress.console.print(f"[bold cyan]»[/] {name}")

    def progress(self, task: str, done: int, total: int) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._progress.add_task(task, total=total)
        tid = self._tasks[task]
        self._progress.update(tid, completed=done, total=total)
        if done >= total:
            self._progress.remove_task(tid)
            del self._tasks[task]

    def epoch(self, log: EpochLog, best: float) -> None:
        mark = " [green]best[/]" if log.valid_ndcg10 >= best else ""
        self._progress.console.print(
            f"  epoch {log.epoch:3d}  loss {log.train_loss:.4f}  valid NDCG@10 {log.valid_ndcg10:.4f}"
            f"  ({log.seconds:.0f} s){mark}"
        )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def train(
    dataset: DatasetOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the artifact bundle into.")],
    fmt: FormatOpt = "auto",
    data_root: DataRootOpt = None,
    hidden: Annotated[int, typer.Option(help="Transformer hidden size.")] = _DEFAULTS.hidden,
    blocks: Annotated[int, typer.Option(help="Transformer blocks.")] = _DEFAULTS.blocks,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = _DEFAULTS.heads,
    max_len: Annotated[int, typer.Option(help="Longest history the ranker reads.")] = _DEFAULTS.max_len,
    dropout: Annotated[float, typer.Option(help="Dropout rate.")] = _DEFAULTS.dropout,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = _DEFAULTS.lr,
    batch_size: Annotated[int, typer.Option(help="Sequences per batch.")] = _DEFAULTS.batch_size,
    max_epochs: Annotated[int, typer.Option(help="Upper bound on epochs.")] = _DEFAULTS.max_epochs,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without validation gain.")
    ] = _DEFAULTS.patience,
    max_minutes: Annotated[
        float, typer.Option(help="Time budget of the Transformer training.")
    ] = _DEFAULTS.max_minutes,
    seed: Annotated[int, typer.Option(help="Random seed.")] = _DEFAULTS.seed,
    threads: Annotated[int, typer.Option(help="Torch threads (0: all cores).")] = _DEFAULTS.threads,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Save/resume training state here (e.g. for spot instances).")
    ] = None,
) -> None:
    """Train popularity, item-CF and the Transformer ranker; evaluate; write the artifact bundle."""
    from shoprec.training.pipeline import metrics_table, run_training

    config = TrainConfig(
        hidden=hidden,
        blocks=blocks,
        heads=heads,
        max_len=max_len,
        dropout=dropout,
        lr=lr,
        batch_size=batch_size,
        max_epochs=max_epochs,
        patience=patience,
        max_minutes=max_minutes,
        seed=seed,
        threads=threads,
    )
    try:
        with _progress() as progress:
            report = run_training(
                dataset,
                out,
                config,
                fmt=fmt,
                data_root=data_root,
                checkpoint_dir=checkpoint_dir,
                ui=RichTrainingUI(progress),
            )
    except (ShopRecError, ValueError) as exc:
        _fail(exc)
        return
    for split in ("test", "valid"):
        for protocol in ("full", "sampled"):
            title = f"{split} · {protocol} ranking" + (" (inflated)" if protocol == "sampled" else "")
            _print_table(title, metrics_table(report.metrics, split, protocol))
    console.print(
        f"bundle [bold]{report.out_dir}[/] version {report.manifest.short_version} · "
        f"training {report.train_seconds:.0f} s · total {report.total_seconds:.0f} s"
    )


@app.command()
def evaluate(
    artifacts: Annotated[Path, typer.Argument(help="Artifact bundle folder written by `shoprec train`.")],
    dataset: DatasetOpt,
    protocol: Annotated[
        str, typer.Option(help="full (all items) | sampled (99 negatives; inflated)")
    ] = "full",
    model: Annotated[
        str, typer.Option(help="transformer | transformer-int8 | item-cf | popularity")
    ] = "transformer",
    fmt: FormatOpt = "auto",
    data_root: DataRootOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Evaluate a bundle's model on the dataset's leave-one-out test targets."""
    from shoprec.evaluation.bundle_eval import evaluate_bundle

    if protocol not in ("full", "sampled"):
        _fail(ValueError(f"--protocol must be 'full' or 'sampled', got '{protocol}'"))
    try:
        with _progress() as progress:
            task = progress.add_task(f"evaluating {model}", total=None)
            result = evaluate_bundle(
                artifacts,
                dataset,
                protocol=protocol,
                model=model,
                fmt=fmt,
                data_root=data_root,
                progress=lambda d, t: progress.update(task, completed=d, total=t),
            )
    except (ShopRecError, ValueError) as exc:
        _fail(exc)
        return
    if as_json:
        sys.stdout.write(json.dumps(result.to_json_dict()) + "\n")
        return
    keys = sorted(result.metrics, key=_metric_order)
    table = Table(title=f"{model} · test · {protocol} ranking · {result.users} users")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in keys:
        table.add_row(key, f"{result.metrics[key]:.4f}")
    _stdout().print(table)


@app.command()
def serve(
    artifacts: Annotated[
        str | None, typer.Option(help="Bundle folder or s3://bucket/prefix (default: $SHOPREC_ARTIFACTS).")
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 exposes the API).")] = "127.0.0.1",
    state: Annotated[str | None, typer.Option(help="sqlite:///path or dynamodb://table.")] = None,
    cache: Annotated[str | None, typer.Option(help="memory://, redis://host:port/db or rediss://...")] = None,
    ranker: Annotated[
        str | None, typer.Option(help="onnx, sagemaker://endpoint or http://host:port.")
    ] = None,
) -> None:
    """Serve the REST API with uvicorn; prints ready-to-paste curl commands first."""
    import uvicorn
    from pydantic import ValidationError

    from shoprec.api.app import create_app
    from shoprec.container import build_container
    from shoprec.settings import get_settings

    try:
        settings = get_settings().overridden(artifacts=artifacts, state=state, cache=cache, ranker=ranker)
        with console.status("loading the bundle and building the search index"):
            container = build_container(settings)
            container.recommendations.warm_up()
    except (ShopRecError, ValidationError, ValueError) as exc:
        _fail(exc)
        return
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    console.print(
        f"[bold]shoprec[/] model {container.bundle.manifest.short_version} · {container.bundle.n_items} items"
    )
    for name, backend in container.backends().items():
        console.print(f"  {name:<10} {backend}", markup=False, highlight=False, soft_wrap=True)
    console.print("[bold]try:[/]")
    for line in _curl_examples(container, base):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    uvicorn.run(create_app(container), host=host, port=port, log_level="info")


state_app = typer.Typer(no_args_is_help=True, help="The user-state store.")
app.add_typer(state_app, name="state")


@state_app.command("import")
def state_import(
    dataset: DatasetOpt,
    artifacts: Annotated[
        str | None, typer.Option(help="Bundle folder or s3://bucket/prefix (default: $SHOPREC_ARTIFACTS).")
    ] = None,
    state: Annotated[str | None, typer.Option(help="sqlite:///path or dynamodb://table.")] = None,
    fmt: FormatOpt = "auto",
    data_root: DataRootOpt = None,
) -> None:
    """Load the dataset's user histories into the state store (idempotent), so its user ids are known."""
    from pydantic import ValidationError

    from shoprec.container import build_container
    from shoprec.data import load_dataset
    from shoprec.services.importer import import_histories
    from shoprec.settings import get_settings

    try:
        settings = get_settings().overridden(artifacts=artifacts, state=state)
        container = build_container(settings)
        ds = load_dataset(dataset, fmt, data_root=data_root)
        with _progress() as progress:
            task = progress.add_task("importing histories", total=ds.n_users)
            result = import_histories(
                container.events, ds, progress=lambda d, t: progress.update(task, completed=d, total=t)
            )
    except (ShopRecError, ValidationError, ValueError) as exc:
        _fail(exc)
        return
    console.print(
        f"{len(result.users)} users · {result.applied} events applied · {result.duplicates} already there"
        f" · {container.state.describe()}"
    )


def _curl_examples(container: Container, base: str) -> list[str]:
    """curl commands using the bundle's most popular items, so each one returns something real."""
    import numpy as np

    catalog = container.catalog
    top = [int(i) for i in np.argsort(-container.bundle.popularity, kind="stable")[:3]]
    item = catalog.item_ids[top[0]]
    words = [w for w in catalog.titles[top[0]].split() if w.isalpha() and len(w) > 3]
    query = (words[0] if words else "glass").lower()
    events = {
        "events": [
            {"event_id": f"demo-{n}", "user_id": "demo-user", "item_id": catalog.item_ids[i], "type": "view"}
            for n, i in enumerate(top[:2])
        ]
    }
    rank = {"user_id": "demo-user", "item_ids": [catalog.item_ids[i] for i in top]}
    json_h = "-H 'content-type: application/json'"
    return [
        f"curl -s {base}/v1/health",
        f"curl -s '{base}/v1/recommendations/demo-user?k=5'",
        f"curl -s {base}/v1/events {json_h} -d '{json.dumps(events)}'",
        f"curl -s '{base}/v1/recommendations/demo-user?k=5'   # now personalised",
        f"curl -s '{base}/v1/items/{item}/similar?k=5'",
        f"curl -s '{base}/v1/search?q={query}&k=5'",
        f"curl -s {base}/v1/rank {json_h} -d '{json.dumps(rank)}'",
        f"curl -s -X DELETE {base}/v1/users/demo-user -o /dev/null -w '%{{http_code}}\\n'",
        f"# OpenAPI UI: {base}/docs",
    ]


def _stdout() -> Console:
    # Outside a terminal (CI logs, pipes) rich would squeeze the metric tables into 80 columns.
    out = Console()
    return out if out.is_terminal else Console(width=160)


def _metric_order(key: str) -> tuple[int, str]:
    name, _, k = key.partition("@")
    return (int(k) if k else 0, name)


def _print_table(title: str, rows: list[list[str]]) -> None:
    from shoprec.training.pipeline import TABLE_METRICS

    table = Table(title=title)
    table.add_column("model")
    for m in TABLE_METRICS:
        table.add_column(m, justify="right")
    for row in rows:
        table.add_row(*row)
    _stdout().print(table)


# --- shoprec endpoint --------------------------------------------------------------------------------

endpoint_app = typer.Typer(
    no_args_is_help=True, help="The ranking endpoint (the SageMaker inference container)."
)
app.add_typer(endpoint_app, name="endpoint")


@endpoint_app.command("serve")
def endpoint_serve(
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Bundle folder (default: $SHOPREC_ENDPOINT_MODEL_DIR or /opt/ml/model)."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080, SageMaker's).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface (default 0.0.0.0).")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda (default auto).")] = None,
    threads: Annotated[int | None, typer.Option(help="onnxruntime threads (0: one per core).")] = None,
    batch_max_instances: Annotated[int | None, typer.Option(help="Most instances per model call.")] = None,
    batch_max_wait_ms: Annotated[
        float | None, typer.Option(help="How long a request waits for others to batch with.")
    ] = None,
    batch_queue_size: Annotated[int | None, typer.Option(help="Waiting requests before 503.")] = None,
) -> None:
    """Serve a bundle exactly as the SageMaker container does (same app, same settings)."""
    from pydantic import ValidationError

    from shoprec.endpoint.server import run_endpoint
    from shoprec.endpoint.settings import EndpointSettings

    try:
        settings = EndpointSettings().overridden(
            model_dir=model_dir,
            port=port,
            host=host,
            device=device,
            threads=threads,
            batch_max_instances=batch_max_instances,
            batch_max_wait_ms=batch_max_wait_ms,
            batch_queue_size=batch_queue_size,
        )
        run_endpoint(settings)
    except (ShopRecError, ValidationError, ValueError) as exc:
        _fail(exc)


# --- shoprec sagemaker ------------------------------------------------------------------------------

sagemaker_app = typer.Typer(
    no_args_is_help=True,
    help="Train, publish, deploy, promote and roll back on SageMaker (see docs/deploy.md).",
)
app.add_typer(sagemaker_app, name="sagemaker")

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
        _fail(ValueError(f"{option} is required (or set {envvar})"))
    assert value is not None
    return value


def _models_url(models: str | None, bucket: str | None) -> str:
    if models:
        return models
    return f"s3://{_required(bucket, '--models or --bucket', 'SHOPREC_ARTIFACT_BUCKET')}/models"


@sagemaker_app.command("train")
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
    from shoprec.deploy.models import publish_model_tarball
    from shoprec.deploy.rollout import AwsClients
    from shoprec.deploy.training_jobs import (
        TrainingJobSpec,
        TrainingStatus,
        launch_training_job,
        parse_hyperparameters,
        wait_for_training_job,
    )

    try:
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
        job = launch_training_job(spec)
        _say(f"training job [bold]{job.name}[/] started; bundle will be {job.model_data_url}")
        if not wait:
            return

        def show(status: TrainingStatus) -> None:
            _say(f"  {status.status:<11} {status.secondary_status}")

        final = wait_for_training_job(job.name, on_change=show)
        if final.status != "Completed":
            _fail(
                RuntimeError(
                    f"training job {job.name} {final.status}: {final.failure_reason or 'no reason given'}"
                )
            )
        published = publish_model_tarball(
            final.model_data_url or job.model_data_url,
            _models_url(models, bucket),
            s3=AwsClients.default().s3,
        )
    except (ShopRecError, ValueError) as exc:
        _fail(exc)
        return
    _say(f"published version {published.version} to {published.url}")
    _say(f"next: shoprec sagemaker deploy --stack shoprec-<stage> --artifacts {published.url}")


@sagemaker_app.command("publish")
def sagemaker_publish(
    source: Annotated[str, typer.Argument(help="Bundle folder, or s3://.../model.tar.gz of a training job.")],
    models: Annotated[str | None, typer.Option(help="Models prefix (default s3://BUCKET/models).")] = None,
    bucket: BucketOpt = None,
) -> None:
    """Publish a bundle to models/{version}/ (bundle files and model.tar.gz)."""
    from shoprec.deploy.models import publish_bundle, publish_model_tarball
    from shoprec.deploy.rollout import AwsClients

    try:
        url = _models_url(models, bucket)
        s3 = AwsClients.default().s3
        if source.startswith("s3://"):
            published = publish_model_tarball(source, url, s3=s3)
        else:
            published = publish_bundle(Path(source), url, s3=s3)
    except (ShopRecError, ValueError) as exc:
        _fail(exc)
        return
    _say(f"published version {published.version} to {published.url}")
    sys.stdout.write(published.url + "\n")


@sagemaker_app.command("deploy")
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

    try:
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
    except (ShopRecError, ValueError) as exc:
        _fail(exc)


@sagemaker_app.command("status")
def sagemaker_status(
    stack: StackOpt = None,
    stage: StageOpt = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON on stdout.")] = False,
) -> None:
    """The stack's rollout state: the served version, the endpoint's variants, and whether they agree."""
    from dataclasses import asdict

    from shoprec.deploy.rollout import AwsClients, rollout_status

    try:
        state = rollout_status(_stack_name(stack, stage), clients=AwsClients.default())
    except (ShopRecError, ValueError) as exc:
        _fail(exc)
        return
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
    _stdout().print(table)


@sagemaker_app.command("promote")
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

    try:
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
    except (ShopRecError, ValueError) as exc:
        _fail(exc)


@sagemaker_app.command("rollback")
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

    try:
        clients = AwsClients.default()
        name = _stack_name(stack, stage)
        change = rollback(name, clients=clients, to_version=to, dry_run=dry_run)
        _report_change(change, dry_run=dry_run)
        if wait and change.applied:
            _wait_in_step(name, clients)
    except (ShopRecError, ValueError) as exc:
        _fail(exc)


def _report_change(change: Any, *, dry_run: bool) -> None:
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


def _wait_in_step(name: str, clients: Any) -> None:
    from shoprec.deploy.errors import DeploymentError
    from shoprec.deploy.rollout import rollout_status, wait_for_stack

    wait_for_stack(name, clients=clients, on_status=lambda s: _say(f"  {name} {s}"))
    state = rollout_status(name, clients=clients)
    if not state.in_step:
        raise DeploymentError(
            f"the stack updated but endpoint {state.endpoint} runs {state.live_config}, not "
            f"{state.stack_config}: SageMaker rolled the deployment back (an alarm); run "
            "`shoprec sagemaker rollback` to put the stack back in step"
        )
    _say(f"stack {name} updated; endpoint {state.endpoint or '(none)'} in step")


def _say(message: str) -> None:
    """One line on stderr, never wrapped: lines carry S3 URLs and versions meant for copying."""
    console.print(message, soft_wrap=True, highlight=False)


def main() -> Any:
    """Console-script entry point."""
    return app()


if __name__ == "__main__":
    main()
