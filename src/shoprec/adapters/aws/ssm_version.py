"""The model version the online services serve, kept in an SSM parameter.

Reads go through Powertools Parameters (``SSMProvider.get(name, max_age=...)``) with a short cache, so a
warm Lambda asks SSM at most once a ``max_age_s`` and a promotion reaches every function within that time,
without a redeploy. The deploy stack owns the parameter (its ``ModelVersion``, which ``shoprec sagemaker
promote`` and ``rollback`` change by stack updates); its SSM history is the record of what was served when.

The value is the name of the version's folder under ``models/``: a bundle's content hash (64 hex digits,
what ``shoprec sagemaker publish`` uses; read back as ``"sha256:<hex>"``, the manifest's form) or any other
folder name of letters, digits and ``. _ -`` (the stack's initial ``ModelVersion``, e.g. ``v1``).
"""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import aws_client
from shoprec.errors import ArtifactError, BackendUnavailableError

DEFAULT_MAX_AGE_S = 60
SSM_TIMEOUT_S = 2.0
"""A version lookup sits on a request's path once a minute; a slow SSM must not hold the request long."""
_HASH = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")
_FOLDER = re.compile(r"[A-Za-z0-9._-]{1,128}")


class SsmModelVersion:
    """The served model version in SSM parameter ``name``."""

    def __init__(self, name: str, *, max_age_s: int = DEFAULT_MAX_AGE_S, client: Any = None) -> None:
        self.name = name
        self.max_age_s = max_age_s
        self._client = client if client is not None else aws_client("ssm", timeout_s=SSM_TIMEOUT_S)
        self._provider = SSMProvider(boto3_client=self._client)

    def current(self) -> str:
        """The version to serve (see :func:`parse_version`), from a cache at most ``max_age_s`` old.

        Raises ``ArtifactError`` when the parameter does not exist or holds no version (nothing was
        promoted yet) and ``BackendUnavailableError`` when SSM cannot be reached.
        """
        try:
            value = self._provider.get(self.name, max_age=self.max_age_s)
        except GetParameterError as exc:
            if "ParameterNotFound" in str(exc):
                raise ArtifactError(
                    f"SSM parameter {self.name} does not exist: no model version was promoted yet"
                ) from exc
            raise BackendUnavailableError(f"SSM parameter {self.name}: {exc}") from exc
        return parse_version(str(value), source=f"SSM parameter {self.name}")

    def history(self) -> list[str]:
        """Every version the parameter has named, oldest first, as :func:`parse_version` gives them
        (empty when it does not exist yet; values that name no version are left out)."""
        values: list[str] = []
        try:
            for page in self._client.get_paginator("get_parameter_history").paginate(Name=self.name):
                for parameter in page.get("Parameters", []):
                    try:
                        values.append(parse_version(str(parameter["Value"]), source=self.name))
                    except ArtifactError:
                        continue
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return []
            raise BackendUnavailableError(f"SSM parameter {self.name}: {exc}") from exc
        except BotoCoreError as exc:
            raise BackendUnavailableError(f"SSM parameter {self.name}: {exc}") from exc
        return values

    def describe(self) -> str:
        return f"ssm://{self.name}"


def parse_version(value: str, *, source: str) -> str:
    """A content hash (``"sha256:<hex>"`` or ``"<hex>"``) → ``"sha256:<hex>"`` in lower case; another
    folder name (``v1``) as it is; ``ArtifactError`` for anything that cannot name a folder."""
    value = value.strip()
    match = _HASH.fullmatch(value)
    if match is not None:
        return f"sha256:{match.group(1).lower()}"
    if _FOLDER.fullmatch(value) is None or value in (".", ".."):
        raise ArtifactError(
            f"{source}: {value!r} is not a model version (a content hash or a folder name of letters, "
            "digits and . _ -)"
        )
    return value
