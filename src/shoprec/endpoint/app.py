"""The ranking endpoint app: ``GET /ping`` and ``POST /invocations`` (SageMaker's container contract), plus
``POST /endpoints/{name}/invocations``, the SageMaker runtime API path, so that boto3's
``sagemaker-runtime`` client reaches a local instance through ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``, and
``GET /stats`` (batching counters and execution providers; not reachable through SageMaker).

Concurrent invocations are scored together by a :class:`~shoprec.endpoint.batcher.MicroBatcher`.
Request and response shapes are documented in ``docs/ranking-endpoint.md``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import load_bundle
from shoprec.endpoint.batcher import BatcherOverloadedError, BatchingConfig, MicroBatcher
from shoprec.endpoint.settings import CPU
from shoprec.errors import ArtifactError, RankerUnavailableError

MAX_INSTANCES = 64
MAX_CANDIDATES = 1_000
MAX_HISTORY = 1_000
"""Longer histories are accepted by the model only as their last ``max_len`` items; this bounds payloads."""

ItemId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Instance(BaseModel):
    """One user to score: recent item ids (oldest first) and the candidate item ids."""

    model_config = ConfigDict(extra="forbid")

    history: list[ItemId] = Field(default_factory=list, max_length=MAX_HISTORY)
    candidates: list[ItemId] = Field(min_length=1, max_length=MAX_CANDIDATES)


class InvocationRequest(BaseModel):
    """``{"instances": [...]}``, 1 to ``MAX_INSTANCES`` instances scored in one model call."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Instance] = Field(min_length=1, max_length=MAX_INSTANCES)


class Prediction(BaseModel):
    """One score per candidate, in the candidates' order."""

    scores: list[float]


class InvocationResponse(BaseModel):
    """The bundle version that produced the scores and one prediction per instance."""

    model_version: str
    predictions: list[Prediction]


class PingResponse(BaseModel):
    """The health check's answer."""

    status: str
    model_version: str


class _BadRequestError(Exception):
    def __init__(self, message: str, field: str, **extra: Any) -> None:
        super().__init__(message)
        self.body = {"message": message, "field": field, **extra}


def create_endpoint_app(
    model_dir: Path,
    *,
    threads: int = 1,
    providers: Sequence[str] = (CPU,),
    batching: BatchingConfig | None = None,
    expected_version: str | None = None,
    ranker_variant: str | None = None,
) -> FastAPI:
    """Load (and verify) the bundle in ``model_dir`` and return the app serving its ranker.

    Loading happens here, before the app exists, so a server that answers ``/ping`` has its model.
    ``providers`` are onnxruntime execution providers (see :func:`shoprec.endpoint.settings.
    execution_providers`); ``expected_version``, when given, must be the bundle's ``model_version``
    (``ArtifactError`` otherwise), so a SageMaker model never serves a tarball other than the one it names.
    ``ranker_variant`` picks the bundle's ranker file (``None``: its ``default_variant``).
    The batcher is ``app.state.batcher``.
    """
    bundle = load_bundle(model_dir)
    if expected_version is not None and _hex(expected_version) != _hex(bundle.model_version):
        raise ArtifactError(
            f"{model_dir}: bundle version {bundle.model_version} is not the expected {expected_version}"
        )
    ranker = LocalOnnxRanker.from_bundle(bundle, threads=threads, providers=providers, variant=ranker_variant)
    batcher = MicroBatcher(ranker.score_many, batching)
    app = FastAPI(title="shoprec ranking endpoint", version=ranker.model_version)
    app.state.batcher = batcher
    body_schema = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": InvocationRequest.model_json_schema()}},
        }
    }

    @app.exception_handler(_BadRequestError)
    async def bad_request(_: Request, exc: _BadRequestError) -> JSONResponse:
        return JSONResponse(status_code=400, content=exc.body)

    @app.exception_handler(RankerUnavailableError)
    async def inference_failed(_: Request, exc: RankerUnavailableError) -> JSONResponse:
        return JSONResponse(status_code=500, content={"message": str(exc)})

    @app.exception_handler(BatcherOverloadedError)
    async def overloaded(_: Request, exc: BatcherOverloadedError) -> JSONResponse:
        return JSONResponse(
            status_code=503, content={"message": f"overloaded: {exc}"}, headers={"Retry-After": "1"}
        )

    @app.get("/ping")
    def ping() -> PingResponse:
        """Health check: 200 once the model is loaded (which it is, whenever the app exists)."""
        return PingResponse(status="ok", model_version=ranker.model_version)

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        """Batching counters since start (``batches`` is the number of onnxruntime calls), the batching
        settings and the execution providers in use."""
        return {
            "model_version": ranker.model_version,
            "providers": ranker.providers,
            "batching": asdict(batcher.config),
            "counters": batcher.stats(),
        }

    async def invoke(request: Request) -> InvocationResponse:
        # The body is parsed here rather than by FastAPI so that it is read as JSON whatever the
        # Content-Type says (SageMaker passes on whatever the caller sent) and errors name the field.
        payload = _parse(await request.body())
        _check_candidates(ranker, payload.instances)
        future = batcher.submit([(inst.history, inst.candidates) for inst in payload.instances])
        scores = await asyncio.wrap_future(future)
        return InvocationResponse(
            model_version=ranker.model_version, predictions=[Prediction(scores=s) for s in scores]
        )

    app.add_api_route(
        "/invocations",
        invoke,
        methods=["POST"],
        summary="Score every instance's candidates (concurrent requests share onnxruntime calls)",
        openapi_extra=body_schema,
    )
    app.add_api_route(
        "/endpoints/{endpoint_name}/invocations",
        invoke,
        methods=["POST"],
        summary="The same under SageMaker runtime's path (the endpoint name is ignored)",
        openapi_extra=body_schema,
    )
    return app


def _parse(body: bytes) -> InvocationRequest:
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _BadRequestError(f"body: not valid JSON: {exc}", "body") from None
    try:
        return InvocationRequest.model_validate(obj)
    except ValidationError as exc:
        errors = [{"field": _field_name(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        first = errors[0]
        raise _BadRequestError(
            f"{first['field']}: {first['message']}", first["field"], errors=errors
        ) from None


def _check_candidates(ranker: LocalOnnxRanker, instances: Sequence[Instance]) -> None:
    """A 400 naming the first instance with unknown candidates: checked before batching, so one bad
    request never fails the other requests of its batch."""
    for i, instance in enumerate(instances):
        unknown = ranker.unknown_items(instance.candidates)
        if unknown:
            field = f"instances[{i}].candidates"
            raise _BadRequestError(
                f"{field}: unknown item ids: {', '.join(unknown[:10])}", field, unknown=unknown
            )


def _hex(version: str) -> str:
    return version.removeprefix("sha256:").lower()


def _field_name(loc: Sequence[str | int]) -> str:
    """``("instances", 0, "candidates")`` → ``"instances[0].candidates"``."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"
