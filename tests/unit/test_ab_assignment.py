"""Experiments: the configuration, sticky weighted assignment, and a variant's pipeline spec."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shoprec.artifacts.specs import FusionSpec, PipelineSpec
from shoprec.experiments import (
    Assigner,
    ExperimentConfigError,
    ExperimentSpec,
    VariantSpec,
    bucket,
    parse_experiment,
    variant_pipeline_spec,
)
from shoprec.settings import Settings


def experiment(*weights: float, **extra: Any) -> ExperimentSpec:
    names = ["control", "treatment", "third"]
    variants = [{"name": names[i], "weight": w} for i, w in enumerate(weights)]
    return ExperimentSpec.model_validate({"name": "exp1", "variants": variants, **extra})


def test_a_bucket_is_the_first_eight_bytes_of_the_salted_sha256() -> None:
    digest = hashlib.sha256(b"exp1:42").digest()
    assert bucket(b"exp1", "42") == int.from_bytes(digest[:8], "big") / 2**64
    # Pinned: the assignment of a user must never change between releases while an experiment runs.
    assert bucket(b"exp1", "42") == pytest.approx(0.2480408537673368, abs=0)


def test_assignment_is_sticky_across_processes() -> None:
    users = [str(u) for u in range(10)]
    here = [Assigner(experiment(1, 1)).variant_of(u) for u in users]
    assert here == [
        "control", "treatment", "control", "control", "treatment",
        "control", "treatment", "control", "control", "treatment",
    ]  # fmt: skip
    code = (
        "from shoprec.experiments import Assigner, ExperimentSpec\n"
        "spec = ExperimentSpec.model_validate({'name': 'exp1', 'variants': [{'name': 'control'}, "
        "{'name': 'treatment'}]})\n"
        f"print(','.join(Assigner(spec).variant_of(str(u)) for u in range({len(users)})))\n"
    )
    # Another interpreter has another hash seed: Python's hash() would split users differently there.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(",") == here


def test_users_split_by_the_weights() -> None:
    assign = Assigner(experiment(1, 3))
    users = [f"user-{u}" for u in range(20_000)]
    share = sum(assign.variant_of(u) == "treatment" for u in users) / len(users)
    assert share == pytest.approx(0.75, abs=0.015)  # 0.015 is five standard errors
    zero = Assigner(experiment(1, 0, 1))
    assert {zero.variant_of(u) for u in users[:2000]} == {"control", "third"}


def test_another_salt_splits_users_independently() -> None:
    users = [f"user-{u}" for u in range(20_000)]
    first = Assigner(experiment(1, 1))
    second = Assigner(experiment(1, 1, salt="exp2"))
    both = sum(first.variant_of(u) == second.variant_of(u) == "treatment" for u in users) / len(users)
    assert both == pytest.approx(0.25, abs=0.015)


def test_requests_without_a_user_get_the_default_variant() -> None:
    assert Assigner(experiment(1, 1)).variant_of(None) == "control"
    assert Assigner(experiment(1, 1, default="treatment")).variant_of(None) == "treatment"
    spec = experiment(1, 1, control="treatment")
    assert (spec.control_variant, spec.default_variant) == ("treatment", "treatment")


def test_the_configuration_is_json_or_a_file(tmp_path: Path) -> None:
    text = json.dumps({"name": "exp1", "variants": [{"name": "a"}, {"name": "b", "weight": 2}]})
    assert parse_experiment(text).variants[1].weight == 2
    path = tmp_path / "exp.json"
    path.write_text(text)
    assert parse_experiment(str(path)) == parse_experiment(text)
    assert Settings(experiment=str(path)).experiment == str(path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "e", "variants": []}, "variants: List should have at least 1 item"),
        ({"name": "e", "variants": [{"name": "a"}, {"name": "a"}]}, "repeated name"),
        ({"name": "e", "variants": [{"name": "a", "weight": 0}]}, "every weight is 0"),
        ({"name": "e", "variants": [{"name": "a", "weight": -1}]}, "variants.0.weight"),
        ({"name": "e", "variants": [{"name": "a"}], "control": "b"}, "control: 'b' is not a variant"),
        ({"name": "e", "variants": [{"name": "a", "recall_weights": {"bm25": 1}}]}, "unknown channel"),
        ({"name": "e", "variants": [{"name": "a", "fusion": {"kind": "magic"}}]}, "variants.0.fusion.kind"),
        ({"name": "e", "variants": [{"name": "a", "colour": "red"}]}, "variants.0.colour"),
    ],
)
def test_an_invalid_configuration_names_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ExperimentConfigError, match=message):
        parse_experiment(json.dumps(config))


def test_a_configuration_that_is_neither_json_nor_a_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ExperimentConfigError, match="neither JSON nor a readable file"):
        parse_experiment(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ExperimentConfigError, match=r"bad\.json is not valid JSON"):
        parse_experiment(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="experiment: SHOPREC_EXPERIMENT: variants"):
        Settings(experiment='{"name": "e", "variants": []}')


def test_a_variant_spec_changes_the_fusion_and_the_named_channel_weights_only() -> None:
    base = PipelineSpec()
    variant = VariantSpec(
        name="treatment",
        fusion=FusionSpec(kind="weighted", weights={"ranker": 1.0, "itemcf": 0.5}),
        recall_weights={"embedding": 0.25},
    )
    changed = variant_pipeline_spec(base, variant)
    assert changed.fusion == FusionSpec(kind="weighted", weights={"ranker": 1.0, "itemcf": 0.5})
    assert changed.recall.weights == {**base.recall.weights, "embedding": 0.25}
    assert (changed.itemcf, changed.recall.quotas) == (base.itemcf, base.recall.quotas)
    without_ranker = base.model_copy(
        update={"ranker": None, "fusion": FusionSpec(kind="weighted", weights={"itemcf": 1})}
    )
    with pytest.raises(ValueError, match=r"variant 'treatment'.*uses the ranker"):
        variant_pipeline_spec(without_ranker, variant)


def test_the_fingerprint_changes_with_what_a_variant_changes_not_its_weight() -> None:
    a = experiment(1, 1).variants[0]
    assert a.fingerprint == a.model_copy(update={"weight": 5.0}).fingerprint
    assert a.fingerprint != a.model_copy(update={"candidates": 100}).fingerprint
    assert a.fingerprint != a.model_copy(update={"name": "other"}).fingerprint
    assert not a.changes_pipeline
    assert a.model_copy(update={"candidates": 100}).changes_pipeline
