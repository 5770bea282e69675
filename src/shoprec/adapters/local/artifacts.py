"""Bundles in a local folder: the ``ArtifactStore`` for development and containers with baked-in models."""

from __future__ import annotations

from pathlib import Path

from shoprec.artifacts import verify_bundle


class LocalArtifactStore:
    """A bundle folder on disk. :meth:`local_path` checks every file against the manifest first."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    def local_path(self) -> Path:
        """The verified bundle folder; ``ArtifactError`` / ``CorruptBundleError`` when it is not intact.

        Verification hashes every file, so call this when (re)loading a model, not per request.
        """
        verify_bundle(self.path)
        return self.path

    def describe(self) -> str:
        return f"file://{self.path}"
