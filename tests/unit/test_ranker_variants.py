"""Ranker variants in the manifest: which file each variant name means, and the errors for bad ones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shoprec.artifacts import PipelineSpec, RankerSpec, RankerVariantSpec
from shoprec.artifacts.manifest import parse_pipeline
from shoprec.errors import ArtifactError
from shoprec.settings import Settings

STATIC = RankerVariantSpec(file="ranker.int8-static.onnx", kind="int8-static")


def test_an_old_spec_has_fp32_and_int8_and_serves_fp32() -> None:
    spec = RankerSpec()
    assert spec.variant_files() == {"fp32": "ranker.onnx", "int8": "ranker.int8.onnx"}
    assert spec.variant_file(None) == "ranker.onnx"
    assert spec.variant_file("int8") == "ranker.int8.onnx"


def test_listed_variants_join_the_implied_ones_and_one_can_be_the_default() -> None:
    spec = RankerSpec(int8_file=None, variants={"int8-static": STATIC}, default_variant="int8-static")
    assert spec.variant_files() == {"fp32": "ranker.onnx", "int8-static": "ranker.int8-static.onnx"}
    assert spec.variant_file(None) == "ranker.int8-static.onnx"
    assert spec.variant_file("fp32") == "ranker.onnx"


def test_an_unknown_variant_names_the_ones_there_are() -> None:
    spec = RankerSpec(variants={"int8-static": STATIC})
    with pytest.raises(
        ValueError, match=r"no ranker variant 'fp16'; this bundle has fp32, int8, int8-static"
    ):
        spec.variant_file("fp16")


def test_int8_is_no_variant_without_an_int8_file() -> None:
    with pytest.raises(ValueError, match=r"this bundle has fp32$"):
        RankerSpec(int8_file=None).variant_file("int8")


def test_a_default_that_is_not_a_variant_is_refused() -> None:
    with pytest.raises(ValidationError, match="default_variant 'int8' is not one of the variants"):
        RankerSpec(int8_file=None, default_variant="int8")


def test_implied_names_cannot_be_listed_again() -> None:
    with pytest.raises(ValidationError, match="'fp32' is implied"):
        RankerSpec(variants={"fp32": STATIC})


def test_the_manifest_error_names_the_field_of_a_bad_variant() -> None:
    def bad(field: str, why: str) -> ArtifactError:
        return ArtifactError(f"manifest field '{field}' {why}")

    obj = PipelineSpec().model_dump()
    obj["ranker"]["variants"] = {"small": {"file": "ranker.small.onnx", "kind": "tiny"}}
    with pytest.raises(ArtifactError, match=r"'pipeline\.ranker\.variants\.small\.kind'"):
        parse_pipeline(obj, bad)


def test_variants_survive_the_manifest_round_trip() -> None:
    spec = PipelineSpec(ranker=RankerSpec(variants={"int8-static": STATIC}, default_variant="int8-static"))
    assert PipelineSpec.model_validate_json(spec.model_dump_json()) == spec


def test_the_setting_is_read_from_shoprec_ranker_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPREC_RANKER_VARIANT", "int8")
    assert Settings().ranker_variant == "int8"
    monkeypatch.delenv("SHOPREC_RANKER_VARIANT")
    assert Settings().ranker_variant is None


def test_the_endpoint_reads_the_same_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from shoprec.endpoint.settings import EndpointSettings

    monkeypatch.setenv("SHOPREC_RANKER_VARIANT", "int8-static")
    settings = EndpointSettings()
    assert settings.ranker_variant == "int8-static"
    assert settings.overridden(threads=2).ranker_variant == "int8-static"
    assert settings.overridden(ranker_variant="fp32").ranker_variant == "fp32"
