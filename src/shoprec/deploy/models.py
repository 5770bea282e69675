"""Model versions and their S3 home: ``models/{version}/`` holds the bundle and its ``model.tar.gz``.

A bundle's version is its content hash, so publishing the same bundle twice writes the same objects, and
the tarball is packed deterministically (sorted members, zero timestamps and owners) for the same reason.
"""

from __future__ import annotations

import gzip
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.s3_artifacts import S3ArtifactStore, parse_s3_url, upload_bundle
from shoprec.artifacts import MANIFEST, Manifest, verify_bundle
from shoprec.deploy.errors import DeploymentError
from shoprec.errors import ArtifactError, BackendUnavailableError

MODELS_PREFIX = "models"
MODEL_TARBALL = "model.tar.gz"
_HEX = re.compile(r"[0-9a-f]{64}")
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


def version_hex(version: str) -> str:
    """``"sha256:<64 hex>"`` or ``"<64 hex>"`` → the 64 hex digits; ``ValueError`` for anything else."""
    digits = version.strip().removeprefix("sha256:").lower()
    if not _HEX.fullmatch(digits):
        raise ValueError(f"not a model version (sha256:<64 hex digits>): {version!r}")
    return digits


def full_version(version: str) -> str:
    """The ``"sha256:<hex>"`` form a manifest and ``/ping`` use."""
    return f"sha256:{version_hex(version)}"


def model_url(models_url: str, version: str) -> str:
    """``s3://bucket/models`` + version → ``s3://bucket/models/{hex}``."""
    return f"{models_url.rstrip('/')}/{version_hex(version)}"


@dataclass(frozen=True)
class PublishedModel:
    """A bundle in its S3 home: the version, the bundle prefix and the tarball SageMaker loads."""

    version: str
    url: str

    @property
    def model_data_url(self) -> str:
        return f"{self.url}/{MODEL_TARBALL}"


def pack_bundle(bundle_dir: Path, out: Path) -> Path:
    """Write the verified bundle in ``bundle_dir`` as a gzipped tar with its files at the root.

    SageMaker unpacks ``ModelDataUrl`` into ``/opt/ml/model``, so the manifest lands where the ranking
    endpoint looks for it. Only the manifest and the files it lists are packed.
    """
    manifest = verify_bundle(bundle_dir, use_stamp=False)  # what is published is hashed, not taken on trust
    names = sorted([entry.name for entry in manifest.files] + [MANIFEST])
    with (
        out.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            path = bundle_dir.joinpath(*PurePosixPath(name).parts)
            info = tar.gettarinfo(str(path), arcname=name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)
    return out


def unpack_bundle(tarball: Path, out_dir: Path) -> Manifest:
    """Unpack a ``model.tar.gz`` (a training job's output) into ``out_dir`` and verify the bundle in it."""
    with tarfile.open(tarball, mode="r:gz") as tar:
        tar.extractall(out_dir, filter="data")  # the "data" filter refuses absolute paths, links out, devices
    return verify_bundle(out_dir)


def publish_bundle(bundle_dir: Path, models_url: str, *, s3: Any) -> PublishedModel:
    """Upload the bundle to ``{models_url}/{version}/`` (manifest last) plus its ``model.tar.gz``."""
    manifest = verify_bundle(bundle_dir)
    url = model_url(models_url, manifest.model_version)
    with tempfile.TemporaryDirectory(prefix="shoprec-pack-") as tmp:
        tarball = pack_bundle(bundle_dir, Path(tmp) / MODEL_TARBALL)
        _upload(s3, tarball, f"{url}/{MODEL_TARBALL}")
    # The bundle's manifest is written last by upload_bundle, so a complete manifest means a complete model.
    upload_bundle(bundle_dir, url, client=s3)
    return PublishedModel(version=manifest.model_version, url=url)


def publish_model_tarball(tarball_url: str, models_url: str, *, s3: Any) -> PublishedModel:
    """Publish a training job's ``model.tar.gz`` (``s3://...``) under ``{models_url}/{version}/``."""
    with tempfile.TemporaryDirectory(prefix="shoprec-publish-") as tmp:
        tarball = Path(tmp) / MODEL_TARBALL
        _download(s3, tarball_url, tarball)
        bundle_dir = Path(tmp) / "bundle"
        unpack_bundle(tarball, bundle_dir)
        return publish_bundle(bundle_dir, models_url, s3=s3)


def ensure_model_data(artifacts_url: str, *, s3: Any) -> PublishedModel:
    """The published model at ``artifacts_url`` (``s3://bucket/models/{version}``), packing and uploading
    its ``model.tar.gz`` first when only the bundle files are there.

    Refuses a prefix whose last part is not the bundle's own version: the layout is what lets
    ``promote`` and ``rollback`` find a version's files from its hash alone.
    """
    manifest = read_remote_manifest(artifacts_url, s3=s3)
    url = artifacts_url.rstrip("/")
    if PurePosixPath(parse_s3_url(url)[1]).name != version_hex(manifest.model_version):
        raise DeploymentError(
            f"{url} holds version {manifest.model_version}; published models live under "
            f"models/{{version}}/ (publish it with `shoprec sagemaker publish`)"
        )
    published = PublishedModel(version=manifest.model_version, url=url)
    if not _exists(s3, published.model_data_url):
        with tempfile.TemporaryDirectory(prefix="shoprec-pack-") as tmp:
            bundle_dir = S3ArtifactStore(url, cache_dir=Path(tmp) / "cache", client=s3).local_path()
            tarball = pack_bundle(bundle_dir, Path(tmp) / MODEL_TARBALL)
            _upload(s3, tarball, published.model_data_url)
    return published


def read_remote_manifest(url: str, *, s3: Any) -> Manifest:
    """The manifest of the bundle at ``s3://bucket/prefix``."""
    bucket, prefix = parse_s3_url(url)
    key = f"{prefix}/{MANIFEST}" if prefix else MANIFEST
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        raise _translate(exc, f"s3://{bucket}/{key}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailableError(f"s3://{bucket}/{key}: {exc}") from exc
    return Manifest.from_json(body, source=f"s3://{bucket}/{key}")


def _exists(s3: Any, url: str) -> bool:
    bucket, key = parse_s3_url(url)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _code(exc) in _MISSING:
            return False
        raise _translate(exc, url) from exc
    return True


def _upload(s3: Any, path: Path, url: str) -> None:
    bucket, key = parse_s3_url(url)
    try:
        s3.upload_file(str(path), bucket, key)
    except ClientError as exc:
        raise _translate(exc, url) from exc
    except (BotoCoreError, OSError) as exc:
        raise BackendUnavailableError(f"{url}: upload failed: {exc}") from exc


def _download(s3: Any, url: str, path: Path) -> None:
    bucket, key = parse_s3_url(url)
    try:
        s3.download_file(bucket, key, str(path))
    except ClientError as exc:
        raise _translate(exc, url) from exc
    except (BotoCoreError, OSError) as exc:
        raise BackendUnavailableError(f"{url}: download failed: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: ClientError, url: str) -> ArtifactError | BackendUnavailableError:
    if _code(exc) in _MISSING:
        return ArtifactError(f"{url}: not found in S3")
    return BackendUnavailableError(f"{url}: S3 request failed: {exc}")
