"""S3ArtifactStore and upload_bundle against moto over HTTP, with a real bundle."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.s3_artifacts import S3ArtifactStore, parse_s3_url, upload_bundle
from shoprec.artifacts import MANIFEST, POPULARITY, BundleWriter, load_bundle, read_manifest, reader
from shoprec.errors import ArtifactError, CorruptBundleError


class GetCounter:
    """Counts S3 GetObject calls by key through botocore's event hooks."""

    def __init__(self, client: Any) -> None:
        self.keys: list[str] = []
        client.meta.events.register("before-call.s3.GetObject", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.keys.append(params["url_path"].rsplit("/", 1)[-1])


@pytest.fixture
def s3(moto_server: str) -> Any:
    return aws_client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"models-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def test_a_published_bundle_is_fetched_verified_and_loadable(
    s3: Any, bucket: str, bundle_dir: Path, tmp_path: Path
) -> None:
    manifest = upload_bundle(bundle_dir, f"s3://{bucket}/scientific/", s3)
    store = S3ArtifactStore(f"s3://{bucket}/scientific", cache_dir=tmp_path)
    local = store.local_path()
    assert local == tmp_path / manifest.model_version.removeprefix("sha256:")
    assert read_manifest(local) == manifest
    assert load_bundle(local).item_ids == load_bundle(bundle_dir).item_ids
    assert [p.name for p in tmp_path.iterdir()] == [local.name]  # no staging folder left behind
    assert store.describe() == f"s3://{bucket}/scientific"


def test_a_second_fetch_reads_only_the_manifest(
    s3: Any, bucket: str, bundle_dir: Path, tmp_path: Path
) -> None:
    upload_bundle(bundle_dir, f"s3://{bucket}/m", s3)
    counter = GetCounter(s3)
    store = S3ArtifactStore(f"s3://{bucket}/m", cache_dir=tmp_path, client=s3)
    first = store.local_path()
    n_files = len(read_manifest(first).files)
    assert len(counter.keys) == n_files + 1
    counter.keys.clear()
    assert S3ArtifactStore(f"s3://{bucket}/m", cache_dir=tmp_path, client=s3).local_path() == first
    assert counter.keys == [MANIFEST]


def test_a_new_version_downloads_only_the_changed_files(
    s3: Any, bucket: str, bundle_dir: Path, tmp_path: Path
) -> None:
    upload_bundle(bundle_dir, f"s3://{bucket}/m", s3)
    store = S3ArtifactStore(f"s3://{bucket}/m", cache_dir=tmp_path / "cache", client=s3)
    old = store.local_path()
    upload_bundle(_with_new_popularity(bundle_dir, tmp_path / "v2"), f"s3://{bucket}/m", s3)
    counter = GetCounter(s3)
    new = store.local_path()
    assert new != old
    assert sorted(counter.keys) == sorted([MANIFEST, POPULARITY])
    assert load_bundle(new).popularity[0] == load_bundle(old).popularity[0] + 1


class HashCounter:
    """Counts the files the bundle reader hashes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        real = reader.sha256_file

        def counted(path: Path) -> str:
            self.names.append(path.name)
            return real(path)

        monkeypatch.setattr(reader, "sha256_file", counted)


def test_downloaded_files_are_hashed_once_and_a_publish_hashes_every_file(
    s3: Any, bucket: str, bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold start fetches and loads: the files were hashed as they came in, and the stamp written then
    spares the load (and the next cold start on the same /tmp) hashing them again. Publishing never trusts
    a stamp."""
    hashes = HashCounter(monkeypatch)
    load_bundle(bundle_dir)  # the writer's (or this load's) stamp: nothing left to hash
    hashes.names.clear()
    manifest = upload_bundle(bundle_dir, f"s3://{bucket}/m", s3)
    assert sorted(hashes.names) == sorted(PurePosixPath(e.name).name for e in manifest.files)
    hashes.names.clear()
    store = S3ArtifactStore(f"s3://{bucket}/m", cache_dir=tmp_path, client=s3)
    local = store.local_path()
    assert load_bundle(local).item_ids == load_bundle(bundle_dir).item_ids
    assert S3ArtifactStore(f"s3://{bucket}/m", cache_dir=tmp_path, client=s3).local_path() == local
    assert hashes.names == []
    # A file changed in place after the download (same size) is hashed again, and refused.
    target = local / POPULARITY
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptBundleError) as info:
        load_bundle(local)
    assert info.value.file == POPULARITY


