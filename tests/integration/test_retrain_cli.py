"""``shoprec retrain`` end to end on real Amazon Scientific sequences: a base dataset of the users' earlier
items, an event log of their last two (one before the cut, one after it), the served bundle built from the
base alone; a short training keeps the run to seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from tests.integration.bundle_factory import build_bundle, default_dataset_dir

from shoprec.artifacts import load_bundle, verify_bundle
from shoprec.cli import app
from shoprec.cli.retrain import GATE_REFUSED
from shoprec.data import load_dataset
from shoprec.data.loaders import with_events
from shoprec.deploy.gate import GatePolicy, decide
from shoprec.deploy.models import pack_bundle
from shoprec.evaluation.window import read_log, split_log, training_dataset, write_training_log

RETRAIN_ENTRY = Path(__file__).resolve().parents[2] / "sagemaker" / "training" / "retrain.py"
USERS = 600
BEFORE = datetime(2026, 11, 1, tzinfo=UTC)  # each user's second-to-last item, one minute apart
AFTER = datetime(2026, 11, 20, tzinfo=UTC)  # each user's last item: the held-out window
CUT = "2026-11-15T00:00:00+00:00"
TINY = ["--no-text", "--hidden", "8", "--max-len", "20", "--max-epochs", "1", "--patience", "1"]
TINY += ["--threads", "1"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("retrain")
    real = load_dataset(default_dataset_dir())
    base, log = root / "base", root / "log" / "date=2026-11-20"
    base.mkdir()
    log.mkdir(parents=True)
    lines, records, base_items, targets = [], [], set(), []
    for u in range(USERS):
        uid, items = real.user_ids[u], [real.item_ids[i] for i in real.sequences[u]]
        lines.append(" ".join([uid, *items[:-2]]))
        base_items.update(items[:-2])
        targets.append(items[-1])
        for n, (item, start) in enumerate(((items[-2], BEFORE), (items[-1], AFTER))):
            at = (start + timedelta(minutes=u)).isoformat()
            records.append({"event_id": f"e{u}-{n}", "user_id": uid, "item_id": item, "timestamp": at})
    (base / "sequences.txt").write_text("\n".join(lines) + "\n")
    records.append(records[0])  # delivered twice: counted once
    (log / "part-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    served = root / "served"
    build_bundle(served, dataset_dir=base)
    # The served bundle knows the base's items only: a target outside them is no fair case.
    (root / "known_targets").write_text(str(sum(t in base_items for t in targets)))
    return {"root": root, "base": base, "log": log.parent, "served": served}


def _retrain(shop: dict[str, Path], out: Path, *extra: str) -> tuple[int, str]:
    args = ["retrain", "--events", str(shop["log"]), "--artifacts", str(shop["served"]), "--out", str(out)]
    args += ["--dataset", str(shop["base"]), "--cut", CUT, *TINY, *extra]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout


@pytest.mark.train
@pytest.mark.slow
def test_retrain_trains_before_the_cut_and_gates_on_the_window(shop: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "new"
    code, stdout = _retrain(shop, out, "--json", "--min-users", "100", "--margin", "0.5")
    report = json.loads(stdout)
    assert code == (0 if report["decision"]["passed"] else GATE_REFUSED), stdout
    window = report["window"]
    assert (window["training_events"], window["window_events"], window["window_users"]) == (600, 600, 600)
    assert window["users"] == int((shop["root"] / "known_targets").read_text())
    assert window["dropped"] == {"cold": 0, "unknown_item": USERS - window["users"]}
    # The decision is the gate's on the two printed sets of figures.
    again = decide(
        report["served_metrics"],
        report["new_metrics"],
        users=window["users"],
        policy=GatePolicy(margin=0.5, min_users=100),
    )
    assert again.to_json_dict() == report["decision"]
    assert report["served_metrics"]["NDCG@10"] != report["new_metrics"]["NDCG@10"]

    # Leakage guard: the new bundle trained on the base and the events before the cut, not the window.
    trained = load_bundle(out).manifest.dataset["fingerprint"]
    logged = read_log(shop["log"])
    pre_cut = write_training_log(
        split_log(logged, datetime.fromisoformat(CUT).timestamp()), shop["log"], tmp_path / "pre"
    )
    assert trained == training_dataset(pre_cut, shop["base"]).fingerprint()
    everything = with_events(load_dataset(shop["base"]), load_dataset(shop["log"], "eventlog"))
    assert trained != everything.fingerprint()


@pytest.mark.train
@pytest.mark.slow
def test_a_refused_gate_prints_both_versions_and_exits_3(shop: dict[str, Path], tmp_path: Path) -> None:
    code, stdout = _retrain(shop, tmp_path / "new", "--min-users", "100000")
    assert code == GATE_REFUSED
    served = load_bundle(shop["served"]).manifest.short_version
    new = load_bundle(tmp_path / "new").manifest.short_version
    assert f"served {served}" in stdout
    assert f"new {new}" in stdout
    assert "NDCG@10" in stdout
    assert "REFUSED" in stdout
    assert "fewer than the 100000 required" in stdout


@pytest.mark.train
@pytest.mark.slow
def test_the_script_mode_job_runs_the_same_loop_and_writes_the_decision(
    shop: dict[str, Path], tmp_path: Path
) -> None:
    served = tmp_path / "input" / "served"
    served.mkdir(parents=True)
    pack_bundle(shop["served"], served / "model.tar.gz")  # the channel holds the published tarball
    env = {
        **os.environ,
        "SM_CHANNEL_EVENTS": str(shop["log"]),
        "SM_CHANNEL_SERVED": str(served),
        "SM_CHANNEL_TRAIN": str(shop["base"]),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
    }
    (tmp_path / "model").mkdir()
    # As the training toolkit passes CreateTrainingJob's hyper-parameters: --key value.
    args = ["--cut", CUT, "--gate-margin", "0.5", "--gate-min-users", "100", "--hidden", "8"]
    args += ["--max-len", "20", "--max-epochs", "1", "--patience", "1", "--threads", "1"]
    proc = subprocess.run(
        [sys.executable, str(RETRAIN_ENTRY), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = verify_bundle(tmp_path / "model")
    report = json.loads((tmp_path / "output" / "decision.json").read_text())
    assert report["new_version"] == manifest.short_version
    assert report["served_version"] == load_bundle(shop["served"]).manifest.short_version
    assert report["window"]["cut"] == CUT
    assert report["decision"]["margin"] == 0.5
    assert json.loads(proc.stdout.strip().splitlines()[-1])["gate_passed"] == report["decision"]["passed"]
