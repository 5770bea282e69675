"""Bundles in S3: download into a local cache folder (Lambda's /tmp survives warm starts) and verify.

Layout in S3 mirrors the bundle folder: ``s3://bucket/prefix/manifest.json`` plus every file the manifest
lists under the same prefix. Locally each version lives in ``cache_dir/<model version hex>/``, written in a
hidden staging folder and renamed into place only once complete and verified, so a folder named after a
version is always a whole bundle.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import aws_client
from shoprec.artifacts import (
    MANIFEST,
    FileEntry,
    Manifest,
    content_version,
    sha256_file,
    verify_bundle,
)
from shoprec.artifacts.reader import stamp_record, write_stamp
from shoprec.errors import ArtifactError, BackendUnavailableError, CorruptBundleError

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "shoprec-artifacts"
S3_TIMEOUT_S = 30.0  # read timeout per request; bundle files are tens of MB at most
_CHUNK = 1 << 20
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})


class S3ArtifactStore:
    """The bundle at ``s3://bucket/prefix``, fetched into ``cache_dir`` and verified.

    Every :meth:`local_path` call reads the manifest (one small GET) to learn the current version; files
    are only downloaded when no verified copy with the same sha256 is already in ``cache_dir`` (the same
    version from an earlier call, or an unchanged file of another version).
    """

    def __init__(self, url: str, cache_dir: Path = DEFAULT_CACHE_DIR, client: Any = None) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.cache_dir = Path(cache_dir)
        self._client = client if client is not None else aws_client("s3", timeout_s=S3_TIMEOUT_S)
        # One download at a time per store: concurrent cold requests must not fetch the bundle twice.
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return _join_url(self.bucket, self.prefix)

    def local_path(self) -> Path:
        """The local folder holding the current version; raises ``ArtifactError`` naming the S3 URL."""
        with self._lock:
            raw = self._get_bytes(MANIFEST)
            manifest = Manifest.from_json(raw, source=self._url_of(MANIFEST))
            target = self.cache_dir / manifest.model_version.removeprefix("sha256:")
            if target.is_dir():
                try:
                    verify_bundle(target)
                    return target
                except ArtifactError as exc:
                    log.warning("cached bundle %s is damaged (%s); downloading it again", target, exc)
            return self._download(manifest, raw, target)

    def describe(self) -> str:
        return self.url

    # --- internals ------------------------------------------------------------------------------------

    def _download(self, manifest: Manifest, raw_manifest: bytes, target: Path) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = self.cache_dir / f".{target.name}.staging-{secrets.token_hex(6)}"
        staging.mkdir()
        # The files hashed as they came in: the stamp spares the load hashing them again (a copied file
        # is hashed once more when the bundle is loaded). Renaming the folder keeps each file's stat.
        hashed: dict[str, Path] = {}
        try:
            for entry in manifest.files:
                dest = staging.joinpath(*PurePosixPath(entry.name).parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                cached = self._find_cached(entry)
                if cached is not None:
                    shutil.copyfile(cached, dest)
                else:
                    self._download_file(entry, dest)
                    hashed[entry.name] = dest
            if content_version(manifest.files) != manifest.model_version:
                raise CorruptBundleError(
                    f"model_version {manifest.model_version} does not match the listed files",
                    path=self.url,
                    file=MANIFEST,
                )
            (staging / MANIFEST).write_bytes(raw_manifest)
            records = {
                entry.name: stamp_record(hashed[entry.name], entry)
                for entry in manifest.files
                if entry.name in hashed
            }
            write_stamp(staging, records)
            _move_into_place(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("fetched bundle %s version %s into %s", self.url, manifest.short_version, target)
        return target

    def _find_cached(self, entry: FileEntry) -> Path | None:
        """A file with ``entry``'s size and sha256 in a complete cached bundle, if any."""
        if not self.cache_dir.is_dir():
            return None
        for folder in sorted(self.cache_dir.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            candidate = folder.joinpath(*PurePosixPath(entry.name).parts)
            if (
                candidate.is_file()
                and candidate.stat().st_size == entry.size
                and sha256_file(candidate) == entry.sha256
            ):
                return candidate
        return None

    def _download_file(self, entry: FileEntry, dest: Path) -> None:
        url = self._url_of(entry.name)
        h = hashlib.sha256()
        size = 0
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(entry.name))["Body"]
            with dest.open("wb") as f:
                while chunk := body.read(_CHUNK):
                    h.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
        except ClientError as exc:
            raise _translate(exc, url) from exc
        except BotoCoreError as exc:
            raise BackendUnavailableError(f"{url}: download failed: {exc}") from exc
        if size != entry.size or h.hexdigest() != entry.sha256:
            raise CorruptBundleError(
                f"file '{entry.name}' does not match the manifest: expected {entry.size} bytes with sha256 "
                f"{entry.sha256}, downloaded {size} bytes with sha256 {h.hexdigest()}",
                path=self.url,
                file=entry.name,
            )

    def _get_bytes(self, name: str) -> bytes:
        url = self._url_of(name)
        try:
            data: bytes = self._client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except ClientError as exc:
            raise _translate(exc, url) from exc
        except BotoCoreError as exc:
            raise BackendUnavailableError(f"{url}: download failed: {exc}") from exc
        return data

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _url_of(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"


def upload_bundle(local_dir: str | Path, url: str, client: Any = None) -> Manifest:
    """Publish the bundle in ``local_dir`` to ``s3://bucket/prefix`` (verified first); returns its manifest.

    The manifest is written last, so a reader never sees a manifest whose files are not there yet. A
    reader that is mid-download while a new version overwrites the same prefix gets a checksum mismatch
    (``CorruptBundleError``) and fetches again; publishing each version under its own prefix avoids that.
    """
    root = Path(local_dir)
    manifest = verify_bundle(root, use_stamp=False)  # what is published is hashed, not taken on trust
    bucket, prefix = parse_s3_url(url)
    s3 = client if client is not None else aws_client("s3", timeout_s=S3_TIMEOUT_S)
    names = [e.name for e in manifest.files] + [MANIFEST]
    for name in names:
        key = f"{prefix}/{name}" if prefix else name
        try:
            s3.upload_file(str(root.joinpath(*PurePosixPath(name).parts)), bucket, key)
        except ClientError as exc:
            raise _translate(exc, f"s3://{bucket}/{key}") from exc
        except (BotoCoreError, OSError) as exc:  # s3transfer raises its own errors, all OSError/boto based
            raise BackendUnavailableError(f"s3://{bucket}/{key}: upload failed: {exc}") from exc
    return manifest


def parse_s3_url(url: str) -> tuple[str, str]:
    """``"s3://bucket/some/prefix/"`` → ``("bucket", "some/prefix")``; ``ValueError`` if not an S3 URL."""
    if not url.startswith("s3://"):
        raise ValueError(f"expected an s3://bucket/prefix URL, got {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"S3 URL {url!r} names no bucket")
    return bucket, prefix.strip("/")


def _join_url(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def _translate(exc: ClientError, url: str) -> ArtifactError | BackendUnavailableError:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in _MISSING_CODES:
        return ArtifactError(f"{url}: not found in S3 ({code})")
    return BackendUnavailableError(f"{url}: S3 request failed: {exc}")


def _move_into_place(staging: Path, target: Path) -> None:
    if target.exists():
        # A damaged copy (or a concurrent process's complete one): swap ours in; the old one goes aside
        # first because a folder cannot be renamed onto a non-empty folder.
        aside = target.parent / f".{target.name}.old-{secrets.token_hex(6)}"
        os.rename(target, aside)
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        # Another process renamed its complete copy into place in the meantime; use it if it is whole.
        verify_bundle(target)
