"""Settings validation and the composition root: DSN prefixes pick the adapters, bad values name the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.unit.fakes import FakeRanker, make_bundle

from shoprec.container import build_container, cache_for, ranker_for, state_store_for
from shoprec.errors import ArtifactError
from shoprec.settings import Settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ARTIFACTS", "STATE", "CACHE", "RANKER", "CANDIDATES", "LATENCY_BUDGET_MS", "CACHE_TTL_S"):
        monkeypatch.delenv(f"SHOPREC_{name}", raising=False)


@pytest.mark.usefixtures("clean_env")
def test_defaults_are_a_local_single_machine_setup() -> None:
    s = Settings()
    assert (s.artifacts, s.state, s.cache, s.ranker) == (
        "artifacts/scientific",
        "sqlite:///./shoprec-state.db",
        "memory://",
        "onnx",
    )
    assert (s.latency_budget_ms, s.cache_ttl_s, s.max_body_bytes) == (150, 300, 262_144)
    assert s.candidates is None  # the bundle's recall budget
    assert s.artifact_cache_dir.name == "shoprec-artifacts"


@pytest.mark.usefixtures("clean_env")
def test_environment_variables_with_the_shoprec_prefix_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPREC_CANDIDATES", "120")
    monkeypatch.setenv("SHOPREC_CACHE", "rediss://cache.example.com:6379/0")
    s = Settings()
    assert s.candidates == 120
    assert s.cache == "rediss://cache.example.com:6379/0"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("state", "postgres://db/shoprec"),
        ("state", "sqlite:///"),
        ("state", "dynamodb://"),
        ("state", "dynamodb://bad/table"),
        ("cache", "memcached://host:11211"),
        ("cache", "redis://"),
        ("ranker", "torch"),
        ("ranker", "sagemaker://"),
        ("ranker", "http://"),
        ("artifacts", "gs://bucket/model"),
        ("artifacts", "s3://"),
        ("artifacts", ""),
        ("latency_budget_ms", 0),
        ("candidates", 0),
        ("max_body_bytes", 10),
    ],
)
def test_a_bad_value_is_rejected_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**{field: value})
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert field in str(info.value)


def test_dsn_errors_say_which_forms_are_accepted() -> None:
    with pytest.raises(ValidationError, match=r"sqlite:///path or dynamodb://table"):
        Settings(state="mysql://x")


def test_overridden_applies_only_given_values_and_validates_them() -> None:
    base = Settings(cache="memory://", candidates=200)
    s = base.overridden(cache="redis://localhost:6379/1", ranker=None)
    assert (s.cache, s.ranker, s.candidates) == ("redis://localhost:6379/1", base.ranker, 200)
    with pytest.raises(ValidationError, match="ranker"):
        base.overridden(ranker="tensorflow")


def test_importing_settings_reads_no_environment() -> None:
    code = (
        "import shoprec.settings as s, shoprec.container, shoprec.api.app\n"
        "try:\n    s.get_settings()\nexcept Exception as e:\n    print(type(e).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"SHOPREC_STATE": "nonsense", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ValidationError"  # raised on first use, not on import


def test_the_container_builds_the_backends_its_settings_name(bundle_dir: Path, tmp_path: Path) -> None:
    settings = Settings(artifacts=str(bundle_dir), state=f"sqlite:///{tmp_path}/state.db", cache="memory://")
    container = build_container(settings, ranker=FakeRanker())
    assert container.backends() == {
        "artifacts": f"file://{bundle_dir.resolve()}",
        "state": f"sqlite:///{(tmp_path / 'state.db').resolve()}",
        "cache": "memory://",
        "ranker": "fake://ranker",
    }
    assert container.pipeline.merge_policy.budget == container.bundle.pipeline.recall.budget
    assert container.model_version == container.bundle.manifest.model_version
    fewer = build_container(settings.overridden(candidates=50), ranker=FakeRanker())
    assert fewer.pipeline.merge_policy.budget == 50


def test_the_onnx_ranker_needs_a_bundle_with_a_ranker(bundle_dir: Path, tmp_path: Path) -> None:
    settings = Settings(artifacts=str(bundle_dir), state=f"sqlite:///{tmp_path}/state.db", ranker="onnx")
    with pytest.raises(ArtifactError, match="cannot load the ONNX ranker"):  # the tiny bundle's is a stand-in
        build_container(settings)


def test_a_missing_bundle_is_an_artifact_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="absent"):
        build_container(Settings(artifacts=str(tmp_path / "absent")))


def test_aws_and_remote_backends_are_chosen_by_prefix_without_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert state_store_for("dynamodb://shoprec-state").describe() == "dynamodb://shoprec-state"
    assert cache_for("redis://localhost:6390/2").describe() == "redis://localhost:6390/2"
    assert cache_for("memory://").describe() == "memory://"
    bundle = make_bundle()
    assert ranker_for("sagemaker://shoprec-ranker", bundle).describe() == "sagemaker://shoprec-ranker"
    assert ranker_for("http://127.0.0.1:8080", bundle).describe() == "http://127.0.0.1:8080"
