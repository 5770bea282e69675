"""A copy of a bundle with more ranker variants: compressed ONNX files of the same ranker, one of them
chosen as the one served by default (``RankerSpec.variants``, ``SHOPREC_RANKER_VARIANT``).

The copy is a new bundle (its own model version, since its files differ); the source is left untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from shoprec.artifacts.manifest import Manifest
from shoprec.artifacts.reader import Bundle
from shoprec.artifacts.specs import FP32_VARIANT, INT8_VARIANT, MANIFEST, RankerVariantKind, RankerVariantSpec
from shoprec.artifacts.writer import BundleWriter
from shoprec.errors import ArtifactError


def write_with_ranker_variants(
    bundle: Bundle,
    out_dir: Path,
    variants: Mapping[str, tuple[Path, RankerVariantKind]],
    *,
    default_variant: str | None = None,
) -> Manifest:
    """Write ``bundle`` with every one of its files plus ``variants`` (name -> (ONNX file, kind); each is
    stored as ``ranker.<name>.onnx``) to ``out_dir``; ``default_variant`` (``None``: the bundle's) is the one
    served unless ``SHOPREC_RANKER_VARIANT`` says otherwise. :class:`ArtifactError` when the bundle has no
    ranker or a name is taken or invalid."""
    spec = bundle.pipeline.ranker
    if spec is None:
        raise ArtifactError(f"{bundle.path}: the bundle's pipeline has no ranker")
    taken = {FP32_VARIANT, INT8_VARIANT, *spec.variants}
    clash = sorted(taken & set(variants))
    if clash:
        raise ArtifactError(f"{bundle.path}: ranker variant(s) {', '.join(clash)} already exist")
    with BundleWriter(out_dir) as writer:
        for entry in bundle.manifest.files:
            if entry.name != MANIFEST:
                writer.add_file(entry.name, bundle.file(entry.name))
        added: dict[str, RankerVariantSpec] = {}
        for name, (path, kind) in variants.items():
            file = f"ranker.{name}.onnx"
            if bundle.has_file(file):
                raise ArtifactError(f"{bundle.path}: the bundle already has a file '{file}'")
            writer.add_file(file, path)
            added[name] = RankerVariantSpec(file=file, kind=kind)
        try:
            ranker = spec.model_validate(
                {
                    **spec.model_dump(),
                    "variants": {
                        **spec.model_dump()["variants"],
                        **{k: v.model_dump() for k, v in added.items()},
                    },
                    "default_variant": default_variant or spec.default_variant,
                }
            )
        except ValueError as exc:
            raise ArtifactError(f"{bundle.path}: ranker variants: {exc}") from None
        manifest = bundle.manifest
        return writer.commit(
            dataset=manifest.dataset,
            hyperparameters=manifest.hyperparameters,
            metrics=manifest.metrics,
            pipeline=bundle.pipeline.model_copy(update={"ranker": ranker}),
            extra=manifest.extra,
        )
