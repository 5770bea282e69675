"""In-process ranker: the exported ONNX sequence model run by onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shoprec.errors import ArtifactError
from shoprec.ranking.tokens import left_pad

INPUT_SEQUENCE = "item_seq"
INPUT_CANDIDATES = "candidates"
OUTPUT_SCORES = "scores"

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
CPU_PROVIDERS: tuple[str, ...] = ("CPUExecutionProvider",)


class OnnxRanker:
    """Scores candidate items for users' recent item sequences (internal item indices, 0-based)."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_items: int,
        max_len: int,
        threads: int = 1,
        providers: Sequence[str] = CPU_PROVIDERS,
    ) -> None:
        """``threads`` is onnxruntime's intra-op thread count (0: its default); ``providers`` are execution
        providers in order of preference (e.g. CUDA first, then CPU for the operators it lacks)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=opts, providers=list(providers)
            )
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ArtifactError(f"{model_path}: cannot load the ONNX ranker: {exc}") from exc
        self.n_items = n_items
        self.max_len = max_len

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really uses (onnxruntime falls back to CPU silently)."""
        return list(self._session.get_providers())

    def score(self, histories: Sequence[IntArray], candidates: IntArray) -> FloatArray:
        """Scores [B, C] of ``candidates`` [B, C] (internal indices) for each of the B histories."""
        cand = np.asarray(candidates, dtype=np.int64)
        if cand.ndim != 2 or cand.shape[0] != len(histories):
            raise ValueError(f"candidates must be [{len(histories)}, C], got {cand.shape}")
        feeds = {INPUT_SEQUENCE: left_pad(histories, self.max_len), INPUT_CANDIDATES: cand + 1}
        out = self._session.run([OUTPUT_SCORES], feeds)[0]
        return np.asarray(out, dtype=np.float32)

    def score_all(self, histories: Sequence[IntArray]) -> FloatArray:
        """Scores of every catalogue item [B, n_items] (used for full-ranking evaluation)."""
        everything = np.broadcast_to(np.arange(self.n_items, dtype=np.int64), (len(histories), self.n_items))
        return self.score(histories, np.ascontiguousarray(everything))
