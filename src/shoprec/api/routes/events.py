"""Write endpoints: ingesting interaction events and deleting a user's data."""

from __future__ import annotations

from fastapi import APIRouter, Response

from shoprec.api.errors import PROBLEM_RESPONSES, TOO_LARGE_RESPONSE, problem_doc
from shoprec.api.routes.deps import ContainerDep, EventsDep, RequestIdDep, UserIdPath
from shoprec.api.schemas import EventsRequest, EventsResponse
from shoprec.errors import NotFoundError
from shoprec.observability import record_count

router = APIRouter(tags=["events"], responses=PROBLEM_RESPONSES)


@router.post("/events", response_model=EventsResponse, responses=TOO_LARGE_RESPONSE)
def ingest(
    body: EventsRequest, container: ContainerDep, service: EventsDep, request_id: RequestIdDep
) -> EventsResponse:
    """Store 1..100 events. Idempotent by ``event_id``; one unknown item id rejects the whole batch."""
    result = service.ingest(body.to_domain())
    record_count("EventsApplied", result.applied)
    record_count("EventsDuplicate", result.duplicates)
    return EventsResponse(
        applied=result.applied,
        duplicates=result.duplicates,
        model_version=container.model_version,
        request_id=request_id,
        degraded=False,
    )


@router.delete(
    "/users/{user_id}",
    status_code=204,
    response_class=Response,
    responses={
        404: problem_doc("Nothing was stored for this user (a retried deletion: already deleted)"),
        503: problem_doc("A store could not be cleaned; what could be deleted is, and a retry finishes it"),
    },
)
def delete_user(user_id: UserIdPath, service: EventsDep) -> Response:
    """Remove the user's state, stored event ids and cached lists: 204, or 404 when nothing was stored.

    Never 2xx unless every store is clean: if the cache cannot be invalidated the answer is 503 and a
    retry (answered 404 once the state is gone) invalidates again.
    """
    if not service.delete_user(user_id):
        raise NotFoundError(f"no stored data for user {user_id!r}", field="user_id")
    return Response(status_code=204)
