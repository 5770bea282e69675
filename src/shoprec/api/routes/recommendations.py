"""Read endpoints: recommendations for a user, similar items, search and ranking of given items.

Each list is served by the user's experiment variant (``docs/experiments.md``): requests without a user id
(similar items, anonymous search) get the default variant, and only lists served to a user are logged as
exposures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from shoprec.api.errors import PROBLEM_RESPONSES, TOO_LARGE_RESPONSE, problem_doc
from shoprec.api.routes.deps import (
    BrandQuery,
    CategoryQuery,
    ExperimentsDep,
    ItemIdPath,
    KQuery,
    MaxPriceQuery,
    MinPriceQuery,
    RequestIdDep,
    UserIdPath,
    list_response,
)
from shoprec.api.schemas import (
    MAX_QUERY_CHARS,
    Facets,
    Id,
    ListResponse,
    RankRequest,
    SearchResponse,
)
from shoprec.observability import record_result

router = APIRouter(tags=["recommendations"], responses=PROBLEM_RESPONSES)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("Unknown item id")}


@router.get("/recommendations/{user_id}", response_model=ListResponse)
def recommendations(
    user_id: UserIdPath,
    experiments: ExperimentsDep,
    request_id: RequestIdDep,
    k: KQuery = 10,
    category: CategoryQuery = None,
    brand: BrandQuery = None,
    exclude_seen: Annotated[bool, Query(description="Leave out items the user interacted with.")] = True,
    min_price: MinPriceQuery = None,
    max_price: MaxPriceQuery = None,
) -> ListResponse:
    """The ``k`` best items for the user; an unknown user gets cold-start (popular) items."""
    result = experiments.serve(
        "recommendations",
        user_id,
        request_id,
        lambda service: service.recommend(
            user_id,
            k,
            category=category,
            brand=brand,
            exclude_seen=exclude_seen,
            min_price=min_price,
            max_price=max_price,
        ),
    )
    record_result("recommend", result)
    return list_response(result, request_id)


@router.get("/items/{item_id}/similar", response_model=ListResponse, responses=_NOT_FOUND)
def similar(
    item_id: ItemIdPath, experiments: ExperimentsDep, request_id: RequestIdDep, k: KQuery = 10
) -> ListResponse:
    """Items similar to ``item_id`` (often bought together, then close in text or embedding space);
    404 for an unknown or delisted item."""
    result = experiments.serve("similar", None, request_id, lambda service: service.similar(item_id, k))
    record_result("similar", result)
    return list_response(result, request_id)


@router.get("/search", response_model=SearchResponse)
def search(
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="Keywords.")],
    experiments: ExperimentsDep,
    request_id: RequestIdDep,
    user_id: Annotated[Id | None, Query(description="Personalise the order for this user.")] = None,
    k: KQuery = 10,
    category: CategoryQuery = None,
    brand: BrandQuery = None,
    min_price: MinPriceQuery = None,
    max_price: MaxPriceQuery = None,
) -> SearchResponse:
    """Keyword search with brand and category facets over every match of ``q``."""
    result = experiments.serve(
        "search",
        user_id,
        request_id,
        lambda service: service.search(
            q, user_id=user_id, k=k, category=category, brand=brand, min_price=min_price, max_price=max_price
        ),
    )
    record_result("search", result)
    base = list_response(result, request_id)
    facets = result.facets or {}
    return SearchResponse(
        **base.model_dump(),
        facets=Facets(brand=facets.get("brand", {}), category=facets.get("category", {})),
    )


@router.post("/rank", response_model=ListResponse, responses=TOO_LARGE_RESPONSE)
def rank(body: RankRequest, experiments: ExperimentsDep, request_id: RequestIdDep) -> ListResponse:
    """The given items ordered for the user, best first (unknown ids → 422 listing them; items out of
    stock or delisted are left out)."""
    result = experiments.serve(
        "rank", body.user_id, request_id, lambda service: service.rank(body.user_id, body.item_ids)
    )
    record_result("rank", result)
    return list_response(result, request_id)
