"""The ranking endpoint's image, built the way its Dockerfile builds it, without Docker.

There is no Docker daemon here, so this replays the Dockerfile's steps on the same Python (its
``BASE_IMAGE`` tag): a fresh venv, ``pip install -r requirements.txt "${ORT_PACKAGE}"`` with the default
build argument, ``pip install --no-deps .``; then it does what SageMaker does: unpacks the version's
``model.tar.gz`` into a model folder, sets the environment template.yaml gives the model
(``SHOPREC_ENDPOINT_MODEL_VERSION`` = the version's folder name) and the image sets, and runs ``serve``.
It catches a dependency the image lacks, an import only the project's own venv satisfies, and a tarball or
version format the container refuses. What it cannot check: the base image's OS libraries and the GPU
build (``onnxruntime-gpu`` needs a GPU host).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import httpx
import pytest
from tests.processes import free_port, stop
from tests.pythons import find_python

from shoprec.artifacts import Bundle
from shoprec.deploy.models import pack_bundle

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "sagemaker" / "inference"
DOCKERFILE = IMAGE_DIR / "Dockerfile"


def dockerfile_arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert match, f"no ARG {name}=... default in {DOCKERFILE}"
    return match.group(1)


def base_python() -> str:
    """A local interpreter of the base image's Python version (``python:3.12-slim`` → 3.12)."""
    tag = dockerfile_arg("BASE_IMAGE")
    match = re.fullmatch(r"python:(3\.\d+)[-.\w]*", tag)
    assert match, f"BASE_IMAGE {tag} is not an official python image"
    found = find_python(match.group(1))
    if found is None:
        pytest.skip(f"no local python{match.group(1)} (the image's {tag}) to replay the image build with")
    return found


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("inference-image") / "venv"
    subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # RUN pip install -r requirements.txt "${ORT_PACKAGE}"
    subprocess.run(
        [*pip, "-r", str(IMAGE_DIR / "requirements.txt"), dockerfile_arg("ORT_PACKAGE")], check=True
    )
    # RUN pip install --no-deps .
    subprocess.run([*pip, "--no-deps", str(REPO)], check=True)
    return venv


def test_the_image_serves_a_published_model_tarball(
    image_venv: Path, bundle_dir: Path, bundle: Bundle, tmp_path: Path
) -> None:
    # SageMaker unpacks ModelDataUrl into /opt/ml/model.
    model_dir = tmp_path / "opt-ml-model"
    model_dir.mkdir()
    with tarfile.open(pack_bundle(bundle_dir, tmp_path / "model.tar.gz"), mode="r:gz") as tar:
        tar.extractall(model_dir, filter="data")
    port = free_port()
    env = {
        "PATH": f"{image_venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        # The image's ENV (MODEL_DIR, PORT) and the model's from template.yaml (the version's folder name).
        "SHOPREC_ENDPOINT_MODEL_DIR": str(model_dir),
        "SHOPREC_ENDPOINT_PORT": str(port),
        "SHOPREC_ENDPOINT_MODEL_VERSION": bundle.model_version.removeprefix("sha256:"),
        "SHOPREC_ENDPOINT_HOST": "127.0.0.1",
        "SHOPREC_ENDPOINT_THREADS": "1",
    }
    proc = subprocess.Popen(
        [str(IMAGE_DIR / "serve")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"serve exited with {proc.returncode}: {output[-3000:]}")
            try:
                ping = httpx.get(f"{base}/ping", timeout=2)
                if ping.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the endpoint did not answer /ping within 60 s"
            time.sleep(0.2)
        assert ping.json() == {"status": "ok", "model_version": bundle.model_version}
        body = {"instances": [{"history": bundle.item_ids[:3], "candidates": bundle.item_ids[3:8]}]}
        answer = httpx.post(f"{base}/invocations", content=json.dumps(body), timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"][0]["scores"]) == 5
        stats = httpx.get(f"{base}/stats", timeout=5).json()
        assert stats["providers"] == ["CPUExecutionProvider"]
    finally:
        stop(proc)
    # Nothing beyond requirements.txt: no torch, boto3 or Lambda libraries in the image.
    installed = subprocess.run(
        [str(image_venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert not names & {"torch", "boto3", "aws-lambda-powertools", "redis", "mangum", "typer"}
