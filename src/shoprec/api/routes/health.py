"""``GET /v1/health`` (liveness: which model serves, from which backends) and ``GET /v1/health/ready``
(readiness: each dependency probed now)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shoprec.api.errors import PROBLEM_RESPONSES
from shoprec.api.routes.deps import ContainerDep, RequestIdDep
from shoprec.api.schemas import DependencyStatus, Health, Readiness
from shoprec.container import LazyContainer
from shoprec.errors import ShopRecError
from shoprec.services.readiness import ReadinessReport, check_readiness, not_ready

router = APIRouter(tags=["health"], responses={503: PROBLEM_RESPONSES[503]})


@router.get("/health", response_model=Health)
async def health(container: ContainerDep, request_id: RequestIdDep) -> Health:
    """Liveness: model version, artifact age (from the manifest's ``created_at``) and the backends in use.
    Calls no dependency; see ``/v1/health/ready`` for their state."""
    created = container.bundle.manifest.created_at
    age = datetime.now(UTC) - datetime.fromisoformat(created)
    return Health(
        model_version=container.model_version,
        request_id=request_id,
        degraded=False,
        artifact_created_at=created,
        artifact_age_s=round(age.total_seconds(), 1),
        n_items=container.bundle.n_items,
        backends=container.backends(),
    )


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A required dependency (state, artifacts) is down."}},
)
def ready(request: Request, request_id: RequestIdDep) -> JSONResponse:
    """Readiness: every dependency probed at once (state store, cache, ranker; the loaded bundle), each
    with its state, breaker and latency. ``503`` when the state store or the bundle is unavailable."""
    provider: LazyContainer = request.app.state.containers
    model_version: str | None = None
    try:
        container = provider.get()
    except ShopRecError as exc:
        report = not_ready(str(exc))
    else:
        model_version = container.model_version
        settings = container.settings
        report = check_readiness(
            artifacts=container.artifacts.describe(),
            state=container.state,
            cache=container.cache,
            ranker=container.ranker,
            probe_item=container.catalog.item_ids[0],
            cache_timeout_s=settings.cache_timeout_s,
            ranker_timeout_s=settings.latency_budget_ms / 1000,
            timeout_s=settings.readiness_timeout_s,
        )
    body = _readiness(report, model_version, request_id)
    return JSONResponse(body.model_dump(), status_code=200 if report.ready else 503)


def _readiness(report: ReadinessReport, model_version: str | None, request_id: str) -> Readiness:
    return Readiness(
        status=report.status,
        degraded=report.degraded,
        model_version=model_version,
        request_id=request_id,
        dependencies={
            d.name: DependencyStatus(
                state=d.state,
                required=d.required,
                latency_ms=d.latency_ms,
                breaker=d.breaker,
                detail=d.detail,
            )
            for d in report.dependencies
        },
    )
