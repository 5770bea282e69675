"""sagemaker/training/train.py runs like SageMaker starts it: SM_* folders, hyper-parameters as args."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from shoprec.artifacts import verify_bundle

pytestmark = [pytest.mark.train, pytest.mark.slow]

ENTRY = Path(__file__).resolve().parents[2] / "sagemaker" / "training" / "train.py"


def test_script_mode_trains_on_the_channel_and_writes_model_and_output(
    tmp_path: Path, scientific_dir: Path
) -> None:
    # A small real subset: the first 800 Amazon Scientific users, written as a sequences file.
    users = json.loads((scientific_dir / "interactions.json").read_text())
    channel = tmp_path / "input" / "train"
    channel.mkdir(parents=True)
    lines = [f"{u} " + " ".join(str(i) for i in items) for u, items in list(users.items())[:800]]
    (channel / "sequences.txt").write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
    }
    (tmp_path / "model").mkdir()
    args = ["--hidden", "16", "--max-epochs", "1", "--max-len", "20", "--threads", "2"]
    proc = subprocess.run(
        [sys.executable, str(ENTRY), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = verify_bundle(tmp_path / "model")
    assert manifest.dataset["n_users"] == 800
    assert manifest.hyperparameters["transformer"]["max_len"] == 20
    assert (tmp_path / "output" / "report.md").exists()
    assert (tmp_path / "output" / "metrics.json").exists()
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["model_version"] == manifest.model_version
    assert "metric transformer test_full_NDCG@10=" in proc.stdout
