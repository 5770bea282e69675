"""sagemaker/training/train.py under ``torchrun --nproc_per_node=2`` (gloo on CPU), as a SageMaker job with
a Torchrun distribution starts it: both ranks train, rank 0 alone writes the bundle and the reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from shoprec.artifacts import MANIFEST, verify_bundle

pytestmark = [pytest.mark.train, pytest.mark.slow]

ENTRY = Path(__file__).resolve().parents[2] / "sagemaker" / "training" / "train.py"
USERS = 500
EPOCHS = 2


def test_two_ranks_train_together_and_the_bundle_is_written_once(
    tmp_path: Path, scientific_dir: Path
) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None, "torchrun comes with torch"
    users = json.loads((scientific_dir / "interactions.json").read_text())
    channel = tmp_path / "input" / "train"
    channel.mkdir(parents=True)
    lines = [f"{u} " + " ".join(str(i) for i in items) for u, items in list(users.items())[:USERS]]
    (channel / "sequences.txt").write_text("\n".join(lines) + "\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    env = {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
        "OMP_NUM_THREADS": "1",
    }
    # Both spellings of a hyper-parameter, as SageMaker passes whatever keys the job was given.
    args = [
        "--hidden",
        "16",
        "--max_len",
        "20",
        "--max-epochs",
        str(EPOCHS),
        "--patience",
        "10",
        "--threads",
        "1",
    ]
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", str(ENTRY), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    manifest = verify_bundle(model_dir)
    assert sorted(p.name for p in model_dir.rglob(MANIFEST)) == [MANIFEST]
    assert manifest.dataset["n_users"] == USERS
    assert manifest.hyperparameters["transformer"]["max_len"] == 20
    training = manifest.extra["training"]
    assert training["stopped_by"] == "max epochs"
    log = json.loads((model_dir / "training_log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == list(range(1, EPOCHS + 1))
    assert all(e["valid_ndcg10"] >= 0 for e in log["epochs"])  # rank 0's validation, seen by every rank

    # One summary, from rank 0: the other rank trained but wrote and printed nothing.
    summaries = [line for line in proc.stdout.splitlines() if line.startswith('{"model_version"')]
    assert len(summaries) == 1
    assert json.loads(summaries[0])["model_version"] == manifest.model_version
    assert proc.stdout.count("metric transformer test_full_NDCG@10=") == 1
    assert (tmp_path / "output" / "report.md").exists()
