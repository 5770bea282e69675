"""A/B experiments: which variant of the recommendation pipeline a user is served (``docs/experiments.md``).

An experiment is configured by one setting (``SHOPREC_EXPERIMENT``: the JSON below, or the path of a file
holding it) and names its variants, their traffic weights and what each changes::

    {"name": "fusion-2026-12", "salt": "fusion-2026-12",
     "variants": [{"name": "control", "weight": 1},
                  {"name": "weighted", "weight": 1,
                   "fusion": {"kind": "weighted", "weights": {"ranker": 1, "itemcf": 0.5}},
                   "recall_weights": {"itemcf": 1, "embedding": 0.5}}]}

Assignment is sticky and needs no storage: ``sha256(salt + ":" + user_id)`` read as a number in [0, 1)
picks the variant whose share of the cumulative weights it falls in. Every process and every Lambda
computes the same answer, and another experiment (another salt) splits users independently of this one.
Requests without a user id get the ``default`` variant (the control unless configured).

Pure code: no I/O beyond reading the configuration file.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import accumulate
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from shoprec.artifacts.specs import CHANNELS, FusionSpec, PipelineSpec
from shoprec.domain import ID_PATTERN

Name = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern, min_length=1, max_length=128)]

_HASH_SPACE: Final = float(2**64)


class VariantSpec(BaseModel):
    """One variant: its traffic ``weight`` and what it changes in the served pipeline (nothing: the bundle's
    pipeline as trained, the usual control).

    ``fusion`` replaces the bundle's fusion (``ranker``, ``weighted`` with its weights, or ``stacking``
    naming a model file of the bundle); ``recall_weights`` the weights of the recall channels in the merge
    (channels not named keep the bundle's); ``candidates`` the recall budget. ``artifacts`` serves another
    bundle (another model version: a folder or ``s3://bucket/prefix``), ``ranker`` another ranking backend
    (e.g. ``sagemaker://other-endpoint``), with the forms of ``SHOPREC_ARTIFACTS`` and ``SHOPREC_RANKER``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    fusion: FusionSpec | None = None
    recall_weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = None
    candidates: int | None = Field(default=None, ge=1, le=5_000)
    artifacts: str | None = None
    ranker: str | None = None

    @model_validator(mode="after")
    def _known_channels(self) -> VariantSpec:
        unknown = sorted(set(self.recall_weights or {}) - set(CHANNELS))
        if unknown:
            raise ValueError(f"recall_weights: unknown channel(s) {unknown}; expected {', '.join(CHANNELS)}")
        return self

    @property
    def changes_pipeline(self) -> bool:
        """Whether the variant serves anything but the bundle's pipeline as configured for the process."""
        return any(
            value is not None
            for value in (self.fusion, self.recall_weights, self.candidates, self.artifacts, self.ranker)
        )

    @property
    def fingerprint(self) -> str:
        """12 hex digits of the variant's name and changes: part of its cache keys, so no two variants
        share cached lists, nor a variant changed under the same name its old lists."""
        canonical = json.dumps(self.model_dump(mode="json", exclude={"weight"}), sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


class ExperimentSpec(BaseModel):
    """An experiment: its ``name``, the ``salt`` of its assignment hash (default: the name), its variants
    (at least one, unique names, at least one positive weight), the ``control`` the report compares the
    others with (default: the first variant) and the ``default`` variant of requests without a user id
    (default: the control)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    salt: str | None = Field(default=None, min_length=1, max_length=256)
    variants: list[VariantSpec] = Field(min_length=1, max_length=20)
    control: Name | None = None
    default: Name | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variants: repeated name(s) {repeated}")
        if not any(v.weight > 0 for v in self.variants):
            raise ValueError("variants: every weight is 0; at least one variant must get traffic")
        for role in ("control", "default"):
            chosen = getattr(self, role)
            if chosen is not None and chosen not in names:
                raise ValueError(f"{role}: {chosen!r} is not a variant; expected one of {names}")
        return self

    @property
    def control_variant(self) -> str:
        return self.control or self.variants[0].name

    @property
    def default_variant(self) -> str:
        return self.default or self.control_variant

    def share(self, name: str) -> float:
        """The share of the users that variant ``name`` gets: its weight over the sum of the weights."""
        return self.variant(name).weight / sum(v.weight for v in self.variants)

    def variant(self, name: str) -> VariantSpec:
        """The variant called ``name`` (``KeyError`` when there is none)."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


class Assigner:
    """Sticky assignment of users to the variants of ``spec`` by weight (see the module docstring)."""

    def __init__(self, spec: ExperimentSpec) -> None:
        self.spec = spec
        self._salt = (spec.salt or spec.name).encode("utf-8")
        self._names = [v.name for v in spec.variants]
        total = sum(v.weight for v in spec.variants)
        # Upper bounds of each variant's share of [0, 1); a variant of weight 0 has an empty share.
        self._bounds = [b / total for b in accumulate(v.weight for v in spec.variants)]

    def variant_of(self, user_id: str | None) -> str:
        """The variant ``user_id`` is served; the default variant without a user id."""
        if user_id is None:
            return self.spec.default_variant
        i = bisect_right(self._bounds, bucket(self._salt, user_id))
        return self._names[min(i, len(self._names) - 1)]


def bucket(salt: bytes, user_id: str) -> float:
    """``user_id``'s place in [0, 1) for the experiment salted ``salt``: the first 8 bytes of
    ``sha256(salt + b":" + user_id)`` as a big-endian integer over 2**64."""
    digest = hashlib.sha256(salt + b":" + user_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE


class ExperimentConfigError(ValueError):
    """``SHOPREC_EXPERIMENT`` is neither valid experiment JSON nor a readable file of it."""


def parse_experiment(value: str) -> ExperimentSpec:
    """The experiment ``value`` describes: JSON (starting with ``{``) or the path of a JSON file.

    Raises :class:`ExperimentConfigError` naming the file (if any) and every invalid field."""
    text, source = value.strip(), "SHOPREC_EXPERIMENT"
    if not text.startswith("{"):
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ExperimentConfigError(
                f"experiment: {value!r} is neither JSON nor a readable file: {exc.strerror or exc}"
            ) from exc
        source = str(path)
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise ExperimentConfigError(f"experiment: {source} is not valid JSON: {exc}") from exc
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ExperimentConfigError(f"experiment: {source}: {problems}") from exc


# The SageMaker production variant that answered the ranker's call in this request (InvokeEndpoint's
# ``InvokedProductionVariant``). A context variable because the ranker is called deep inside the pipeline,
# on the request's own thread, and the exposure record is written by the layer above once the list is made.
_endpoint_variant: ContextVar[str | None] = ContextVar("shoprec_endpoint_variant", default=None)


def record_endpoint_variant(name: str | None) -> None:
    """Note the endpoint production variant that served the current request's ranker call."""
    _endpoint_variant.set(name)


@contextmanager
def endpoint_variant_scope() -> Iterator[list[str | None]]:
    """Collects the endpoint variant noted while the block runs: ``[name]`` on exit (``[None]`` when the
    ranker was not called on SageMaker, or the list came from the cache)."""
    token = _endpoint_variant.set(None)
    seen: list[str | None] = [None]
    try:
        yield seen
    finally:
        seen[0] = _endpoint_variant.get()
        _endpoint_variant.reset(token)


def variant_pipeline_spec(base: PipelineSpec, variant: VariantSpec) -> PipelineSpec:
    """``base`` (a bundle's pipeline) with ``variant``'s fusion and recall weights, validated again (a
    fusion that reads the ranker needs a pipeline with one). Raises ``ValueError`` naming the variant."""
    data = base.model_dump()
    if variant.fusion is not None:
        data["fusion"] = variant.fusion.model_dump()
    if variant.recall_weights is not None:
        data["recall"]["weights"] = {**data["recall"]["weights"], **variant.recall_weights}
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(str(err["msg"]) for err in exc.errors())
        raise ValueError(f"experiment variant {variant.name!r}: {problems}") from exc
