"""The code of the scheduled retraining's training job: ``sourcedir.tar.gz`` in the artifact bucket.

The retraining state machine creates its job with the plain ``CreateTrainingJob`` API (no SageMaker SDK in
a Lambda function), in script mode: the PyTorch training image's toolkit downloads the
``sagemaker_submit_directory`` tarball and runs its ``sagemaker_program``. This packs that tarball as
``shoprec sagemaker train`` stages its source (``train.py``, ``requirements.txt``, the package under
``src/``) plus ``retrain.py``, and uploads it to where the stack's schedule expects it
(``s3://<ArtifactBucket>/retrain/source/sourcedir.tar.gz``). Stage it again after changing the package.
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from shoprec.adapters.aws.s3_artifacts import parse_s3_url
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.retrain_steps import ENTRY_SCRIPT
from shoprec.deploy.training_jobs import TRAINING_SOURCE, staged_source

SOURCE_KEY = "retrain/source/sourcedir.tar.gz"


def pack_retrain_source(out: Path) -> Path:
    """Write the job's source tarball to ``out``: members sorted, with zero times and owners, so the same
    code packs to the same bytes."""
    script = TRAINING_SOURCE / ENTRY_SCRIPT
    if not script.is_file():
        raise DeploymentError(f"{script} not found: run from a shoprec checkout (pip install -e .)")
    with staged_source() as root:
        shutil.copy2(script, root / ENTRY_SCRIPT)
        with (
            out.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for path in sorted(root.rglob("*")):
                info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isfile():
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
    return out


def stage_retrain_source(bucket: str, *, s3: Any) -> str:
    """Pack the source and upload it to ``s3://{bucket}/retrain/source/sourcedir.tar.gz``; its URL."""
    url = f"s3://{bucket}/{SOURCE_KEY}"
    name, key = parse_s3_url(url)
    with tempfile.TemporaryDirectory(prefix="shoprec-retrain-src-") as tmp:
        tarball = pack_retrain_source(Path(tmp) / "sourcedir.tar.gz")
        s3.upload_file(str(tarball), name, key)
    return url
