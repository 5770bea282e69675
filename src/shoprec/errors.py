"""Domain errors. Adapters translate library and SDK errors into these; the API maps them to HTTP."""

from __future__ import annotations

from pathlib import Path


class ShopRecError(Exception):
    """Base class of every error shoprec raises on purpose."""


class DataFormatError(ShopRecError):
    """Input data could not be parsed. Names the file, the line (1-based) and the field when known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = message
        where = self.path
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


class DatasetNotFoundError(ShopRecError):
    """The dataset path does not exist or holds no recognised files."""


class ArtifactError(ShopRecError):
    """An artifact bundle is missing, incomplete or fails verification."""


class CorruptBundleError(ArtifactError):
    """A bundle file's checksum or size does not match its manifest entry."""

    def __init__(self, message: str, *, path: str | Path, file: str | None = None) -> None:
        self.path = str(path)
        self.file = file
        super().__init__(f"{self.path}: {message}")


class NotFoundError(ShopRecError):
    """A requested user, item or resource does not exist."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class InvalidInputError(ShopRecError):
    """Request data that passed schema validation but is semantically wrong (e.g. unknown item ids)."""

    def __init__(self, message: str, *, field: str | None = None, values: list[str] | None = None) -> None:
        self.field = field
        self.values = values or []
        super().__init__(message)


class BackendUnavailableError(ShopRecError):
    """A backing service (state store, cache, artifact store) failed or timed out."""


class RankerUnavailableError(BackendUnavailableError):
    """The ranking backend failed or exceeded its latency budget; callers fall back to recall scores."""
