"""The ranking endpoint app: ``GET /ping`` and ``POST /invocations`` (SageMaker's container contract), plus
``POST /endpoints/{name}/invocations``, the SageMaker runtime API path, so that boto3's
``sagemaker-runtime`` client reaches a local instance through ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``.

Request and response shapes are documented in ``docs/ranking-endpoint.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts.bundle import load_bundle
from shoprec.errors import RankerUnavailableError

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


def create_endpoint_app(model_dir: Path, *, threads: int = 1) -> FastAPI:
    """Load (and verify) the bundle in ``model_dir`` and return the app serving its ranker.

    Loading happens here, before the app exists, so a server that answers ``/ping`` has its model.
    """
    ranker = LocalOnnxRanker(load_bundle(model_dir), threads=threads)
    app = FastAPI(title="shoprec ranking endpoint", version=ranker.model_version)
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

    @app.get("/ping")
    def ping() -> PingResponse:
        """Health check: 200 once the model is loaded (which it is, whenever the app exists)."""
        return PingResponse(status="ok", model_version=ranker.model_version)

    async def invoke(request: Request) -> InvocationResponse:
        # The body is parsed here rather than by FastAPI so that it is read as JSON whatever the
        # Content-Type says (SageMaker passes on whatever the caller sent) and errors name the field.
        payload = _parse(await request.body())
        return await run_in_threadpool(_invoke, ranker, payload.instances)

    app.add_api_route(
        "/invocations",
        invoke,
        methods=["POST"],
        summary="Score every instance's candidates (one onnxruntime call per request)",
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


def _invoke(ranker: LocalOnnxRanker, instances: Sequence[Instance]) -> InvocationResponse:
    for i, instance in enumerate(instances):
        unknown = ranker.unknown_items(instance.candidates)
        if unknown:
            field = f"instances[{i}].candidates"
            raise _BadRequestError(
                f"{field}: unknown item ids: {', '.join(unknown[:10])}", field, unknown=unknown
            )
    scores = ranker.score_many([(inst.history, inst.candidates) for inst in instances])
    return InvocationResponse(
        model_version=ranker.model_version, predictions=[Prediction(scores=s) for s in scores]
    )


def _field_name(loc: Sequence[str | int]) -> str:
    """``("instances", 0, "candidates")`` → ``"instances[0].candidates"``."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"
