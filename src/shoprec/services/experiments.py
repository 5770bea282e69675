"""Serving an experiment: each request is answered by its user's variant, and the list is logged as an
exposure (``docs/experiments.md``).

Without an experiment there is one service and no variant (responses say ``"variant": null``) and nothing
extra is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from shoprec.domain import Exposure
from shoprec.errors import BackendUnavailableError
from shoprec.experiments import Assigner, ExperimentSpec, endpoint_variant_scope
from shoprec.ports import EventLog
from shoprec.services.recommendation import RecommendationService
from shoprec.services.results import ListResult

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ExperimentServices:
    """The recommendation services of an experiment's variants (``services`` by variant name) and the
    assignment of users to them; without ``spec``, ``services`` holds the one service under ``""``.

    Exposures go to ``exposure_log``: one record per list served to a user with an id. Requests without a
    user id are not randomised (they all get the default variant), so they are served but not logged. A
    failed append is logged and the list is still served: a lost exposure costs the report one sample,
    a failed request costs the shopper the page.
    """

    def __init__(
        self,
        spec: ExperimentSpec | None,
        services: Mapping[str, RecommendationService],
        *,
        exposure_log: EventLog | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        expected = {v.name for v in spec.variants} if spec is not None else {""}
        if set(services) != expected:
            raise ValueError(f"services for {sorted(services)}, variants {sorted(expected)}")
        self.spec = spec
        self.services = dict(services)
        self._assigner = Assigner(spec) if spec is not None else None
        self._log = exposure_log
        self._clock = clock

    @property
    def default(self) -> RecommendationService:
        """The service of requests without a user id."""
        return self.services[self.spec.default_variant if self.spec is not None else ""]

    def variant_of(self, user_id: str | None) -> str | None:
        """The variant ``user_id`` is served (``None`` without an experiment)."""
        return self._assigner.variant_of(user_id) if self._assigner is not None else None

    def serve(
        self,
        surface: str,
        user_id: str | None,
        request_id: str,
        use_case: Callable[[RecommendationService], ListResult],
    ) -> ListResult:
        """``use_case`` run on the service of ``user_id``'s variant, the result naming the variant; under an
        experiment and with a user id, the list is logged as an exposure of ``surface``."""
        variant = self.variant_of(user_id)
        service = self.services[variant if variant is not None else ""]
        with endpoint_variant_scope() as endpoint_variant:
            result = use_case(service)
        result = replace(result, variant=variant)
        if self.spec is not None and variant is not None and user_id is not None:
            self._expose(
                Exposure(
                    request_id=request_id,
                    user_id=user_id,
                    experiment=self.spec.name,
                    variant=variant,
                    surface=surface,
                    item_ids=tuple(item.item_id for item in result.items),
                    model_version=result.model_version,
                    timestamp=self._clock(),
                    endpoint_variant=endpoint_variant[0],
                    share=self.spec.share(variant),
                )
            )
        return result

    def _expose(self, exposure: Exposure) -> None:
        if self._log is None:
            return
        try:
            self._log.append([exposure])
        except BackendUnavailableError as exc:
            log.warning("exposure of request %s not logged: %s", exposure.request_id, exc)
