"""Another version of a bundle in milliseconds: the same files plus one note, so another content hash."""

from __future__ import annotations

from pathlib import Path

from shoprec.artifacts.bundle import BundleWriter, read_manifest


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
            extra=manifest.extra,
        )
    return committed.model_version
