"""Model versions for the tests: another version of a bundle in milliseconds (the same files plus one note,
so another content hash), and the served-version SSM parameter written as the deploy stack writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoprec.adapters.aws.clients import aws_client
from shoprec.artifacts import BundleWriter, read_manifest


def derive_version(bundle_dir: Path, out: Path, note: str) -> str:
    """Write a copy of ``bundle_dir`` with ``release-notes.txt`` added to ``out``; returns its version."""
    manifest = read_manifest(bundle_dir)
    with BundleWriter(out) as writer:
        for entry in manifest.files:
            writer.add_file(entry.name, bundle_dir / entry.name)
        writer.add_bytes("release-notes.txt", note.encode() + b"\n")
        committed = writer.commit(
            dataset=manifest.dataset,
            hyperparameters=manifest.hyperparameters,
            metrics=manifest.metrics,
            pipeline=manifest.pipeline,
            extra=manifest.extra,
        )
    return committed.model_version


def set_served_version(name: str, version: str, *, ssm: Any = None) -> None:
    """Point the served-version parameter ``name`` at ``version`` as the stack's ``ModelVersion`` does: the
    version's folder name (the hex of ``sha256:<hex>``), overwriting the value in place (history kept)."""
    client = ssm if ssm is not None else aws_client("ssm", timeout_s=10)
    client.put_parameter(Name=name, Value=version.removeprefix("sha256:"), Type="String", Overwrite=True)
