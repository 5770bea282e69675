"""``GET /v1/health``: which model serves and from which backends."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from shoprec.api.errors import PROBLEM_RESPONSES
from shoprec.api.routes.deps import ContainerDep, RequestIdDep
from shoprec.api.schemas import Health

router = APIRouter(tags=["health"], responses={503: PROBLEM_RESPONSES[503]})


@router.get("/health", response_model=Health)
async def health(container: ContainerDep, request_id: RequestIdDep) -> Health:
    """Model version, artifact age (from the manifest's ``created_at``) and the backends in use."""
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
