"""The online services follow the served-version SSM parameter (moto): promoting a version needs no redeploy.

Bundles live under ``s3://bucket/models/{version}/``; the container reads the version from the parameter
through Powertools Parameters with a short cache, loads that folder (under ``SHOPREC_ARTIFACTS``, the models
root) and rebuilds itself when the parameter changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tests.integration.model_versions import derive_version, set_served_version

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.ssm_version import SsmModelVersion
from shoprec.container import LazyContainer, build_container, served_location, version_source_for
from shoprec.deploy.models import publish_bundle
from shoprec.errors import ArtifactError
from shoprec.settings import Settings

BUCKET = "shoprec-served-version"
PARAMETER = "/shoprec/test/served"


@pytest.fixture(scope="module")
def models(moto_server: str, bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two published versions in moto's S3; their versions."""
    s3 = aws_client("s3", timeout_s=30)
    s3.create_bucket(Bucket=BUCKET)
    second = tmp_path_factory.mktemp("served") / "bundle"
    derive_version(bundle_dir, second, "second")
    return [publish_bundle(b, f"s3://{BUCKET}/models", s3=s3).version for b in (bundle_dir, second)]


def settings_for(tmp_path: Path, max_age_s: int, parameter: str = PARAMETER) -> Settings:
    return Settings(
        # As template.yaml sets it: the models root; the parameter names the folder under it to serve.
        artifacts=f"s3://{BUCKET}/models",
        model_version_parameter=parameter,
        model_version_max_age_s=max_age_s,
        artifact_cache_dir=tmp_path / "cache",
        state=f"sqlite:///{tmp_path / 'state.db'}",
    )


def following(settings: Settings) -> LazyContainer:
    return LazyContainer(
        lambda version: build_container(settings, version=version),
        current_version=lambda: version_source_for(settings).current(),
    )


def test_a_promotion_reaches_a_warm_container_without_a_redeploy(models: list[str], tmp_path: Path) -> None:
    first, second = models
    set_served_version(PARAMETER, first)
    provider = following(settings_for(tmp_path, max_age_s=0))

    assert provider.get().model_version == first
    assert provider.get().backends()["artifacts"].endswith(first.removeprefix("sha256:"))
    set_served_version(PARAMETER, second)
    assert provider.get().model_version == second
    assert not provider.built  # get() looks the version up, so the API calls it off the event loop


def test_a_build_loads_the_version_that_was_looked_up_without_asking_again(
    models: list[str], tmp_path: Path
) -> None:
    """The version that decided to build is the one loaded: a second lookup could name another."""
    first, second = models
    name = f"{PARAMETER}-once"
    set_served_version(name, second)
    settings = settings_for(tmp_path, max_age_s=0, parameter=name)
    provider = LazyContainer(
        lambda version: build_container(settings, version=version), current_version=lambda: first
    )
    assert provider.get().model_version == first
    assert build_container(settings).model_version == second  # without a version: the parameter's


def test_the_version_is_cached_for_max_age(models: list[str], tmp_path: Path) -> None:
    first, second = models
    name = f"{PARAMETER}-cached"
    set_served_version(name, first)
    provider = following(settings_for(tmp_path, max_age_s=60, parameter=name))
    assert provider.get().model_version == first
    set_served_version(name, second)
    assert provider.get().model_version == first  # still inside the minute Powertools caches it


def test_a_promoted_version_that_cannot_load_leaves_the_current_one_serving(
    models: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = models
    name = f"{PARAMETER}-broken"
    set_served_version(name, first)
    provider = following(settings_for(tmp_path, max_age_s=0, parameter=name))
    assert provider.get().model_version == first
    set_served_version(name, "sha256:" + "0" * 64)  # promoted, but never published
    with caplog.at_level(logging.ERROR, logger="shoprec.container"):
        assert provider.get().model_version == first
    assert "cannot switch to model version" in caplog.text


def test_nothing_promoted_yet_is_an_artifact_error(models: list[str], tmp_path: Path) -> None:
    provider = following(settings_for(tmp_path, max_age_s=0, parameter=f"{PARAMETER}-never-set"))
    with pytest.raises(ArtifactError, match="no model version was promoted"):
        provider.get()


def test_the_parameter_history_is_the_record_of_promotions(models: list[str]) -> None:
    name = f"{PARAMETER}-history"
    parameter = SsmModelVersion(name)
    assert parameter.history() == []
    for version in (*models, models[0]):
        set_served_version(name, version)  # the folder name is stored, the full form read back
    assert parameter.history() == [models[0], models[1], models[0]]


@pytest.mark.parametrize("name", ["no spaces", "semi;colon", "x" * 2049])
def test_a_malformed_parameter_name_is_refused_by_the_settings(name: str) -> None:
    with pytest.raises(ValueError, match="model_version_parameter"):
        Settings(model_version_parameter=name)


def test_the_served_folder_is_the_parameters_version_under_the_models_root() -> None:
    hex_ = "ab" * 32
    assert served_location("s3://bucket/models", f"sha256:{hex_}") == f"s3://bucket/models/{hex_}"
    assert served_location("s3://bucket/models/", "v1") == "s3://bucket/models/v1"
    assert served_location("/srv/models", hex_) == f"/srv/models/{hex_}"