def test_a_damaged_cached_copy_is_downloaded_again(
    s3: Any, bucket: str, bundle_dir: Path, tmp_path: Path
) -> None:
    upload_bundle(bundle_dir, f"s3://{bucket}/m", s3)
    store = S3ArtifactStore(f"s3://{bucket}/m", cache_dir=tmp_path, client=s3)
    local = store.local_path()
    (local / POPULARITY).write_bytes(b"tampered")
    assert store.local_path() == local
    load_bundle(local)  # verifies every checksum again


def test_a_corrupted_object_raises_corrupt_bundle_and_leaves_no_folder(
    s3: Any, bucket: str, bundle_dir: Path, tmp_path: Path
) -> None:
    upload_bundle(bundle_dir, f"s3://{bucket}/m", s3)
    s3.put_object(Bucket=bucket, Key=f"m/{POPULARITY}", Body=b"\x93NUMPY corrupted")
    store = S3ArtifactStore(f"s3://{bucket}/m", cache_dir=tmp_path, client=s3)
    with pytest.raises(CorruptBundleError) as info:
        store.local_path()
    assert info.value.file == POPULARITY
    assert f"s3://{bucket}/m" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_manifest_names_the_s3_url(s3: Any, bucket: str, tmp_path: Path) -> None:
    store = S3ArtifactStore(f"s3://{bucket}/nothing-here", cache_dir=tmp_path, client=s3)
    with pytest.raises(ArtifactError, match=re.escape(f"s3://{bucket}/nothing-here/manifest.json")):
        store.local_path()


def test_a_missing_bucket_names_the_s3_url(s3: Any, tmp_path: Path) -> None:
    store = S3ArtifactStore("s3://no-such-bucket-shoprec/m", cache_dir=tmp_path, client=s3)
    with pytest.raises(ArtifactError, match=re.escape("s3://no-such-bucket-shoprec/m/manifest.json")):
        store.local_path()


def test_a_missing_listed_file_names_its_s3_url(
    s3: Any, bucket: str, bundle_dir: Path, tmp_path: Path
) -> None:
    upload_bundle(bundle_dir, f"s3://{bucket}/m", s3)
    s3.delete_object(Bucket=bucket, Key=f"m/{POPULARITY}")
    store = S3ArtifactStore(f"s3://{bucket}/m", cache_dir=tmp_path, client=s3)
    with pytest.raises(ArtifactError, match=re.escape(f"s3://{bucket}/m/{POPULARITY}")):
        store.local_path()


def test_a_bundle_at_the_bucket_root_works(s3: Any, bucket: str, bundle_dir: Path, tmp_path: Path) -> None:
    upload_bundle(bundle_dir, f"s3://{bucket}", s3)
    assert S3ArtifactStore(f"s3://{bucket}/", cache_dir=tmp_path, client=s3).local_path().is_dir()


def test_a_damaged_local_bundle_is_not_published(
    s3: Any, bucket: str, bundle_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    (copy / POPULARITY).write_bytes(b"x")
    with pytest.raises(CorruptBundleError):
        upload_bundle(copy, f"s3://{bucket}/m", s3)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://b", ("b", "")),
        ("s3://b/", ("b", "")),
        ("s3://b/p/q/", ("b", "p/q")),
    ],
)
def test_s3_urls_are_split_into_bucket_and_prefix(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["b/p", "s3:///p", "https://b.s3.amazonaws.com/p"])
def test_other_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError, match=r"S3|s3://"):
        parse_s3_url(url)


def _with_new_popularity(src: Path, out: Path) -> Path:
    """A copy of ``src`` whose popularity vector differs (so exactly one file and the version change)."""
    manifest = read_manifest(src)
    with BundleWriter(out) as writer:
        for entry in manifest.files:
            if entry.name == POPULARITY:
                writer.add_npy(POPULARITY, np.load(src / POPULARITY) + 1)
            else:
                writer.add_file(entry.name, src / entry.name)
        writer.commit(
            dataset=manifest.dataset,
            hyperparameters=manifest.hyperparameters,
            metrics=manifest.metrics,
            pipeline=manifest.pipeline,
            extra=manifest.extra,
        )
    return out
