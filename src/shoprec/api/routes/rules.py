"""Admin endpoints for merchandising rules: ``PUT``, ``GET`` and ``DELETE /v1/rules/{rule_id}`` and
``GET /v1/rules``. Deployed behind SigV4 (``AWS_IAM``, the ``ApiMerchandiserPolicy``; infra/README.md),
like the other writes; the rules and their semantics: docs/pipeline.md ("Merchandising rules")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import Field

from shoprec.api.errors import PROBLEM_RESPONSES, TOO_LARGE_RESPONSE, problem_doc
from shoprec.api.routes.deps import ContainerDep, RequestIdDep
from shoprec.api.schemas import Envelope
from shoprec.domain import ID_PATTERN
from shoprec.errors import InvalidInputError
from shoprec.merchandising import MerchRule, RuleSpec
from shoprec.services.merchandising import MerchandisingService

router = APIRouter(tags=["rules"], responses=PROBLEM_RESPONSES)

RuleIdPath = Annotated[
    str,
    Path(
        pattern=ID_PATTERN.pattern,
        max_length=128,
        description="Rule id: 1..128 characters of letters, digits and _ . : @ -.",
    ),
]


async def get_merchandising(container: ContainerDep) -> MerchandisingService:
    return container.merchandising


MerchandisingDep = Annotated[MerchandisingService, Depends(get_merchandising)]


class RuleResponse(Envelope):
    rule: MerchRule


class RulesResponse(Envelope):
    rules: list[MerchRule] = Field(description="Every stored rule by id, active or not.")


_NO_RULE: dict[int | str, dict[str, Any]] = {404: problem_doc("No rule has this id")}


@router.put(
    "/rules/{rule_id}",
    response_model=RuleResponse,
    status_code=200,
    responses={201: {"model": RuleResponse, "description": "Created"}, **TOO_LARGE_RESPONSE},
)
def put_rule(
    rule_id: RuleIdPath,
    body: RuleSpec,
    response: Response,
    container: ContainerDep,
    service: MerchandisingDep,
    request_id: RequestIdDep,
) -> RuleResponse:
    """Create (201) or replace (200) the rule; answers the rule as stored (scope value normalised,
    times in UTC). Item ids unknown to the served catalogue are refused (422 naming ``items``)."""
    unknown = container.live.catalog.unknown(body.items)
    if unknown:
        raise InvalidInputError(
            f"{len(unknown)} unknown item id(s): {', '.join(unknown[:10])}", field="items", values=unknown
        )
    rule = body.with_id(rule_id)
    if service.put(rule):
        response.status_code = 201
    return RuleResponse(
        rule=rule, model_version=container.model_version, request_id=request_id, degraded=False
    )


@router.get("/rules/{rule_id}", response_model=RuleResponse, responses=_NO_RULE)
def get_rule(
    rule_id: RuleIdPath, container: ContainerDep, service: MerchandisingDep, request_id: RequestIdDep
) -> RuleResponse:
    """The stored rule, or 404."""
    return RuleResponse(
        rule=service.get(rule_id),
        model_version=container.model_version,
        request_id=request_id,
        degraded=False,
    )


@router.get("/rules", response_model=RulesResponse)
def list_rules(container: ContainerDep, service: MerchandisingDep, request_id: RequestIdDep) -> RulesResponse:
    """Every stored rule, ordered by id."""
    return RulesResponse(
        rules=service.list(), model_version=container.model_version, request_id=request_id, degraded=False
    )


@router.delete("/rules/{rule_id}", status_code=204, response_class=Response, responses=_NO_RULE)
def delete_rule(rule_id: RuleIdPath, service: MerchandisingDep) -> Response:
    """Remove the rule: 204, or 404 when there is none. Takes effect within the refresh interval."""
    service.delete(rule_id)
    return Response(status_code=204)


__all__ = ["router"]
