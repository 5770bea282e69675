"""The ranking endpoint's settings: ``SHOPREC_ENDPOINT_*`` variables (or ``shoprec endpoint serve`` flags).

The defaults are SageMaker's container contract: the model is unpacked into ``/opt/ml/model`` and the
container listens on port 8080 on every interface.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shoprec.endpoint.batcher import BatchingConfig

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

Device = Literal["auto", "cpu", "cuda"]


class EndpointSettings(BaseSettings):
    """Where the model is, where to listen, which device and how to batch."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPREC_ENDPOINT_", extra="ignore", frozen=True, populate_by_name=True
    )

    model_dir: Path = Field(default=Path("/opt/ml/model"), description="The unpacked bundle.")
    host: str = Field(default="0.0.0.0", description="Interface to bind (SageMaker: all).")
    port: int = Field(default=8080, ge=0, le=65_535, description="Port (SageMaker: 8080).")
    device: Device = Field(
        default="auto", description="auto: CUDA when onnxruntime offers it, else CPU; cpu; cuda (or fail)."
    )
    threads: int = Field(
        default=0, ge=0, le=256, description="onnxruntime intra-op threads on CPU (0: one per core)."
    )
    ranker_variant: str | None = Field(
        default=None,
        min_length=1,
        # The API's in-process ranker reads the same variable: one setting picks the file wherever it runs.
        validation_alias="SHOPREC_RANKER_VARIANT",
        description="Which of the bundle's ranker files to serve (fp32, int8, or a variant the manifest "
        "lists); unset: the bundle's default_variant.",
    )
    model_version: str | None = Field(
        default=None,
        description="Refuse to start unless the bundle has this version (set by `shoprec sagemaker deploy`).",
    )
    batch_max_instances: int = Field(default=BatchingConfig.max_batch_instances, ge=1, le=65_536)
    batch_max_wait_ms: float = Field(default=BatchingConfig.max_wait_ms, ge=0, le=1000)
    batch_queue_size: int = Field(default=BatchingConfig.max_queue, ge=1, le=1_000_000)

    def batching(self) -> BatchingConfig:
        return BatchingConfig(
            max_batch_instances=self.batch_max_instances,
            max_wait_ms=self.batch_max_wait_ms,
            max_queue=self.batch_queue_size,
        )

    def overridden(self, **changes: object) -> EndpointSettings:
        """A validated copy with ``changes`` applied (``None`` values are ignored), e.g. from CLI flags."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return EndpointSettings.model_validate(data)


def execution_providers(device: Device) -> list[str]:
    """onnxruntime execution providers for ``device``, preferred first.

    ``auto`` takes CUDA when this onnxruntime build offers it (the ``onnxruntime-gpu`` package), else the
    CPU; ``cuda`` fails when it is not offered rather than quietly serving from the CPU.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu" or (device == "auto" and CUDA not in available):
        return [CPU]
    if CUDA not in available:
        raise ValueError(f"device 'cuda' asked for, but onnxruntime offers only {', '.join(available)}")
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        # onnxruntime-gpu[cuda,cudnn] ships CUDA and cuDNN as pip packages; load them before the session.
        try:
            preload()
        except Exception as exc:  # a system-wide CUDA install still works without the preload
            log.warning("onnxruntime.preload_dlls failed (%s); relying on the system's CUDA libraries", exc)
    return [CUDA, CPU]
